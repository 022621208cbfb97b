"""Nothing lost (docs/spend.md): with Redis configured, spend records pass through a Redis stream. Redis is
killed and restarted under load, and a gateway is killed with SIGKILL under load: every request a client
saw answered still ends up with exactly one spend row, and the key's spend equals the sum of its rows; a
stream in flight at the kill gets exactly one row too, a failed (partial) call (the in-flight journal).

Redis here is a private server on a free port (append-only file, fsync always), never the shared one.
"""
from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import httpx2
import openai
import pytest

from tests.e2e.conftest import MASTER_KEY, _fresh_database_url, launch_gateway, launch_stand_in, wait_for
from tests.servers.redis_server import REDIS_SERVER, PrivateRedis

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.deployment,
    pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server is not installed"),
]

HI = [{"role": "user", "content": "hi"}]
WINDOW_MARGIN = 1.0   # seconds
LONG_REPLY = " ".join(f"word{i}" for i in range(60))


def config(upstream_base: str) -> str:
    return f"""model_list:
  - model_name: priced
    litellm_params:
      model: openai/house-model
      api_base: {upstream_base}/v1
      api_key: os.environ/E2E_UPSTREAM_KEY
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
litellm_settings:
  callbacks: ["prometheus"]
general_settings:
  master_key: {MASTER_KEY}
"""


class Load:
    """Clients sending chat completions (openai SDK) until stopped; what they saw is kept."""

    def __init__(self, base_url: str, key: str, threads: int = 3) -> None:
        self.answered: list[str] = []
        self.received_at: dict[str, float] = {}   # monotonic time each answer arrived
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(base_url, key), daemon=True)
                         for _ in range(threads)]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def count(self) -> int:
        with self._lock:
            return len(self.answered)

    def _run(self, base_url: str, key: str) -> None:
        client = openai.OpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=10)
        while not self._stop.is_set():
            try:
                answer = client.chat.completions.create(model="priced", messages=HI)
            except openai.APIStatusError as exc:
                with self._lock:
                    self.failures.append(f"{exc.status_code}: {exc.message}")
                continue
            except openai.APIConnectionError as exc:   # the gateway was killed under this request
                with self._lock:
                    self.failures.append(f"connection: {exc}")
                continue
            with self._lock:
                self.answered.append(answer.id)
                self.received_at[answer.id] = time.monotonic()

    def answered_before(self, moment: float) -> list[str]:
        with self._lock:
            return [answer for answer in self.answered if self.received_at[answer] < moment]


def rows_of(gw, key: str) -> list[dict]:
    return gw.spend_logs(api_key=key, limit=10000)


def assert_exactly_one_row_per_answer(gw, key: str, answered: list[str]) -> list[dict]:
    """Waits until every request in ``answered`` has its row; then checks that no request has two, and
    that the key's spend is the sum of its rows."""
    wanted = set(answered)

    def written_and_quiet() -> tuple[list[dict], dict] | None:
        # Rows of calls answered later (or in flight at a kill) may still be arriving: the key is read between
        # two reads of its rows that agree, so that it matches them (its spend is added in its rows' transaction).
        before = rows_of(gw, key)
        info = gw.admin("GET", "/key/info", params={"key": key}).json()["info"]
        after = rows_of(gw, key)
        return (after, info) if len(after) == len(before) and wanted <= {row["request_id"] for row in after} else None

    rows, info = wait_for(written_and_quiet, timeout=60)
    ids = [row["request_id"] for row in rows]
    assert len(ids) == len(set(ids)), "a request has two spend rows"
    assert info["spend"] == pytest.approx(sum(row["spend"] for row in rows), rel=1e-9, abs=1e-12)
    return rows


@pytest.fixture
def upstream_server(e2e_dir):
    with launch_stand_in(e2e_dir, f"stream-upstream-{uuid.uuid4().hex[:6]}") as client:
        yield client


@pytest.fixture
def redis_server(tmp_path):
    with PrivateRedis(tmp_path) as server:
        yield server


