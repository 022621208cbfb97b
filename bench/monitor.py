"""CPU time and resident memory of a server's process tree (the process and its workers), via psutil."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psutil

MB = 1024 * 1024


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    """user + system seconds of each process still alive."""
    seconds = {}
    for proc in processes:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        seconds[proc.pid] = times.user + times.system
    return seconds


def rss_bytes(processes: list[psutil.Process]) -> tuple[int, int]:
    """(sum over the tree, largest single process)."""
    total = largest = 0
    for proc in processes:
        try:
            rss = proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
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
        self._procs = tree(self.pid)
        self._cpu0, self._t0 = cpu_seconds(self._procs), time.perf_counter()
        self._peak = rss_bytes(self._procs)
        self._thread = threading.Thread(target=self._sample, daemon=True, name="bench-monitor")
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            total, largest = rss_bytes(self._procs)
            self._peak = (max(self._peak[0], total), max(self._peak[1], largest))

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        cpu1, wall = cpu_seconds(self._procs), time.perf_counter() - self._t0
        total, largest = rss_bytes(self._procs)
        self._peak = (max(self._peak[0], total), max(self._peak[1], largest))
        spent = sum(cpu1[pid] - self._cpu0.get(pid, 0.0) for pid in cpu1)
        self.usage = Usage(cpu_seconds=spent, wall_seconds=wall, peak_rss_mb=self._peak[0] / MB,
                           peak_worker_rss_mb=self._peak[1] / MB)
