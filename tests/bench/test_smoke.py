"""``python -m bench --smoke``: the benchmark harness runs end to end (stand-in upstream, the gateway on
its production path with a database-backed key, the bare relay beside it, the load generator, the report).
Speed is never asserted here: the machines are shared; the benchmark itself reports it (docs/performance.md)."""
from __future__ import annotations

import json
import sys

import pytest

from bench import run as bench


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    results = tmp_path_factory.mktemp("bench-results")
    docs = results / "performance.md"
    docs.write_text(f"# Performance\n\nbefore\n{bench.RESULTS_START}\nold table\n{bench.RESULTS_END}\nafter\n")
    report = bench.main(["--smoke", "--results-dir", str(results), "--docs", str(docs)])
    return report, results, docs


def test_smoke_measures_direct_and_gateway_at_each_point(smoke):
    report, _, _ = smoke
    points = report["matrix"]["points"]
    assert [(p["latency_ms"], p["stream"], p["concurrency"]) for p in points] == [
        (0, False, 1), (0, False, 2), (0, True, 1), (0, True, 2)]
    for point in points:
        assert set(point["summary"]) == {"direct", "gateway", "relay"}  # no LiteLLM in a smoke run
        for name, runs in point["runs"].items():
            assert len(runs) == 1
            assert runs[0]["requests"] == 20 and runs[0]["errors"] == 0, (name, runs[0])
            assert runs[0]["generator"] == "asyncio"
        gateway = point["summary"]["gateway"]
        for field in ("rps", "p50_ms", "p99_ms", "added_p50_ms", "added_p99_ms", "cores", "peak_rss_mb"):
            assert isinstance(gateway[field], float), (field, gateway)
        assert gateway["peak_rss_mb"] > 0
        assert isinstance(gateway["added_ttfb_ms"], float)
        assert isinstance(point["summary"]["relay"]["added_p50_ms"], float)   # the floor beside it


def test_smoke_measures_an_open_loop_point(smoke):
    """Poisson arrivals (bench.loadgen --rate): the requests in flight follow from the latencies."""
    report, _, _ = smoke
    [point] = report["matrix"]["open_points"]
    assert (point["latency_ms"], point["rate"]) == (0, 100)
    assert set(point["summary"]) == {"direct", "gateway", "relay"}
    for name, [run] in point["runs"].items():
        assert run["requests"] == 20 and run["errors"] == 0, (name, run)
        assert 0 < run["mean_in_flight"] < 20
    assert isinstance(point["summary"]["gateway"]["added_p99_ms"], float)


def test_smoke_writes_json_results_and_the_markdown_table(smoke):
    report, results, docs = smoke
    [saved] = results.glob("smoke-*.json")
    assert json.loads(saved.read_text())["matrix"]["points"] == json.loads(json.dumps(report["matrix"]["points"]))
    assert report["database"] in ("postgres", "sqlite")
    # Which environment served the gateway: the runtime-only venv when installed, else this interpreter.
    assert report["gateway_python"] in ("bench/.venv-gateway (requirements.txt only)",
                                        f"{sys.executable} (the bench's own environment, test packages included)")
    assert f"Gateway environment: {report['gateway_python']}." in docs.read_text()
    text = docs.read_text()
    assert text.startswith("# Performance\n\nbefore\n") and text.endswith(f"{bench.RESULTS_END}\nafter\n")
    assert "old table" not in text
    rows = [line for line in text.splitlines() if line.startswith("| 0 ms |")]
    assert len(rows) == 5 and all(row.count("|") == 18 for row in rows[:4])   # 17 columns, the floor's last
    assert all(row.rstrip(" |").rsplit("|", 1)[1].count(" / ") == 2 for row in rows[:4])   # floor: p50 / p99 / TTFB
    assert rows[4].startswith("| 0 ms | 100 | ") and rows[4].count("|") == 8   # the open-loop table
    assert "Non-2xx or failed requests over the run: direct 0, gateway 0, relay 0." in text
