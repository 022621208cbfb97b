"""A PostgreSQL cluster of a test's own, for tests that stop and restart the database server.

The shared server other tests use must never be stopped; this one is created with ``initdb`` in a
temporary directory, listens on a free port on 127.0.0.1 only (trust authentication, its socket in
that directory), and is stopped with ``pg_ctl``:

    with PrivatePostgres.create() as pg:
        url = pg.create_database("gateway")
        pg.stop()      # the server goes away, as in a crash-free outage (fast shutdown)
        pg.start()     # and comes back, same data, same port

PostgreSQL refuses to run as root: under root, the server runs as the ``postgres`` system user.
"""
from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import psycopg

from tests.servers.process import LOCALHOST, free_port

SERVER_USER = "postgres"


def binaries() -> Path | None:
    """The directory of the newest installed PostgreSQL's initdb and pg_ctl, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def _version(path: str) -> float:
    try:
        return float(Path(path).parts[-3])
    except ValueError:
        return 0.0


def unavailable_reason() -> str | None:
    """Why a private cluster cannot be created here, or None when it can."""
    if binaries() is None:
        return "PostgreSQL's server binaries (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root and there is no '{SERVER_USER}' user to run PostgreSQL as"
    return None


class PrivatePostgres:
    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = port
        self.log = directory / "postgres.log"

    @classmethod
    def create(cls) -> PrivatePostgres:
        directory = Path(tempfile.mkdtemp(prefix="private-pg-"))
        if os.geteuid() == 0:
            account = pwd.getpwnam(SERVER_USER)
            os.chown(directory, account.pw_uid, account.pw_gid)
        cluster = cls(directory, free_port())
        atexit.register(cluster.destroy)  # an aborted test session stops it too
        cluster._run("initdb", "-D", str(cluster.data), "-U", "postgres", "--auth=trust", "--no-sync",
                     "--encoding=UTF8", "--locale=C")
        return cluster

    # Lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        options = (f"-c listen_addresses={LOCALHOST} -p {self.port} -k {self.directory} -c fsync=off "
                   f"-c max_connections=50")
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "-o", options)

    def stop(self) -> None:
        """Fast shutdown: open connections are terminated, then the server exits; waits until it has."""
        if self.pid() is not None:
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "30")

    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

    def destroy(self) -> None:
        """Stop the server (immediate shutdown, by pid, if pg_ctl fails) and delete the cluster. Idempotent."""
        try:
            self.stop()
        except (RuntimeError, subprocess.TimeoutExpired):
            pid = self.pid()
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGQUIT)
                except ProcessLookupError:
                    pass
        finally:
            atexit.unregister(self.destroy)
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.destroy()

    # Use --------------------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@{LOCALHOST}:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(host=LOCALHOST, port=self.port, user="postgres", dbname=database, autocommit=True,
                               connect_timeout=5)

    def create_database(self, name: str) -> str:
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def accepts_connections(self) -> bool:
        try:
            self.connect().close()
            return True
        except psycopg.OperationalError:
            return False

    # Internals --------------------------------------------------------------------------------

    def _run(self, program: str, *args: str) -> None:
        command = [str(binaries() / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        started = time.monotonic()
        result = subprocess.run(command, cwd=self.directory, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no server log)"
            raise RuntimeError(f"{program} failed with status {result.returncode} after "
                               f"{time.monotonic() - started:.1f}s:\n{result.stdout}\n{result.stderr}\n{log}")
