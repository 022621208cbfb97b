"""The benchmark driver: direct to a stand-in upstream, through this gateway, through a bare ASGI relay (the
floor: bench/relay.py), through the LiteLLM proxy, interleaved in one run.

    python -m bench                    # the full matrix (make bench); writes docs/performance.md's table
    python -m bench --smoke            # a tiny run: direct + gateway, a few requests, no LiteLLM, no wrk
    python -m bench --soak 100000      # the gateway alone, RSS sampled every 10,000 requests

The gateway runs on its production path: a database-backed virtual key (not the master key) with a budget,
rpm and tpm limits, spend logging on, priced model; on PostgreSQL when DATABASE_URL points there (a database
``bench_<random>`` is created and dropped), on SQLite otherwise; with Redis when REDIS_URL is set; from
bench/.venv-gateway, which holds requirements.txt only, as the production image does (bench/install-gateway.sh;
a --smoke run uses it when it is there and up to date, else this interpreter; --gateway-python overrides).
The LiteLLM proxy (bench/install-litellm.sh) runs with its master key and no database, its lightest path.

Every measured point is (upstream latency, streaming, concurrency); each point is run ``--repeats`` times,
the three targets in rotated order inside every repeat, and the median of the repeats is quoted.
Non-streamed points are driven by ``wrk`` when it is installed (apt: wrk), streamed ones by
``bench.loadgen`` (it times the first streamed byte); the load generator's own CPU is recorded, so a
saturated generator shows.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.monitor import Monitor, rss_bytes, tree
from tests.servers.database import fresh_database
from tests.servers.process import ServerProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LITELLM_BIN = BENCH / ".venv-litellm" / "bin" / "litellm"
GATEWAY_VENV = BENCH / ".venv-gateway"  # requirements.txt only (bench/install-gateway.sh)
MASTER_KEY = "sk-bench-master-0000"
UPSTREAM_KEY = "sk-bench-upstream"
CHUNKS = 20
RESULTS_START, RESULTS_END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"


@dataclass
class Target:
    name: str
    base: str  # URL up to the API path
    pid: int | None  # the server's root process (None: not monitored)
    auth: str | None
    process: ServerProcess | None = None
    restart: Callable[[], tuple[ServerProcess, Target]] | None = None   # to start it again should it die

    def url(self, latency_ms: int) -> str:
        if self.name == "direct":
            return f"{self.base}/l{latency_ms}/c{CHUNKS}/v1/chat/completions"
        return f"{self.base}/v1/chat/completions"

    def model(self, latency_ms: int) -> str:
        return "bench-model" if self.name == "direct" else f"bench-l{latency_ms}"


# Servers -------------------------------------------------------------------------------------------

def model_list(upstream: str, latencies: list[int]) -> str:
    """The same models for both proxies: one per upstream latency, priced so that spend is computed."""
    return "model_list:\n" + "".join(f"""  - model_name: bench-l{ms}
    litellm_params:
      model: openai/bench-model
      api_base: {upstream}/l{ms}/c{CHUNKS}/v1
      api_key: {UPSTREAM_KEY}
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
""" for ms in latencies)


def bench_database(log_dir: Path) -> tuple[str, callable]:
    """(DATABASE_URL for the gateway, drop) — a fresh PostgreSQL database when DATABASE_URL is PostgreSQL."""
    return fresh_database("bench", log_dir)


def post_json(url: str, body: dict, key: str) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "content-type": "application/json", "authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def gateway_python(args) -> tuple[str, str]:
    """(interpreter, what it is) for the gateway under test: the runtime-only venv, installed for a real run."""
    if args.gateway_python:
        return args.gateway_python, f"{args.gateway_python} (--gateway-python)"
    if not args.smoke:
        subprocess.run(["bash", str(BENCH / "install-gateway.sh")], check=True)
    installed = GATEWAY_VENV / "requirements.txt"  # written by install-gateway.sh once the install finished
    if installed.exists() and installed.read_bytes() == (ROOT / "requirements.txt").read_bytes():
        return str(GATEWAY_VENV / "bin" / "python"), "bench/.venv-gateway (requirements.txt only)"
    return sys.executable, f"{sys.executable} (the bench's own environment, test packages included)"


def start_upstream(log_dir: Path) -> tuple[ServerProcess, Target]:
    """The stand-in upstream (bench/upstream.py), and the target that calls it directly."""
    port = free_port()
    process = ServerProcess([sys.executable, "-m", "bench.upstream", "--port", str(port), "--chunks", str(CHUNKS)],
                            log_dir=log_dir, name="upstream", cwd=ROOT).start()
    process.wait_until_ready(f"http://127.0.0.1:{port}/health")
    return process, Target("direct", f"http://127.0.0.1:{port}", process.pid, None)


def start_gateway(log_dir: Path, upstream: str, latencies: list[int], workers: int, database_url: str,
                  python: str = sys.executable, root: Path = ROOT,
                  key_alias: str = "bench") -> tuple[ServerProcess, Target]:
    """The gateway of the tree at ``root`` (this one, or another checkout: ``bench.ab``), with a new key named
    ``key_alias`` (unique in its database)."""
    config = log_dir / "gateway.yaml"
    config.write_text(model_list(upstream, latencies) + f"general_settings:\n  master_key: {MASTER_KEY}\n")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "gateway_project.settings",
           "GATEWAY_DATA_DIR": str(log_dir / "data")}
    env.pop("GATEWAY_MASTER_KEY", None)
    if env.get("REDIS_URL"):  # rate-limit counters and caches in Redis, apart from any other deployment's
        env["GATEWAY_REDIS_PREFIX"] = f"bench-{uuid.uuid4().hex[:8]}:"
    process = ServerProcess([python, "manage.py", "gateway", "--config", str(config), "--port", str(port),
                             "--migrate", "--workers", str(workers), "--log-level", "warning"],
                            log_dir=log_dir, name="gateway", env=env, cwd=root).start()
    base = f"http://127.0.0.1:{port}"
    process.wait_until_ready(f"{base}/health/liveliness", timeout=120)
    # The production path: a virtual key from the database, with a budget and limits that are checked.
    key = post_json(f"{base}/key/generate", {
        "key_alias": key_alias, "max_budget": 1_000_000, "budget_duration": "30d",
        "rpm_limit": 10_000_000, "tpm_limit": 10_000_000_000}, MASTER_KEY)["key"]
    return process, Target("gateway", base, process.pid, key)


def start_relay(log_dir: Path, upstream: str, python: str = sys.executable) -> tuple[ServerProcess, Target]:
    """The floor (bench/relay.py): a bare ASGI relay on the gateway's server stack and upstream client."""
    port = free_port()
    process = ServerProcess([python, "-m", "bench.relay", "--port", str(port), "--upstream", upstream,
                             "--chunks", str(CHUNKS)],
                            log_dir=log_dir, name="relay", cwd=ROOT).start()
    process.wait_until_ready(port, timeout=60)
    return process, Target("relay", f"http://127.0.0.1:{port}", process.pid, None)


