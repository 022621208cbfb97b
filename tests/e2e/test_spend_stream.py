"""Nothing lost (docs/spend.md): with Redis configured, spend records pass through a Redis stream. Redis is
killed and restarted under load, and a gateway is killed with SIGKILL under load: every request a client
saw answered still ends up with exactly one spend row, and the key's spend equals the sum of its rows.

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
    rows = wait_for(lambda: (lambda r: r if wanted <= {row["request_id"] for row in r} else None)(rows_of(gw, key)),
                    timeout=60)
    ids = [row["request_id"] for row in rows]
    assert len(ids) == len(set(ids)), "a request has two spend rows"
    info = gw.admin("GET", "/key/info", params={"key": key}).json()["info"]
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
            "GATEWAY_DATA_DIR": str(tmp_path / "data"), "GATEWAY_SPEND_STREAM_CLAIM_IDLE": "2"}
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
            # An answer's record reaches Redis a few milliseconds after the answer (GATEWAY_SPEND_STREAM_INTERVAL,
            # docs/spend.md): the last answers before the kill may have no row (never two). A second is
            # far more than that window, even on a busy machine.
            rows = assert_exactly_one_row_per_answer(gw, key, load.answered_before(killed_at - WINDOW_MARGIN))
            # The stream in flight at the kill produced no record (a record is made when a stream ends):
            # it has no row at all, never two.
            assert stream_ids and stream_ids[0] not in {row["request_id"] for row in rows}
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
