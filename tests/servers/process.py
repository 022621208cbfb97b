"""Run servers (the gateway, stand-in upstreams) as real subprocesses for end-to-end tests.

    port = free_port()
    with ServerProcess([sys.executable, "-m", "tests.servers.fake_upstream", "--port", str(port)],
                       log_dir=tmp_path, name="upstream") as server:
        server.wait_until_ready(f"http://127.0.0.1:{port}/_stand_in/health")
        ...

Each child runs in its own session (so its own process group): ``stop()`` signals the whole group,
which also takes down grandchildren such as uvicorn workers. Output goes to a log file whose tail is
quoted in every start-up error, so a server that fails to start says why.
"""
from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import NoReturn

import httpx2

LOCALHOST = "127.0.0.1"
POLL_INTERVAL = 0.05  # seconds between readiness probes
PROBE_TIMEOUT = 1.0  # seconds one readiness probe may take
TAIL_LINES = 40

# Safety net: servers still running when the interpreter exits (an aborted test session) are stopped.
_running: set[ServerProcess] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


class ServerNotReady(RuntimeError):
    """The server exited or did not answer in time; the message quotes its log."""


class ServerProcess:
    """A command run as a subprocess in its own process group, its output in ``log_dir/<name>.log``.

    ``env`` is the child's complete environment (default: this process's); PYTHONUNBUFFERED=1 is
    added unless set, so Python servers' output reaches the log as it happens.
    """

    def __init__(self, args: Sequence[str], *, log_dir: str | os.PathLike[str], name: str = "server",
                 env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None) -> None:
        self.args = [str(arg) for arg in args]
        self.name = name
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.cwd = cwd
        self.log_path = _unique_path(Path(log_dir), name)
        self._popen: subprocess.Popen[bytes] | None = None

    # Lifecycle --------------------------------------------------------------------------------

    def start(self) -> ServerProcess:
        if self._popen is not None:
            raise RuntimeError(f"{self.name} was already started (pid {self._popen.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            self._popen = subprocess.Popen(self.args, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _running.add(self)
        return self

    def wait_until_ready(self, target: str | int, timeout: float = 30.0) -> None:
        """Poll until ``target`` answers: a URL answering any status below 500, or a port accepting
        TCP connections on 127.0.0.1. Stops the server and raises ServerNotReady (quoting the log)
        if it exits first or ``timeout`` seconds pass."""
        popen = self._require_started()
        probe = _http_probe(target) if isinstance(target, str) else _tcp_probe(target)
        deadline = time.monotonic() + timeout
        while True:
            if popen.poll() is not None:
                self._fail(f"exited with status {popen.returncode} before it was ready")
            last_problem = probe()
            if last_problem is None:
                return
            if time.monotonic() >= deadline:
                self._fail(f"was not ready at {target} after {timeout:g}s (last probe: {last_problem})")
            time.sleep(POLL_INTERVAL)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, SIGKILL it if the leader outlives ``timeout``; then SIGKILL
        whatever is left in the group. Returns the exit status (None if never started). Idempotent."""
        popen = self._popen
        if popen is None:
            return None
        _running.discard(self)
        if popen.poll() is None:
            _signal_group(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(popen.pid, signal.SIGKILL)
                popen.wait()
        _signal_group(popen.pid, signal.SIGKILL)  # stragglers (workers) that outlived their parent
        return popen.returncode

    # Introspection ----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._require_started().pid

    @property
    def returncode(self) -> int | None:
        """None while running (or never started)."""
        return None if self._popen is None else self._popen.poll()

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log file)"
        return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"

    # Context manager --------------------------------------------------------------------------

    def __enter__(self) -> ServerProcess:
        if self._popen is None:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "not started" if self._popen is None else f"pid {self._popen.pid}, returncode {self.returncode}"
        return f"<ServerProcess {self.name} ({state}) log={self.log_path}>"

    # Internals --------------------------------------------------------------------------------

    def _require_started(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._popen

    def _fail(self, problem: str) -> NoReturn:
        self.stop()
        raise ServerNotReady(f"{self.name} {problem}.\ncommand: {' '.join(self.args)}\n"
                             f"log {self.log_path} (last {TAIL_LINES} lines):\n{self.log_tail()}")


def _unique_path(directory: Path, name: str) -> Path:
    """``directory/name.log``, or ``name-2.log``, ``name-3.log``… when taken."""
    path, counter = directory / f"{name}.log", 1
    while path.exists():
        counter += 1
        path = directory / f"{name}-{counter}.log"
    return path


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already


def _http_probe(url: str):
    """A probe answering None when ``url`` returns a status below 500, else what went wrong."""

    def probe() -> str | None:
        try:
            response = httpx2.get(url, timeout=PROBE_TIMEOUT, trust_env=False)
        except httpx2.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if response.status_code < 500 else f"HTTP {response.status_code}"

    return probe


def _tcp_probe(port: int):
    """A probe answering None when 127.0.0.1:``port`` accepts a TCP connection."""

    def probe() -> str | None:
        try:
            socket.create_connection((LOCALHOST, port), timeout=PROBE_TIMEOUT).close()
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    return probe


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_running):
        server.stop(timeout=5.0)