def start_litellm(log_dir: Path, upstream: str, latencies: list[int], workers: int) -> tuple[ServerProcess, Target]:
    config = log_dir / "litellm.yaml"
    config.write_text(model_list(upstream, latencies)
                      + f"general_settings:\n  master_key: {MASTER_KEY}\nlitellm_settings:\n  set_verbose: false\n")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"LITELLM_LOG": "ERROR", "LITELLM_MODE": "PRODUCTION", "NO_DOCS": "True",
                "LITELLM_TELEMETRY": "False"})
    process = ServerProcess([str(LITELLM_BIN), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                             "--num_workers", str(workers)], log_dir=log_dir, name="litellm", env=env, cwd=log_dir
                            ).start()
    base = f"http://127.0.0.1:{port}"
    process.wait_until_ready(f"{base}/health/liveliness", timeout=180)
    return process, Target("litellm", base, process.pid, MASTER_KEY)


# Load ----------------------------------------------------------------------------------------------

def body_file(work: Path, model: str, stream: bool) -> Path:
    path = work / f"body-{model}-{'s' if stream else 'n'}.json"
    body = {"model": model, "messages": [{"role": "user", "content": "Say hello to the benchmark."}]}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    path.write_text(json.dumps(body))
    return path


OPEN_LOOP_CONNECTIONS = 64   # opened before an open-loop run's arrivals start


