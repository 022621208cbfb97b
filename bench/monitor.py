"""CPU time and resident memory of a server's process tree (the process and all its descendants), read
from ``/proc`` (Linux): no dependency, cheap enough to sample ten times a second."""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

MB = 1024 * 1024
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 onward), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2:].split()


def tree(pid: int) -> list[int]:
    """``pid`` and every live descendant."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """user + system seconds of each process still alive."""
    seconds = {}
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            seconds[pid] = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
    return seconds


def rss_bytes(pids: list[int]) -> tuple[int, int]:
    """(sum over the processes, largest single process)."""
    total = largest = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is None:
            continue
        rss = int(fields[21]) * _PAGE
        total += rss
        largest = max(largest, rss)
    return total, largest


@dataclass
class Usage:
    cpu_seconds: float  # CPU time the tree spent during the window
    wall_seconds: float
    peak_rss_mb: float  # the tree's, summed over processes, at its highest sample
    peak_worker_rss_mb: float  # the largest single process's

    @property
    def cores(self) -> float:
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0


class Monitor:
    """``with Monitor(pid) as m: …`` then ``m.usage``: CPU over the block, RSS sampled every ``interval``."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval = pid, interval
        self.usage: Usage | None = None
        self._stop = threading.Event()
        self._peak = (0, 0)

    def __enter__(self) -> Monitor:
        self._pids = tree(self.pid)
        self._cpu0, self._t0 = cpu_seconds(self._pids), time.perf_counter()
        self._peak = rss_bytes(self._pids)
        self._thread = threading.Thread(target=self._sample, daemon=True, name="bench-monitor")
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            total, largest = rss_bytes(self._pids)
            self._peak = (max(self._peak[0], total), max(self._peak[1], largest))

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        cpu1, wall = cpu_seconds(self._pids), time.perf_counter() - self._t0
        total, largest = rss_bytes(self._pids)
        self._peak = (max(self._peak[0], total), max(self._peak[1], largest))
        spent = sum(cpu1[pid] - self._cpu0.get(pid, 0.0) for pid in cpu1)
        self.usage = Usage(cpu_seconds=spent, wall_seconds=wall, peak_rss_mb=self._peak[0] / MB,
                           peak_worker_rss_mb=self._peak[1] / MB)