def test_a_redis_restart_under_load_loses_no_spend_row_and_counts_none_twice(e2e_dir, tmp_path, upstream_server,
                                                                            redis_server):
    env = {"REDIS_URL": redis_server.url, "GATEWAY_REDIS_PREFIX": f"test-{uuid.uuid4().hex}:",
           "GATEWAY_DATA_DIR": str(tmp_path / "data")}
    # Two workers: two consumers in the group, each worker falling back and resuming on its own.
    with launch_gateway(e2e_dir, config(upstream_server.base_url), name="stream-redis-restart", env=env,
                        workers=2) as gw:
        key = gw.new_key()   # no budget or rate limit: the shared counters are not needed to answer
        load = Load(gw.base_url, key).start()
        try:
            wait_for(lambda: load.count() >= 30, timeout=30)
            redis_server.kill()   # SIGKILL: no goodbye
            wait_for(lambda: gw.http.get("/health/readiness").status_code == 503)
            assert gw.http.get("/health/readiness").json()["spend_stream"] == "unreachable"
            assert gw.http.get("/health/liveliness").status_code == 200
            during = load.count()
            wait_for(lambda: load.count() >= during + 300, timeout=30)   # answered while Redis is down
            redis_server.start()
            wait_for(lambda: gw.http.get("/health/readiness").status_code == 200, timeout=20)
            after = load.count()
            wait_for(lambda: load.count() >= after + 300, timeout=30)
        finally:
            load.stop()

        assert load.failures == []
        assert_exactly_one_row_per_answer(gw, key, load.answered)
        stream = redis_server.client()
        wait_for(lambda: all(group["pending"] == 0 for key_name in stream.keys("test-*spend-events*")
                             for group in stream.xinfo_groups(key_name)))
        # What to watch: the backlog gauge, read from Redis at scrape time, is back to zero.
        wait_for(lambda: "gateway_spend_events_pending 0.0" in gw.admin("GET", "/metrics/").text)


def test_a_gateway_killed_under_load_loses_no_answered_spend_row(e2e_dir, tmp_path, upstream_server, redis_server):
    database_url, drop = _fresh_database_url(e2e_dir)
    base = {"REDIS_URL": redis_server.url, "GATEWAY_REDIS_PREFIX": f"test-{uuid.uuid4().hex}:",
            "GATEWAY_DATA_DIR": str(tmp_path / "data"), "GATEWAY_SPEND_STREAM_CLAIM_IDLE": "2",
            "GATEWAY_INFLIGHT_TIMEOUT": "2"}
    # The first instance writes to the database rarely: when it is killed, most answered requests are
    # in the stream only (read and unacknowledged, or not read yet). Without the stream they would be lost.
    slow_writer = {**base, "GATEWAY_SPEND_FLUSH_INTERVAL": "30", "GATEWAY_SPEND_BATCH_SIZE": "100000"}
    cfg = config(upstream_server.base_url)
    try:
        with launch_gateway(e2e_dir, cfg, name="stream-killed", env=slow_writer, database_url=database_url) as gw:
            key = gw.new_key()
            upstream_server.behave(chunk_delay_ms=250, reply=LONG_REPLY)   # a stream lasts ~15 s (the delay is
            # between streamed chunks only: non-streamed answers are not slowed)
            stream_ids, stream_started = [], threading.Event()

            def stream_in_flight() -> None:
                with httpx2.stream("POST", f"{gw.base_url}/chat/completions", timeout=30, trust_env=False,
                                   headers={"Authorization": f"Bearer {key}"},
                                   json={"model": "priced", "messages": HI, "stream": True}) as response:
                    try:
                        for line in response.iter_lines():
                            if line.startswith("data: {"):
                                stream_ids.append(line.split('"id":"', 1)[1].split('"', 1)[0])
                                stream_started.set()
                            elif line == "data: [DONE]":
                                stream_ids.append("[DONE]")
                    except httpx2.HTTPError:
                        pass   # cut off by the kill, as expected

            streamer = threading.Thread(target=stream_in_flight, daemon=True)
            streamer.start()
            load = Load(gw.base_url, key).start()
            try:
                assert stream_started.wait(15)
                wait_for(lambda: len(load.answered_before(time.monotonic() - WINDOW_MARGIN)) >= 60, timeout=30)
                killed_at = time.monotonic()
                os.killpg(gw.process.pid, signal.SIGKILL)   # the whole group: server and workers
                streamer.join(timeout=15)
                assert "[DONE]" not in stream_ids   # the stream was still in flight
            finally:
                load.stop()
            upstream_server.reset()
        assert not [f for f in load.failures if not f.startswith("connection")], load.failures

        with launch_gateway(e2e_dir, cfg, name="stream-successor", env=base, database_url=database_url) as gw:
            # The stream in flight at the kill is recorded by the successor from the in-flight journal
            # (once the killed processes' heartbeats expired): one failed, partial row.
            orphan = gw.spend_row(stream_ids[0])
            assert orphan["status"] == "failure" and orphan["metadata"]["partial"] is True
            # An answer's record reaches Redis a few milliseconds after the answer (GATEWAY_SPEND_STREAM_INTERVAL,
            # docs/spend.md): the last answers before the kill may have no row (never two). A second is
            # far more than that window, even on a busy machine.
            rows = assert_exactly_one_row_per_answer(gw, key, load.answered_before(killed_at - WINDOW_MARGIN))
            assert [row["request_id"] for row in rows].count(stream_ids[0]) == 1
    finally:
        drop()


@pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"),
                    reason="cuts a PostgreSQL database off")
def test_entries_a_killed_gateway_held_during_a_database_outage_are_written_by_its_successor(
        e2e_dir, tmp_path, upstream_server, redis_server):
    from tests.e2e.test_database_outage import cut_off

    database_url, drop = _fresh_database_url(e2e_dir)
    name = database_url.rsplit("/", 1)[1]
    # A long cache TTL: the key keeps answering from the cache while the database is cut off.
    env = {"REDIS_URL": redis_server.url, "GATEWAY_REDIS_PREFIX": f"test-{uuid.uuid4().hex}:",
           "GATEWAY_DATA_DIR": str(tmp_path / "data"), "GATEWAY_SPEND_STREAM_CLAIM_IDLE": "2",
           "GATEWAY_CACHE_TTL": "300"}
    cfg = config(upstream_server.base_url)
    try:
        with launch_gateway(e2e_dir, cfg, name="stream-outage", env=env, database_url=database_url) as gw:
            key = gw.new_key()
            load = Load(gw.base_url, key).start()
            try:
                wait_for(lambda: load.count() >= 30, timeout=30)
                cut_off(name, allowed=False)
                during = load.count()
                wait_for(lambda: len(load.answered_before(time.monotonic() - WINDOW_MARGIN)) >= during + 60,
                         timeout=30)
                # Its consumer has read entries it cannot write (they are pending on it) when it dies.
                stream = redis_server.client()
                wait_for(lambda: any(group["pending"] for key_name in stream.keys("test-*spend-events*")
                                     for group in stream.xinfo_groups(key_name)))
                killed_at = time.monotonic()
                os.killpg(gw.process.pid, signal.SIGKILL)
            finally:
                load.stop()
        cut_off(name, allowed=True)
        assert not [f for f in load.failures if not f.startswith("connection")], load.failures

        with launch_gateway(e2e_dir, cfg, name="stream-outage-successor", env=env, database_url=database_url) as gw:
            assert_exactly_one_row_per_answer(gw, key, load.answered_before(killed_at - WINDOW_MARGIN))
            wait_for(lambda: "took over" in gw.process.log_tail(400))
    finally:
        cut_off(name, allowed=True)
        drop()