def drive(target: Target, work: Path, latency_ms: int, stream: bool, concurrency: int, duration: float | None,
          requests: int | None, use_wrk: bool, rate: float | None = None) -> dict:
    """One measurement: load on ``target`` while its process tree (and the generator's) are monitored.
    With ``rate``, open loop: Poisson arrivals at that rate (``bench.loadgen --rate``)."""
    body = body_file(work, target.model(latency_ms), stream)
    wrk = use_wrk and not stream and duration is not None and rate is None
    if wrk:
        env = {**os.environ, "BENCH_BODY_FILE": str(body), "BENCH_AUTH": target.auth or ""}
        args = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--timeout", "10s", "-s",
                str(BENCH / "wrk.lua"), target.url(latency_ms)]
    else:
        env = dict(os.environ)
        connections = concurrency if rate is None else OPEN_LOOP_CONNECTIONS
        args = [sys.executable, "-m", "bench.loadgen", "--url", target.url(latency_ms), "--body-file", str(body),
                "--concurrency", str(connections)]
        args += ["--duration", str(duration)] if duration is not None else ["--requests", str(requests)]
        if rate is not None:
            args += ["--rate", str(rate)]
        if target.auth:
            args += ["--header", f"authorization: Bearer {target.auth}"]
    # The generator's CPU: what this process's reaped children spent (it is the only one reaped meanwhile).
    before, started = _children_cpu(), time.perf_counter()
    load = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    server = Monitor(target.pid) if target.pid else None
    if server:
        server.__enter__()
    out, err = load.communicate(timeout=(duration or 0) + 600)
    if server:
        server.__exit__(None, None, None)
    generator_cores = (_children_cpu() - before) / (time.perf_counter() - started)
    if load.returncode != 0:
        raise RuntimeError(f"load generator failed ({load.returncode}): {(out + err).decode()[-2000:]}")
    if wrk:
        line = next(line for line in out.decode().splitlines() if line.startswith("BENCH_JSON "))
        raw = json.loads(line[len("BENCH_JSON "):])
        seconds = raw["duration_us"] / 1e6
        errors = sum(raw["errors"].values())
        result = {"requests": raw["requests"], "errors": errors, "duration_s": seconds,
                  "rps": (raw["requests"] - raw["errors"]["status"]) / seconds,
                  "latency_ms": {q: raw["latency_us"][q] / 1000 for q in ("p50", "p99")}, "ttfb_ms": None,
                  "generator": "wrk"}
    else:
        raw = json.loads(out.decode().strip().splitlines()[-1])
        result = {"requests": raw["requests"], "errors": raw["errors"], "duration_s": raw["duration_s"],
                  "rps": raw["rps"], "latency_ms": raw["latency_ms"], "ttfb_ms": raw["ttfb_ms"],
                  "generator": "asyncio", "mean_in_flight": raw.get("mean_in_flight")}
    result["generator_cores"] = generator_cores
    if server:
        ok = result["requests"] - result["errors"]
        result.update(cores=server.usage.cores, peak_rss_mb=server.usage.peak_rss_mb,
                      peak_worker_rss_mb=server.usage.peak_worker_rss_mb,
                      cpu_ms_per_request=server.usage.cpu_seconds * 1000 / ok if ok else None)
    return result


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_of(runs: list[dict], *path: str) -> float | None:
    values = []
    for run in runs:
        value = run
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            values.append(value)
    return statistics.median(values) if values else None


