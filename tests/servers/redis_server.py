"""A private ``redis-server`` on a free port, for tests that stop, kill or restart Redis (never the shared
one on 6379).

    with PrivateRedis(tmp_path) as redis:
        ... REDIS_URL=redis.url ...
        redis.restart(kill=True)   # SIGKILL, then start again on the same port and data directory

It keeps its data in an append-only file fsynced on every write, as an operator relying on the spend-event
stream should configure it (docs/spend.md): a killed Redis comes back with everything it acknowledged.
"""
from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from tests.servers.process import ServerProcess, free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class PrivateRedis:
    def __init__(self, directory: Path, *, name: str = "redis") -> None:
        self.directory = Path(directory) / name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: ServerProcess | None = None

    def start(self) -> PrivateRedis:
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "no"]
        self.process = ServerProcess(args, log_dir=self.directory, name=self.name, env=dict(os.environ))
        self.process.start()
        self.process.wait_until_ready(self.port, timeout=20)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def kill(self) -> None:
        """SIGKILL: no shutdown work at all (what it acknowledged is in the fsynced append-only file)."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.stop()
            self.process = None

    def restart(self, *, kill: bool = False) -> None:
        self.kill() if kill else self.stop()
        self.start()

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=5.0)

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
