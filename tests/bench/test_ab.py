"""``python -m bench.ab``: two trees of the gateway side by side (a git revision against the working tree),
interleaved rounds at concurrency 1. Only that the harness works is checked here; what it measures is the
benchmark's to report (docs/performance.md)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench import ab
from bench.run import ROOT


def policy(pid: int) -> int:
    """The scheduling policy of a process (/proc/<pid>/stat, field 41): 5 is SCHED_IDLE."""
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[38])


def test_the_awake_spinners_run_at_idle_priority_one_per_cpu_and_stop(tmp_path):
    spinners = ab.start_spinners()
    try:
        assert len(spinners) == (os.cpu_count() or 1)
        deadline = time.monotonic() + 10
        while not all(policy(s.pid) == 5 for s in spinners) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [policy(s.pid) for s in spinners] == [5] * len(spinners)
    finally:
        ab.stop(spinners)
    assert all(s.returncode is not None for s in spinners)


def test_two_trees_are_measured_round_by_round_and_the_worktree_is_removed(tmp_path):
    before = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True).stdout
    result = ab.main(["--base", "HEAD", "--rounds", "3", "--restarts", "2", "--requests", "20", "--latency", "0",
                      "--gateway-python", sys.executable, "--results-dir", str(tmp_path)])

    assert result["errors"] == {"direct": 0, "base": 0, "change": 0}
    assert len(result["rounds"]) == 3 and result["stream"] is True and result["restarts"] == 2
    for measure in ("p50_ms", "ttfb_ms"):
        summary = result["summary"][measure]
        assert summary["rounds"] == 3 and 0 <= summary["rounds_faster"] <= 3
        assert isinstance(summary["difference_us"], float)
    assert len(list(tmp_path.glob("ab-*.json"))) == 1
    after = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True).stdout
    assert after == before


def test_a_base_that_is_not_a_revision_is_refused_before_anything_starts(tmp_path):
    with pytest.raises(subprocess.CalledProcessError):
        ab.main(["--base", "no-such-revision-anywhere", "--rounds", "1", "--requests", "5",
                 "--gateway-python", sys.executable, "--results-dir", str(tmp_path)])