def summarise_point(runs_by_target: dict[str, list[dict]]) -> dict:
    summary = {}
    for name, runs in runs_by_target.items():
        summary[name] = {
            "rps": median_of(runs, "rps"), "p50_ms": median_of(runs, "latency_ms", "p50"),
            "p99_ms": median_of(runs, "latency_ms", "p99"), "ttfb_p50_ms": median_of(runs, "ttfb_ms", "p50"),
            "cores": median_of(runs, "cores"), "cpu_ms_per_request": median_of(runs, "cpu_ms_per_request"),
            "peak_rss_mb": max((r.get("peak_rss_mb") or 0) for r in runs) or None,
            "generator_cores": median_of(runs, "generator_cores"), "errors": sum(r["errors"] for r in runs),
            "mean_in_flight": median_of(runs, "mean_in_flight")}
    direct = summary.get("direct")
    for name, figures in summary.items():
        if name == "direct" or not direct:
            continue
        for added, field in (("added_p50_ms", "p50_ms"), ("added_p99_ms", "p99_ms"),
                             ("added_ttfb_ms", "ttfb_p50_ms")):
            both = figures[field] is not None and direct[field] is not None
            figures[added] = figures[field] - direct[field] if both else None
        # Throughput per core from the CPU each request cost the proxy's process tree.
        cost = figures["cpu_ms_per_request"]
        figures["rps_per_core"] = 1000 / cost if cost else None
    return summary


def load_average() -> list[float]:
    return list(os.getloadavg())


# Modes ---------------------------------------------------------------------------------------------

def measure(target: Target, crashes: list[dict], point: dict, *drive_args, **drive_kwargs) -> dict:
    """``drive`` on ``target``; should the target's server have died meanwhile, the crash is recorded, the
    server started again, and the measurement counted as failed (no figures, one error) rather than ending
    the run: the LiteLLM proxy has been seen to crash under load (a segfault in its interpreter)."""
    process = target.process
    watched = process is not None and target.restart is not None
    try:
        result = drive(target, *drive_args, **drive_kwargs)
    except RuntimeError:
        if not watched or process.is_running():
            raise
        result = None
    if watched and not process.is_running():
        crashes.append({**point, "target": target.name, "exit_code": process.returncode,
                        "log_tail": process.log_tail(20)})
        print(f"{target.name} died (exit code {process.returncode}) at {point}; starting it again", flush=True)
        new_process, new_target = target.restart()
        target.process, target.base, target.pid, target.auth = new_process, new_target.base, new_target.pid, \
            new_target.auth
        return {"requests": 0, "errors": max(1, (result or {}).get("errors", 0)), "duration_s": 0.0, "rps": None,
                "latency_ms": {}, "ttfb_ms": None, "generator": None, "crashed": True}
    return result


def interleaved(targets: list[Target], repeats: int, run_one: Callable[[Target], dict]) -> dict[str, list[dict]]:
    """``run_one`` on each target in turn, ``repeats`` times, the order rotated on each repeat."""
    runs: dict[str, list[dict]] = {t.name: [] for t in targets}
    for repeat in range(repeats):
        shift = repeat % len(targets)
        for target in targets[shift:] + targets[:shift]:
            runs[target.name].append(run_one(target))
    return runs


