"""Two trees of the gateway side by side: is a change to the hot path faster, by how much, and is that more
than the machine's noise? ``python -m bench.ab --base REV`` (``make bench-ab BASE=REV``).

The gateway of ``REV`` (checked out into a temporary git worktree) and the gateway of the working tree are
started beside each other against one stand-in upstream, each on a database of its own, each with a
database-backed key, budget and limits as in ``python -m bench``; then rounds of calls at concurrency 1,
interleaved (direct, base, change; the next round in the other order), each round ``--requests`` calls. What
is reported is, per round, each gateway's added latency (p50) and added time to the first byte (streams)
over the same round's direct calls, and the medians over the rounds; and the change minus the base, round by
round, which is what says whether a difference is a difference: one that keeps its sign in every round.

Two processes of the same code are not equally fast: where the interpreter, the heap and the code land in
memory differs from one start to the next, and two servers of one tree measured side by side differed by
90 µs in all of six rounds here (docs/performance.md, "Two trees side by side"). So the rounds are split
among ``--restarts`` fresh starts of both servers (in alternating order), and only a difference that holds
across starts is one.

``--awake`` runs, for the measurement, one spinning process per CPU at the kernel's idle priority
(``SCHED_IDLE``: it gets a CPU only when nothing else wants it), so that no CPU halts between calls. On a
virtual machine whose idle CPUs halt, waking one costs a call a few hundred microseconds and whatever its
caches lost meanwhile (docs/performance.md, "The answer made while the upstream works"); with the CPUs awake
a change of some tens of microseconds stands out from that noise. The spinners take no CPU from the servers
but do burn an idle machine's CPU: for measurements, never for serving.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.run import BENCH, ROOT, Target, bench_database, drive, gateway_python, start_gateway, start_upstream
from tests.servers.process import ServerProcess

SPIN = "import os\nos.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\nwhile True:\n    pass\n"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the git revision to compare the working tree with")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds in all (default 8)")
    parser.add_argument("--restarts", type=int, default=4,
                        help="fresh starts of both servers the rounds are split among (default 4)")
    parser.add_argument("--requests", type=int, default=300, help="calls per target per round (default 300)")
    parser.add_argument("--latency", type=int, default=50, help="the stand-in's latency in ms (default 50)")
    parser.add_argument("--buffered", action="store_true", help="non-streamed calls (default: streamed)")
    parser.add_argument("--awake", action="store_true",
                        help="keep every CPU from halting with idle-priority spinners while measuring")
    parser.add_argument("--gateway-python", help="the interpreter both gateways run on (default as python -m bench)")
    parser.add_argument("--results-dir", type=Path, default=BENCH / "results")
    args = parser.parse_args(argv)
    args.smoke = False
    return args


def start_spinners() -> list[subprocess.Popen]:
    """One idle-priority spinner per CPU; stopped by ``stop`` (by process id)."""
    return [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(os.cpu_count() or 1)]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.kill()
    for process in processes:
        process.wait(timeout=10)


def worktree(base: str, where: Path) -> Path:
    """``base`` checked out (detached) at ``where``: its own files, the repository's history."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(where), base], check=True)
    return where


def remove_worktree(where: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], check=False)


def one_round(target: Target, work: Path, latency_ms: int, stream: bool, requests: int) -> dict:
    """``requests`` calls at concurrency 1 (``bench.run.drive``): their p50 and, for streams, first byte."""
    raw = drive(target, work, latency_ms, stream, 1, None, requests, use_wrk=False)
    return {"requests": raw["requests"], "errors": raw["errors"], "p50_ms": raw["latency_ms"]["p50"],
            "ttfb_ms": (raw["ttfb_ms"] or {}).get("p50")}


