"""The image's own commands, run for real as compose.yaml runs them: migrations once (the `migrate`
service), then the Dockerfile's CMD with the environment compose gives it (listening on 127.0.0.1 here
instead of 0.0.0.0). It serves with its default worker count, records spend, its idle workers sleep, and it
exits 0 on SIGTERM."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import openai
import pytest
import yaml

from tests.e2e.conftest import MASTER_KEY, ROOT, UPSTREAM_KEY, _fresh_database_url, wait_for
from tests.servers.process import ServerProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.deployment]


def image_command() -> list[str]:
    """The Dockerfile's CMD (exec form)."""
    line = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    return json.loads(line.removeprefix("CMD "))


def migrate_command() -> list[str]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["migrate"]["command"]


def with_option(command: list[str], name: str, value: str) -> list[str]:
    index = command.index(name)
    return [*command[:index + 1], value, *command[index + 2:]]


IDLE_SECONDS = 2


def worker_pids(pid: int) -> list[int]:
    """The processes serving requests: the server's own with one worker, else the worker processes it started
    (not multiprocessing's resource tracker)."""
    children = [int(child) for task in (Path("/proc") / str(pid) / "task").iterdir()
                for child in (task / "children").read_text().split()]
    workers = [child for child in children
               if b"resource_tracker" not in (Path("/proc") / str(child) / "cmdline").read_bytes()]
    return workers or [pid]


def main_thread_wakeups(pid: int) -> int:
    """Times the process's main thread (its event loop) went to sleep and was woken since it started."""
    status = (Path("/proc") / str(pid) / "status").read_text()
    return int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))


def test_the_images_command_serves_with_its_defaults_and_stops_cleanly_on_sigterm(e2e_dir, upstream, tmp_path):
    database_url, drop = _fresh_database_url(e2e_dir)
    config = tmp_path / "config.yaml"
    config.write_text(f"""model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: {upstream.base_url}/v1
      api_key: os.environ/UPSTREAM_KEY
      input_cost_per_token: 0.000001
""")
    # What compose.yaml's x-gateway environment sets, pointed at this machine's services.
    env = {**os.environ, "DATABASE_URL": database_url, "GATEWAY_MASTER_KEY": MASTER_KEY,
           "GATEWAY_SECRET_KEY": "production-command-test", "GATEWAY_CONFIG": str(config),
           "GATEWAY_GRACEFUL_TIMEOUT": "30", "GATEWAY_DATA_DIR": str(tmp_path / "var"), "UPSTREAM_KEY": UPSTREAM_KEY,
           "DJANGO_SETTINGS_MODULE": "gateway_project.settings"}
    for name in ("REDIS_URL", "GATEWAY_WORKERS"):
        env.pop(name, None)
    python = lambda command: [sys.executable if command[0] == "python" else command[0], *command[1:]]  # noqa: E731
    try:
        migrated = subprocess.run(python(migrate_command()), cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=300)
        assert migrated.returncode == 0, migrated.stderr

        port = free_port()
        command = with_option(with_option(python(image_command()), "--host", "127.0.0.1"), "--port", str(port))
        server = ServerProcess(command, log_dir=e2e_dir, name="production-command", env=env, cwd=ROOT)
        with server:
            server.wait_until_ready(f"http://127.0.0.1:{port}/health/readiness", timeout=60)
            expected_workers = 1 if database_url.startswith("sqlite") else len(os.sched_getaffinity(0))
            assert re.search(rf"workers: {expected_workers}\)", server.log_tail(200)), server.log_tail()

            sdk = openai.OpenAI(api_key=MASTER_KEY, base_url=f"http://127.0.0.1:{port}", max_retries=0)
            completion = sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

            def spend_rows():
                response = httpx2.get(f"http://127.0.0.1:{port}/spend/logs", params={"request_id": completion.id},
                                      headers={"Authorization": f"Bearer {MASTER_KEY}"}, trust_env=False)
                return response.json() if response.status_code == 200 else None

            assert wait_for(spend_rows)[0]["request_id"] == completion.id
            sdk.close()

            # An idle worker's event loop wakes a few times a second (the server's tick, the spend writer's and
            # the heap's looks, a thread taking the GIL; proxy/server.py): fewer than uvicorn's tick alone,
            # ten a second (28-29 in 2 s were counted with it, 8-12 without).
            workers = worker_pids(server.pid)
            assert len(workers) == expected_workers, workers
            before = {pid: main_thread_wakeups(pid) for pid in workers}
            time.sleep(IDLE_SECONDS)
            woken = {pid: main_thread_wakeups(pid) - count for pid, count in before.items()}
            assert all(count < 10 * IDLE_SECONDS for count in woken.values()), woken

            os.kill(server.pid, signal.SIGTERM)  # as `docker stop` signals the container's main process
            wait_for(lambda: server.returncode is not None, timeout=60)
            assert server.returncode == 0, server.log_tail()
    finally:
        drop()