def run_matrix(args, work: Path, targets: list[Target], use_wrk: bool) -> dict:
    points, crashes = [], []
    loads = [load_average()]
    for latency_ms in args.latency:
        for stream in args.stream:
            for concurrency in args.concurrency:
                where = {"latency_ms": latency_ms, "stream": stream, "concurrency": concurrency}
                runs = interleaved(targets, args.repeats, lambda target: measure(
                    target, crashes, where, work, latency_ms, stream, concurrency, args.duration, args.requests,
                    use_wrk))
                summary = summarise_point(runs)
                points.append({"latency_ms": latency_ms, "stream": stream, "concurrency": concurrency,
                               "summary": summary, "runs": runs})
                loads.append(load_average())
                print(point_line(points[-1]), flush=True)
    # Open loop: requests arriving at random (Poisson) at a fixed rate, as real traffic does, rather than the
    # closed loop's clients that all send again the moment their answers come back (with a fixed-latency
    # upstream, concurrency 50 comes in waves of 50 at once). The LiteLLM proxy is left out: one worker of it
    # serves a few hundred requests per second at most, and an open loop past that only queues without end.
    open_points = []
    open_targets = [t for t in targets if t.name != "litellm"]
    for latency_ms in args.latency if args.rate else []:
        for rate in args.rate:
            where = {"latency_ms": latency_ms, "rate": rate}
            runs = interleaved(open_targets, args.repeats, lambda target: measure(
                target, crashes, where, work, latency_ms, False, 0, args.duration, args.requests, use_wrk, rate=rate))
            open_points.append({"latency_ms": latency_ms, "rate": rate, "summary": summarise_point(runs),
                                "runs": runs})
            loads.append(load_average())
            print(f"open loop {rate:g}/s: " + point_line({**open_points[-1], "stream": False, "concurrency": "-"}),
                  flush=True)
    return {"points": points, "open_points": open_points, "load_average": loads, "crashes": crashes}


def point_line(point: dict) -> str:
    parts = [f"lat={point['latency_ms']}ms stream={point['stream']} c={point['concurrency']}:"]
    for name, figures in point["summary"].items():
        parts.append(f"{name} {_f(figures['rps'])} req/s" + (f" ({figures['cores']:.2f} cores)" if figures.get(
            "cores") is not None else "") + (f" +{figures['added_p50_ms']:.2f} ms p50" if figures.get(
                "added_p50_ms") is not None else ""))
    return "  ".join(parts)


def run_soak(args, work: Path, gateway: Target) -> dict:
    """``--soak N`` requests through the gateway at concurrency 10 (non-streamed and streamed alternating),
    the gateway's RSS sampled every 10,000."""
    every = 10_000 if args.soak >= 20_000 else max(1, args.soak // 10)
    bodies = [body_file(work, gateway.model(0), False), body_file(work, gateway.model(0), True)]
    cmd = [sys.executable, "-m", "bench.loadgen", "--url", gateway.url(0), "--concurrency", "10",
           "--requests", str(args.soak), "--progress-every", str(every),
           "--header", f"authorization: Bearer {gateway.auth}"]
    for body in bodies:
        cmd += ["--body-file", str(body)]
    pids = tree(gateway.pid)
    total, largest = rss_bytes(pids)
    samples = [{"requests": 0, "rss_mb": total / (1 << 20), "worker_rss_mb": largest / (1 << 20)}]
    load = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=ROOT, text=True)
    final = None
    for line in load.stdout:
        data = json.loads(line)
        if "progress" in data:
            total, largest = rss_bytes(pids)
            samples.append({"requests": data["progress"], "rss_mb": total / (1 << 20),
                            "worker_rss_mb": largest / (1 << 20)})
            print(f"soak: {data['progress']} requests, gateway RSS {total / (1 << 20):.1f} MB", flush=True)
        else:
            final = data
    load.wait()
    # Growth per 10k requests, after the first interval (caches and pools filling up are not a leak).
    steady = samples[1:] if len(samples) > 2 else samples
    span = steady[-1]["requests"] - steady[0]["requests"]
    growth = (steady[-1]["rss_mb"] - steady[0]["rss_mb"]) / span * 10_000 if span else 0.0
    return {"requests": args.soak, "samples": samples, "growth_mb_per_10k": growth, "result": final}


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        memory = f"{int(Path('/proc/meminfo').read_text().split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "memory": memory,
            "kernel": platform.release(), "python": platform.python_version()}