def test_a_stream_in_flight_when_its_gateway_is_killed_is_recorded_once_as_a_partial_failure(
        e2e_dir, tmp_path, upstream_server, redis_server):
    """SIGKILL mid-stream (the OOM killer, kill -9 after the grace period): the gateway's successor records
    the stream from the in-flight journal (spend/inflight.py) as one failed, partial call, charged to the
    key's and the team's budgets. A stream that finished before the kill keeps its one success row.

    The bound on the orphan's completion tokens: the test waits until the checkpoint in Redis covers what
    the client had received at that moment (C content characters, estimated at ceil(C / 4) tokens, the
    gateway's estimate for a stream without usage), then kills. The row has at least that many, and at most
    the estimate of the whole reply (the gateway may have relayed a few more chunks before it died)."""
    database_url, drop = _fresh_database_url(e2e_dir)
    prefix = f"test-{uuid.uuid4().hex}:"
    env = {"REDIS_URL": redis_server.url, "GATEWAY_REDIS_PREFIX": prefix, "GATEWAY_DATA_DIR": str(tmp_path / "data"),
           "GATEWAY_INFLIGHT_TIMEOUT": "2", "GATEWAY_INFLIGHT_CHECKPOINT_INTERVAL": "0.5"}
    cfg = config(upstream_server.base_url)
    sync = redis_server.client()

    def budget_counter(scope: str) -> tuple[list[int], list[int]]:
        """nano-USD spent, and still reserved by calls in flight, in a budget's counters."""
        return tuple([int(sync.get(name)) for name in sync.scan_iter(match=f"{prefix}{kind}:{scope}:budget:*")]
                     for kind in ("spent", "reserved"))

    def checkpoint() -> int:
        """The completion tokens of the (one) stream checkpointed in Redis; 0 before the first."""
        values = [int(value.split()[0]) for name in sync.keys(f"{prefix}inflight:*:progress:*")
                  for value in sync.hvals(name)]
        return max(values, default=0)

    try:
        with launch_gateway(e2e_dir, cfg, name="inflight-killed", env=env, database_url=database_url) as gw:
            team_id = gw.admin("POST", "/team/new", json={"max_budget": 100.0}).json()["team_id"]
            key = gw.new_key(team_id=team_id, max_budget=50.0)
            client = gw.sdk(api_key=key, timeout=30)
            finished = [chunk.id for chunk in client.chat.completions.create(model="priced", messages=HI,
                                                                           stream=True)][0]

            upstream_server.behave(chunk_delay_ms=250, reply=LONG_REPLY)   # ~15 s for the whole reply
            seen: list[int] = []   # content characters received, after each chunk
            stream_id: list[str] = []
            call_id: list[str] = []
            cut = threading.Event()

            def slow_stream() -> None:
                chars = 0
                try:
                    raw = client.chat.completions.with_raw_response.create(model="priced", messages=HI, stream=True)
                    call_id.append(raw.headers["x-litellm-call-id"])
                    for chunk in raw.parse():
                        stream_id[:] = [chunk.id]
                        if chunk.choices and chunk.choices[0].delta.content:
                            chars += len(chunk.choices[0].delta.content)
                            seen.append(chars)
                except (openai.APIConnectionError, httpx2.TransportError):
                    cut.set()   # cut off by the kill, as expected

            streamer = threading.Thread(target=slow_stream, daemon=True)
            streamer.start()
            wait_for(lambda: len(seen) >= 8, timeout=30)
            received = seen[-1]
            wanted = -(-received // 4)
            wait_for(lambda: checkpoint() >= wanted, timeout=10)
            os.killpg(gw.process.pid, signal.SIGKILL)   # the whole group: server and workers
            streamer.join(timeout=15)
            assert cut.is_set() and len(seen) < len(LONG_REPLY.split())   # it was still in flight
            upstream_server.reset()

        with launch_gateway(e2e_dir, cfg, name="inflight-successor", env=env, database_url=database_url) as gw:
            row = gw.spend_row(stream_id[0])   # waits for the sweep (the heartbeat expires after 2 s)
            assert row["litellm_call_id"] == call_id[0] and row["status"] == "failure"
            assert row["metadata"]["partial"] is True
            assert row["metadata"]["error_information"]["error_code"] == "499"
            assert row["metadata"]["error_information"]["error_message"] == "gateway process died mid-stream"
            assert wanted <= row["completion_tokens"] <= -(-len(LONG_REPLY) // 4)
            assert row["prompt_tokens"] > 0 and row["spend"] > 0
            done = gw.spend_row(finished)
            assert done["status"] == "success" and "partial" not in done["metadata"]
            rows = rows_of(gw, key)
            assert sorted(r["request_id"] for r in rows) == sorted([finished, stream_id[0]])   # one each
            info = gw.admin("GET", "/key/info", params={"key": key}).json()["info"]
            assert info["spend"] == pytest.approx(sum(r["spend"] for r in rows), rel=1e-9)
            team = gw.admin("GET", "/team/info", params={"team_id": team_id}).json()
            assert team["team_info"]["spend"] == pytest.approx(info["spend"], rel=1e-9)
            # The budget counters in Redis: the orphan's reservation was settled to its cost, as a relay would.
            for scope in (f"key:{rows[0]['api_key']}", f"team:{team_id}"):
                spent, reserved = wait_for(lambda: (lambda c: c if c[1] == [0] else None)(budget_counter(scope)))
                assert spent == [pytest.approx(info["spend"] * 1e9, abs=2)]
            # Nothing of either stream is left open in Redis.
            assert not [sync.hlen(name) for name in sync.keys(f"{prefix}inflight:*:calls:*") if sync.hlen(name)]
    finally:
        drop()


def test_a_stream_cut_by_a_graceful_stop_is_recorded_by_its_own_process_and_leaves_no_orphan(
        e2e_dir, tmp_path, upstream_server, redis_server):
    """SIGTERM past GATEWAY_GRACEFUL_TIMEOUT with Redis: the cut stream is recorded as today (failure, 499,
    the tokens streamed) and its open entry is removed with it, so no sweep can record it again."""
    from tests.e2e.test_graceful_shutdown import StreamingClient, stored_rows

    prefix = f"test-{uuid.uuid4().hex}:"
    env = {"REDIS_URL": redis_server.url, "GATEWAY_REDIS_PREFIX": prefix, "GATEWAY_DATA_DIR": str(tmp_path / "data"),
           "GATEWAY_GRACEFUL_TIMEOUT": "1", "GATEWAY_INFLIGHT_CHECKPOINT_INTERVAL": "0.2"}
    sync = redis_server.client()
    upstream_server.behave(chunk_delay_ms=500, reply=LONG_REPLY)
    try:
        with launch_gateway(e2e_dir, config(upstream_server.base_url).replace("priced", "slow"), name="inflight-sigterm",
                            env=env) as gw:
            database_url = gw.process.env["DATABASE_URL"]
            client = StreamingClient(gw.base_url)
            client.start()
            assert client.first.wait(10) and client.error is None
            wait_for(lambda: sync.keys(f"{prefix}inflight:*:calls:*"))   # its open entry was handed over
            gw.process.stop(timeout=30)   # SIGTERM, then waits for the exit
            client.join(10)
            assert gw.process.returncode == 0 and "[DONE]" not in client.events
            rows = stored_rows(database_url)
    finally:
        upstream_server.reset()
    assert len(rows) == 1
    assert rows[0]["status"] == "failure" and rows[0]["completion_tokens"] > 0
    assert rows[0]["metadata"]["error_information"]["error_code"] == "499"
    assert "partial" not in rows[0]["metadata"]   # recorded by the relay itself, not as an orphan
    assert not [name for name in sync.keys(f"{prefix}inflight:*") if sync.type(name) != b"none"
                and (b":calls:" in name or b":alive:" in name or name.endswith(b":procs"))]
