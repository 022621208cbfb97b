"""A rolling restart of two gateway instances behind Debian's nginx, under load: each instance in turn is
replaced (new one started, nginx reloaded without the old one, old one SIGTERMed). No client sees a 5xx,
and every answered request has exactly one spend-log row."""
from __future__ import annotations

import collections
import os
import shutil
import signal
import threading
from contextlib import ExitStack
from pathlib import Path

import httpx2
import pytest

from tests.e2e.conftest import MASTER_KEY, ROOT, _fresh_database_url, launch_gateway, wait_for
from tests.e2e.test_graceful_shutdown import config, stored_rows
from tests.servers.process import ServerProcess, free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

pytestmark = [pytest.mark.e2e, pytest.mark.deployment, pytest.mark.skipif(
    not Path(NGINX).exists(), reason="nginx is not installed (bin/install-test-deps installs it)")]


def nginx_conf(prefix: Path, listen: int, backends: list[str]) -> str:
    servers = "\n".join(f"        server {b} max_fails=1 fail_timeout=5s;" for b in backends)
    return f"""worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi; uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
    upstream gateway {{
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            proxy_pass http://gateway;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""


class Load(threading.Thread):
    """One client sending chat completions through nginx until told to stop."""

    def __init__(self, base_url: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.base_url, self.stop = base_url, stop
        self.statuses: collections.Counter = collections.Counter()
        self.answered: list[str] = []
        self.errors: list[str] = []

    def run(self) -> None:
        with httpx2.Client(base_url=self.base_url, timeout=30, trust_env=False) as http:
            while not self.stop.is_set():
                try:
                    response = http.post("/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                                         json={"model": "slow", "messages": [{"role": "user", "content": "hi"}]})
                except httpx2.TransportError as exc:
                    self.errors.append(repr(exc))
                    continue
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    self.answered.append(response.json()["id"])


def test_rolling_restart_behind_nginx_drops_nothing(e2e_dir, stand_in, tmp_path):
    stand_in.behave(delay_ms=100)  # requests are in flight when an instance is told to stop
    database_url, drop = _fresh_database_url(e2e_dir)
    prefix = tmp_path / "nginx"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / sub).mkdir(parents=True)
    conf, listen = prefix / "nginx.conf", free_port()
    env = {"GATEWAY_GRACEFUL_TIMEOUT": "20"}
    counter = iter(range(100))

    def start_instance(stack: ExitStack):
        return stack.enter_context(launch_gateway(e2e_dir, config(stand_in), name=f"rolling-{next(counter)}",
                                                  env=env, database_url=database_url))

    def route_to(*instances) -> None:
        conf.write_text(nginx_conf(prefix, listen, [i.base_url.removeprefix("http://") for i in instances]))

    try:
        with ExitStack() as stack:
            live = [start_instance(stack), start_instance(stack)]
            route_to(*live)
            nginx = stack.enter_context(ServerProcess(
                [NGINX, "-p", str(prefix), "-e", "stderr", "-c", str(conf), "-g", "daemon off;"],
                log_dir=e2e_dir, name="nginx", cwd=ROOT))
            nginx.wait_until_ready(listen)

            stop = threading.Event()
            clients = [Load(f"http://127.0.0.1:{listen}", stop) for _ in range(4)]
            for client in clients:
                client.start()
            wait_for(lambda: sum(len(c.answered) for c in clients) >= 20)

            for slot in range(2):  # replace each instance in turn
                old = live[slot]
                live[slot] = start_instance(stack)
                route_to(*live)
                os.kill(nginx.pid, signal.SIGHUP)  # graceful reload: old nginx workers finish their requests
                answered = sum(len(c.answered) for c in clients)
                wait_for(lambda: sum(len(c.answered) for c in clients) >= answered + 10)
                assert old.process.stop(timeout=30) == 0
                answered = sum(len(c.answered) for c in clients)
                wait_for(lambda: sum(len(c.answered) for c in clients) >= answered + 10)

            stop.set()
            for client in clients:
                client.join(30)
            for instance in live:  # SIGTERM flushes their spend buffers
                assert instance.process.stop(timeout=30) == 0

        statuses = sum((c.statuses for c in clients), collections.Counter())
        assert [c.errors for c in clients] == [[]] * 4
        assert set(statuses) == {200}, statuses
        answered = [request_id for c in clients for request_id in c.answered]
        rows = collections.Counter(row["request_id"] for row in stored_rows(database_url))
        assert len(answered) == len(set(answered)) >= 40
        assert rows == collections.Counter(answered)  # exactly one row per answered request, nothing else
    finally:
        drop()