def versions(use_litellm: bool, python: str = sys.executable) -> dict:
    """Versions of the gateway's server stack (in the gateway's environment), LiteLLM and wrk."""
    out = subprocess.run([python, "-c", "import importlib.metadata as m, json; print(json.dumps({n: m.version(n) "
                          "for n in ('django', 'uvicorn', 'uvloop', 'httptools', 'orjson')}))"],
                         capture_output=True, text=True)
    found = json.loads(out.stdout) if out.returncode == 0 else {}
    if use_litellm:
        out = subprocess.run([str(LITELLM_BIN.parent / "python"), "-c", "import importlib.metadata as m;"
                              "print(m.version('litellm'))"], capture_output=True, text=True)
        found["litellm"] = out.stdout.strip()
    if shutil.which("wrk"):
        banner = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split()
        found["wrk"] = banner[1] if len(banner) > 1 else "?"  # "wrk 4.1.0 [epoll] Copyright ..."
    return found


# Report --------------------------------------------------------------------------------------------

def _f(value: float | None, fmt: str = "{:.0f}") -> str:
    return "–" if value is None else fmt.format(value)


def markdown(report: dict) -> str:
    lines = []
    m, v = report["machine"], report["versions"]
    lines.append(f"Run {report['started']} with `{report['command']}`; {report['repeats']} repeats of "
                 f"{report['duration']} s per point, medians quoted; {report['workers']} worker process(es) for "
                 f"each proxy; upstream {CHUNKS} chunks per stream.")
    lines.append("")
    lines.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}, Linux {m['kernel']}, Python "
                 f"{m['python']}. Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".")
    loads = report["matrix"]["load_average"]
    lines.append(f"Gateway environment: {report['gateway_python']}.")
    lines.append(f"Load average (1 min) during the run: from {loads[0][0]:.2f} to max "
                 f"{max(l[0] for l in loads):.2f} (other jobs shared the machine).")
    lines.append("")
    floor = any("relay" in point["summary"] for point in report["matrix"]["points"])
    lines.append("| upstream latency | stream | conc. | direct req/s | gateway req/s | LiteLLM req/s | gateway cores "
                 "| LiteLLM cores | gateway req/s per core | LiteLLM req/s per core | per-core ratio | gateway added "
                 "p50 / p99 ms | LiteLLM added p50 / p99 ms | added TTFB gateway / LiteLLM ms | peak RSS gateway / "
                 "LiteLLM MB | generator cores (max) |" + (" bare relay added p50 / p99 / TTFB ms |" if floor else ""))
    lines.append("|" + "---|" * (17 if floor else 16))
    for point in report["matrix"]["points"]:
        s = point["summary"]
        d, g, lt, r = s["direct"], s["gateway"], s.get("litellm"), s.get("relay")
        ratio = (g["rps_per_core"] / lt["rps_per_core"]) if lt and g.get("rps_per_core") and lt.get(
            "rps_per_core") else None
        generators = max(fig["generator_cores"] or 0 for fig in s.values())
        lines.append(
            f"| {point['latency_ms']} ms | {'yes' if point['stream'] else 'no'} | {point['concurrency']} "
            f"| {_f(d['rps'])} | {_f(g['rps'])} | {_f(lt and lt['rps'])} | {_f(g['cores'], '{:.2f}')} "
            f"| {_f(lt and lt['cores'], '{:.2f}')} | {_f(g.get('rps_per_core'))} "
            f"| {_f(lt and lt.get('rps_per_core'))} | {_f(ratio, '{:.1f}×')} "
            f"| {_f(g['added_p50_ms'], '{:.2f}')} / {_f(g['added_p99_ms'], '{:.2f}')} "
            f"| {_f(lt and lt['added_p50_ms'], '{:.2f}')} / {_f(lt and lt['added_p99_ms'], '{:.2f}')} "
            f"| {_f(g['added_ttfb_ms'], '{:.2f}')} / {_f(lt and lt['added_ttfb_ms'], '{:.2f}')} "
            f"| {_f(g['peak_rss_mb'])} / {_f(lt and lt['peak_rss_mb'])} | {generators:.2f} |"
            + (f" {_f(r and r['added_p50_ms'], '{:.2f}')} / {_f(r and r['added_p99_ms'], '{:.2f}')} "
               f"/ {_f(r and r['added_ttfb_ms'], '{:.2f}')} |" if floor else ""))
    if report["matrix"].get("open_points"):
        lines.append("")
        lines.append("Open loop: Poisson arrivals at a fixed rate, non-streamed (the LiteLLM proxy is left out: one "
                     "worker of it cannot serve these rates).")
        lines.append("")
        lines.append("| upstream latency | arrivals/s | mean in flight (gateway) | gateway req/s | gateway cores "
                     "| gateway added p50 / p99 ms | bare relay added p50 / p99 ms |")
        lines.append("|" + "---|" * 7)
        for point in report["matrix"]["open_points"]:
            g, r = point["summary"]["gateway"], point["summary"].get("relay")
            lines.append(f"| {point['latency_ms']} ms | {point['rate']:g} | {_f(g['mean_in_flight'], '{:.1f}')} "
                         f"| {_f(g['rps'])} | {_f(g['cores'], '{:.2f}')} "
                         f"| {_f(g['added_p50_ms'], '{:.2f}')} / {_f(g['added_p99_ms'], '{:.2f}')} "
                         f"| {_f(r and r['added_p50_ms'], '{:.2f}')} / {_f(r and r['added_p99_ms'], '{:.2f}')} |")
    for crash in report["matrix"].get("crashes", []):
        where = ", ".join(f"{k} {v}" for k, v in crash.items() if k not in ("target", "exit_code", "log_tail"))
        lines.append("")
        lines.append(f"**{crash['target']} died** during a measurement ({where}; exit code {crash['exit_code']}): "
                     "started again, that measurement counted as one failed request and no figures.")
    all_points = report["matrix"]["points"] + report["matrix"].get("open_points", [])
    errors = {name: sum(p["summary"][name]["errors"] for p in all_points if name in p["summary"])
              for name in report["matrix"]["points"][0]["summary"]} if report["matrix"]["points"] else {}
    lines.append("")
    lines.append("Non-2xx or failed requests over the run: " + ", ".join(f"{k} {n}" for k, n in errors.items()) + ".")
    return "\n".join(lines)