def compare(rounds: list[dict[str, dict]], stream: bool) -> dict:
    """Per round: each gateway's added µs over direct, and the change minus the base; their medians."""
    measures = ["p50_ms"] + (["ttfb_ms"] if stream else [])
    per_round = []
    for measured in rounds:
        direct = measured["direct"]
        added = {name: {m: (measured[name][m] - direct[m]) * 1000 for m in measures} for name in ("base", "change")}
        per_round.append({"added_us": added,
                          "change_minus_base_us": {m: added["change"][m] - added["base"][m] for m in measures}})
    summary = {}
    for m in measures:
        differences = [r["change_minus_base_us"][m] for r in per_round]
        summary[m] = {"base_added_us": statistics.median(r["added_us"]["base"][m] for r in per_round),
                      "change_added_us": statistics.median(r["added_us"]["change"][m] for r in per_round),
                      "difference_us": statistics.median(differences),
                      "rounds_faster": sum(d < 0 for d in differences), "rounds": len(differences)}
    return {"rounds": per_round, "summary": summary}


def report_lines(result: dict) -> list[str]:
    names = {"p50_ms": "added p50", "ttfb_ms": "added first byte"}
    lines = ["| measure | base, µs | change, µs | change − base, µs (median) | rounds where the change is faster |",
             "|---|---|---|---|---|"]
    for measure, s in result["summary"].items():
        lines.append(f"| {names[measure]} | {s['base_added_us']:.0f} | {s['change_added_us']:.0f} | "
                     f"{s['difference_us']:+.0f} | {s['rounds_faster']} of {s['rounds']} |")
    return lines


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    python, environment = gateway_python(args)
    stream = not args.buffered
    work = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    processes: list[ServerProcess] = []
    drops = []
    spinners: list[subprocess.Popen] = []
    base_tree = None
    rounds: list[dict] = []
    try:
        base_tree = worktree(args.base, work / "base")
        upstream, direct = start_upstream(work)
        processes.append(upstream)
        upstream_base = direct.base
        trees, databases = {"base": base_tree, "change": ROOT}, {}
        for name in trees:
            (work / name).mkdir(exist_ok=True)
            databases[name], drop = bench_database(work / name)
            drops.append(drop)
        if args.awake:
            spinners = start_spinners()
        restarts = max(1, min(args.restarts, args.rounds))
        for start in range(restarts):
            targets, started = {"direct": direct}, []
            for name in (("base", "change") if start % 2 == 0 else ("change", "base")):
                process, targets[name] = start_gateway(work / name, upstream_base, sorted({0, args.latency}), 1,
                                                       databases[name], python, root=trees[name],
                                                       key_alias=f"bench-ab-{start}")
                started.append(process)
            processes.extend(started)
            for name in ("base", "change"):   # warm-up: pools, caches, the key's first look-up; not measured
                one_round(targets[name], work, 0, stream, 50)
            for _ in range(args.rounds * (start + 1) // restarts - args.rounds * start // restarts):
                index = len(rounds)
                order = ["direct", "base", "change"] if index % 2 == 0 else ["direct", "change", "base"]
                rounds.append({name: one_round(targets[name], work, args.latency, stream, args.requests)
                               for name in order})
                print(f"start {start + 1}, round {index + 1}: " + "  ".join(
                    f"{name} p50 {rounds[-1][name]['p50_ms']:.3f} ms" for name in ("direct", "base", "change")),
                      flush=True)
            for process in started:
                process.stop()
                processes.remove(process)
    finally:
        stop(spinners)
        for process in reversed(processes):
            process.stop()
        for drop in drops:
            drop()
        if base_tree is not None:
            remove_worktree(base_tree)
        shutil.rmtree(work, ignore_errors=True)
    result = compare(rounds, stream)
    result.update(base=args.base, stream=stream, latency_ms=args.latency, requests=args.requests, awake=args.awake,
                  restarts=args.restarts,
                  gateway_python=environment, started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  errors={name: sum(r[name]["errors"] for r in rounds) for name in ("direct", "base", "change")})
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"ab-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"{args.base} against the working tree, {'streamed' if stream else 'non-streamed'}, concurrency 1, "
          f"{args.latency} ms upstream, {args.rounds} rounds of {args.requests} calls over {args.restarts} starts"
          f"{', CPUs kept awake' if args.awake else ''}; errors {result['errors']}", flush=True)
    print("\n".join(report_lines(result)), flush=True)
    print(f"results: {out}", flush=True)
    return result


if __name__ == "__main__":
    main()
