"""A target that dies during the bench (the LiteLLM proxy has segfaulted under streamed load) is recorded,
started again, and its measurement counted as failed; the run goes on."""
from __future__ import annotations

import sys

from bench.run import Target, markdown, measure
from tests.servers.process import ServerProcess, free_port


def server(tmp_path) -> tuple[ServerProcess, Target]:
    port = free_port()
    process = ServerProcess([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                            log_dir=tmp_path, name="stand-in").start()
    process.wait_until_ready(port)
    return process, Target("litellm", f"http://127.0.0.1:{port}", process.pid, None)


def test_a_target_that_died_is_recorded_and_started_again(tmp_path):
    first, target = server(tmp_path)
    started = []

    def restart():
        started.append(server(tmp_path))
        return started[-1]

    target.process, target.restart = first, restart
    first.stop()   # it dies between two measurements
    crashes: list[dict] = []
    try:
        run = measure(target, crashes, {"latency_ms": 0, "stream": True, "concurrency": 10}, tmp_path, 0, False, 1,
                      None, 3, False)

        assert run["crashed"] and run["rps"] is None and run["errors"] >= 1
        [crash] = crashes
        assert (crash["target"], crash["stream"], crash["concurrency"]) == ("litellm", True, 10)
        assert crash["exit_code"] is not None
        [(again, _)] = started
        assert target.process is again and target.pid == again.pid and again.is_running()
        # the next measurement is on the new server, and counts as usual
        assert not measure(target, crashes, {}, tmp_path, 0, False, 1, None, 3, False).get("crashed")
        assert len(crashes) == 1
        report = {"started": "now", "command": "x", "machine": {"cpu": "c", "cores": 2, "memory": "m", "kernel": "k",
                                                                "python": "3"}, "versions": {}, "repeats": 1,
                  "duration": 1, "workers": 1, "gateway_python": "p",
                  "matrix": {"points": [], "load_average": [[0.0]], "crashes": crashes}}
        assert "**litellm died** during a measurement (latency_ms 0, stream True, concurrency 10; exit code" in \
            markdown(report)
    finally:
        for process, _ in started:
            process.stop()