def write_docs(path: Path, block: str) -> None:
    text = path.read_text()
    if RESULTS_START not in text or RESULTS_END not in text:
        raise SystemExit(f"{path} has no results block ({RESULTS_START} ... {RESULTS_END}): the table is "
                         "printed above and kept in the results JSON")
    start, end = text.index(RESULTS_START) + len(RESULTS_START), text.index(RESULTS_END)
    path.write_text(text[:start] + "\n" + block + "\n" + text[end:])


# Main ----------------------------------------------------------------------------------------------

def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run: direct + gateway, few requests, no "
                                                             "LiteLLM, asyncio generator only")
    parser.add_argument("--soak", type=int, metavar="N", help="soak mode: N requests through the gateway, RSS sampled")
    parser.add_argument("--no-litellm", action="store_true", help="leave the LiteLLM proxy out")
    parser.add_argument("--no-wrk", action="store_true", help="drive every point with the asyncio generator")
    parser.add_argument("--no-floor", action="store_true", help="leave out the bare ASGI relay (bench/relay.py) "
                                                                "measured as the floor")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--latency", type=int, nargs="+", default=[0, 50], help="upstream latencies (ms)")
    parser.add_argument("--stream", type=lambda s: s == "yes", nargs="+", default=[False, True],
                        metavar="yes|no", help="streamed points to run (default: no yes)")
    parser.add_argument("--rate", type=float, nargs="*", default=[1000],
                        help="open-loop points: Poisson arrival rates (requests/s) at each upstream latency, "
                             "non-streamed (default 1000: about 50 in flight at 50 ms; none: --rate with no value)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--requests", type=int, default=None, help="requests per measurement instead of a duration")
    parser.add_argument("--workers", type=int, default=1, help="worker processes of each proxy (default 1)")
    parser.add_argument("--gateway-python", metavar="PATH", help="serve the gateway with this interpreter instead "
                                                                 "of bench/.venv-gateway (requirements.txt only)")
    parser.add_argument("--results-dir", type=Path, default=BENCH / "results")
    parser.add_argument("--docs", type=Path, default=None,
                        help="Markdown file whose results block is replaced (default docs/performance.md for a "
                             "full run, none for --smoke or --soak)")
    parser.add_argument("--no-docs", action="store_true",
                        help="print the table only, leaving docs/performance.md as it is (a narrower run)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.no_litellm, args.no_wrk = True, True
        args.concurrency, args.latency, args.repeats, args.rate = [1, 2], [0], 1, [100]
        args.duration, args.requests = None, args.requests or 20
    elif args.requests:
        args.duration = None
    if args.no_docs:
        args.docs = None
    elif args.docs is None and not args.smoke and not args.soak:
        args.docs = ROOT / "docs" / "performance.md"
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    use_litellm = not args.no_litellm and not args.soak
    if use_litellm:
        subprocess.run(["bash", str(BENCH / "install-litellm.sh")], check=True)
    use_wrk = not args.no_wrk and shutil.which("wrk") is not None
    python, environment = gateway_python(args)
    print(f"gateway environment: {environment}", flush=True)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    database_url, drop = bench_database(work)
    processes: list[ServerProcess] = []
    try:
        upstream, direct = start_upstream(work)
        processes.append(upstream)
        upstream_base = direct.base
        latencies = sorted(set(args.latency) | {0})
        gateway_process, gateway = start_gateway(work, upstream_base, latencies, args.workers, database_url, python)
        processes.append(gateway_process)
        report: dict = {"started": started, "command": "python -m bench " + " ".join(argv if argv is not None
                                                                                      else sys.argv[1:]),
                        "machine": machine(), "versions": versions(use_litellm, python), "workers": args.workers,
                        "gateway_python": environment,
                        "repeats": args.repeats, "duration": args.duration, "requests": args.requests,
                        "generator": "wrk (non-streamed) + asyncio (streamed)" if use_wrk else "asyncio",
                        "database": database_url.split("://")[0], "redis": bool(os.environ.get("REDIS_URL"))}
        if args.soak:
            report["soak"] = run_soak(args, work, gateway)
        else:
            targets = [direct, gateway]
            if not args.no_floor:
                relay_process, relay = start_relay(work, upstream_base, python)
                processes.append(relay_process)
                targets.append(relay)
            if use_litellm:
                def restart_litellm() -> tuple[ServerProcess, Target]:
                    started = start_litellm(work, upstream_base, latencies, args.workers)
                    processes.append(started[0])
                    return started
                litellm_process, litellm = restart_litellm()
                litellm.process, litellm.restart = litellm_process, restart_litellm
                targets.append(litellm)
            # Warm-up: connection pools, caches, the key's first lookup; not measured.
            for target in targets[1:]:
                drive(target, work, 0, False, 2, None, 50, False)
            report["matrix"] = run_matrix(args, work, targets, use_wrk)
        report["gateway_log_tail"] = gateway_process.log_path.read_text()[-2000:]
    finally:
        for process in reversed(processes):
            process.stop()
        drop()
    name = "soak" if args.soak else "smoke" if args.smoke else "matrix"
    out = args.results_dir / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"results: {out}", flush=True)
    if "matrix" in report:
        block = markdown(report)
        print(block, flush=True)
        if args.docs:
            write_docs(args.docs, block)
            print(f"wrote the table into {args.docs}", flush=True)
    if "soak" in report:
        soak = report["soak"]
        print(f"soak: growth {soak['growth_mb_per_10k']:+.2f} MB per 10k requests; samples "
              + ", ".join(f"{s['requests']}: {s['rss_mb']:.1f} MB" for s in soak["samples"]), flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return report


if __name__ == "__main__":
    main()
