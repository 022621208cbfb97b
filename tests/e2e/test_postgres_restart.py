"""The PostgreSQL server itself stops under load and starts again (a private cluster: the shared one is
never touched). Clients see answers or a clear error JSON throughout, never a bare 500; readiness is
false while the server is down and liveness never is; afterwards every answered request has exactly
one spend row, and the spend of the key and of its team in the database, and their budget counters in
Redis, all equal the sum of the key's rows."""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

import httpx2
import openai
import pytest
import redis

from keys.hashing import digest
from spend.counters import to_nano
from tests.e2e.conftest import MASTER_KEY, launch_gateway, wait_for
from tests.servers.private_postgres import PrivatePostgres, unavailable_reason

REDIS_URL = "redis://127.0.0.1:6379/0"
CACHE_TTL = 0.3  # seconds: the outage outlasts every cached key snapshot many times over


def _redis_reason() -> str | None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
        return None
    except redis.RedisError as exc:
        return f"Redis is not running on 127.0.0.1:6379 (bin/ensure-services starts it): {exc}"


pytestmark = [
    pytest.mark.e2e,
    pytest.mark.deployment,
    pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason())),
    pytest.mark.skipif(_redis_reason() is not None, reason=str(_redis_reason())),
]


def config(upstream_base: str) -> str:
    return f"""model_list:
  - model_name: priced
    litellm_params:
      model: openai/house-model
      api_base: {upstream_base}/v1
      api_key: os.environ/E2E_UPSTREAM_KEY
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
general_settings:
  master_key: {MASTER_KEY}
"""


@pytest.fixture(scope="module")
def cluster():
    with PrivatePostgres.create() as pg:
        yield pg


@pytest.fixture(scope="module")
def redis_prefix():
    prefix = f"pg-restart-{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for name in client.scan_iter(match=f"{prefix}*"):
        client.delete(name)


@pytest.fixture(scope="module")
def gw(e2e_dir, cluster, redis_prefix, upstream, tmp_path_factory):
    env = {"REDIS_URL": REDIS_URL, "GATEWAY_REDIS_PREFIX": redis_prefix, "GATEWAY_CACHE_TTL": str(CACHE_TTL),
           "GATEWAY_DATA_DIR": str(tmp_path_factory.mktemp("pg-restart-data"))}
    with launch_gateway(e2e_dir, config(upstream.base_url), name="pg-restart", env=env,
                        database_url=cluster.create_database("gateway")) as live:
        yield live


@dataclass
class Outcome:
    phase: str          # what the database was doing when the request was sent
    status: int         # HTTP status, 0 when no answer came at all
    response_id: str | None = None
    body: object = None


class Load:
    """Client threads sending chat completions with one virtual key until stopped: two through the
    openai SDK (one of them streaming), two through plain httpx."""

    def __init__(self, gw, key: str) -> None:
        self.gw, self.key = gw, key
        self.phase = "before"
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(send,), daemon=True)
                         for send in (self._sdk, self._sdk_stream, self._httpx, self._httpx)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def answered(self, phase: str) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if o.phase == phase and o.status == 200)

    def _loop(self, send) -> None:
        with httpx2.Client(base_url=self.gw.base_url, timeout=30, trust_env=False) as http:
            sdk = self.gw.sdk(self.key, timeout=30)
            while not self._stop.is_set():
                phase = self.phase
                outcome = send(sdk, http)
                outcome.phase = phase
                with self._lock:
                    self.outcomes.append(outcome)

    MESSAGES = [{"role": "user", "content": "how much is this"}]

    def _sdk(self, sdk: openai.OpenAI, http) -> Outcome:
        try:
            completion = sdk.chat.completions.create(model="priced", messages=self.MESSAGES, max_tokens=16)
        except openai.APIStatusError as exc:
            return Outcome("", exc.status_code, body=_json_or_text(exc.response))
        except openai.APIConnectionError as exc:
            return Outcome("", 0, body=repr(exc))
        return Outcome("", 200, completion.id)

    def _sdk_stream(self, sdk: openai.OpenAI, http) -> Outcome:
        try:
            stream = sdk.chat.completions.create(model="priced", messages=self.MESSAGES, max_tokens=16, stream=True,
                                                 stream_options={"include_usage": True})
            ids = {chunk.id for chunk in stream}
        except openai.APIStatusError as exc:
            return Outcome("", exc.status_code, body=_json_or_text(exc.response))
        except openai.APIConnectionError as exc:
            return Outcome("", 0, body=repr(exc))
        assert len(ids) == 1, ids
        return Outcome("", 200, ids.pop())

    def _httpx(self, sdk, http: httpx2.Client) -> Outcome:
        try:
            response = http.post("/chat/completions", headers={"Authorization": f"Bearer {self.key}"},
                                 json={"model": "priced", "messages": self.MESSAGES, "max_tokens": 16})
        except httpx2.HTTPError as exc:
            return Outcome("", 0, body=repr(exc))
        body = _json_or_text(response)
        return Outcome("", response.status_code, body["id"] if response.status_code == 200 else None, body)


def _json_or_text(response) -> object:
    try:
        return response.json()
    except ValueError:
        return response.text


def assert_clear_error(outcome: Outcome) -> None:
    """A refusal the client can act on: 503 with the contract's error JSON and retry-after, no traceback."""
    assert outcome.status == 503, outcome
    assert isinstance(outcome.body, dict), outcome
    error = outcome.body["error"]
    assert set(error) >= {"message", "type", "param", "code"}, outcome
    assert error["type"] == "service_unavailable" and error["code"] == "503", outcome
    assert "Traceback" not in error["message"] and "database" in error["message"].lower(), outcome


def probes(gw) -> tuple[int, int]:
    """(liveness, readiness) status codes."""
    return gw.http.get("/health/liveliness").status_code, gw.http.get("/health/readiness").status_code


def stored(cluster: PrivatePostgres, token: str, team_id: str) -> tuple[list[tuple], float, float]:
    """The key's spend rows (request_id, status, spend), its spend total and its team's, from the database."""
    with cluster.connect("gateway") as conn:
        rows = conn.execute("SELECT request_id, status, spend FROM spend_spendlog WHERE api_key = %s",
                            [token]).fetchall()
        (key_spend,) = conn.execute("SELECT spend FROM keys_virtualkey WHERE token = %s", [token]).fetchone()
        (team_spend,) = conn.execute("SELECT spend FROM teams_team WHERE team_id = %s", [team_id]).fetchone()
    return rows, key_spend, team_spend


def budget_counter(prefix: str, scope: str) -> tuple[int, int]:
    """A budget counter in Redis (nano-USD spent) and what requests in flight still hold reserved in it."""
    client = redis.Redis.from_url(REDIS_URL)
    spent = [int(client.get(name)) for name in client.scan_iter(match=f"{prefix}spent:{scope}:budget:*")]
    reserved = [int(client.get(name)) for name in client.scan_iter(match=f"{prefix}reserved:{scope}:budget:*")]
    assert len(spent) == 1 and len(reserved) == 1, (scope, spent, reserved)
    return spent[0], reserved[0]


def test_postgres_stopped_under_load_then_restarted_loses_and_doubles_nothing(gw, cluster, redis_prefix,
                                                                               stand_in):
    stand_in.behave(delay_ms=20)  # requests are in flight when the server goes away
    team_id = gw.admin("POST", "/team/new", json={"team_alias": "outage-team", "max_budget": 100.0}).json()["team_id"]
    key = gw.new_key(max_budget=100.0, key_alias="under-load", team_id=team_id)
    unused_key = gw.new_key(key_alias="first-used-during-the-outage")
    token = digest(key)

    with Load(gw, key) as load:
        wait_for(lambda: load.answered("before") >= 8, timeout=20)

        load.phase = "outage"
        cluster.stop()
        stopped_at = time.monotonic()
        wait_for(lambda: probes(gw) == (200, 503), timeout=10)
        # A key the gateway never saw cannot be checked without the database: a clear 503, not a 500.
        response = gw.http.post("/chat/completions", headers={"Authorization": f"Bearer {unused_key}"},
                                json={"model": "priced", "messages": [{"role": "user", "content": "hi"}]})
        assert_clear_error(Outcome("outage", response.status_code, body=_json_or_text(response)))
        assert response.headers["retry-after"] == "1"
        # So does the management API.
        response = gw.admin("POST", "/key/generate", json={"key_alias": "made-during-the-outage"})
        assert_clear_error(Outcome("outage", response.status_code, body=_json_or_text(response)))
        # Known keys keep being served long after their cached snapshots expired.
        wait_for(lambda: load.answered("outage") >= 20 and time.monotonic() > stopped_at + 10 * CACHE_TTL,
                 timeout=30)
        assert probes(gw) == (200, 503)

        cluster.start()
        load.phase = "after"
        wait_for(lambda: probes(gw) == (200, 200), timeout=15)
        wait_for(lambda: load.answered("after") >= 8, timeout=20)
        # The gateway reads the database again: the key refused during the outage is served now.
        assert gw.sdk(unused_key).chat.completions.create(model="priced", messages=Load.MESSAGES).id

    outcomes = load.outcomes
    assert not [o for o in outcomes if o.status == 0], "the gateway process stopped answering"
    for outcome in outcomes:
        if outcome.status != 200:
            assert_clear_error(outcome)
    answered = [o.response_id for o in outcomes if o.status == 200]
    assert len(answered) == len(set(answered))

    # Every answered request has exactly one success row, and no other success row exists.
    def all_rows_written():
        rows, _, _ = stored(cluster, token, team_id)
        return rows if len([r for r in rows if r[1] == "success"]) >= len(answered) else None

    rows = wait_for(all_rows_written, timeout=20)
    success_ids = sorted(r[0] for r in rows if r[1] == "success")
    assert success_ids == sorted(answered)
    assert len({r[0] for r in rows}) == len(rows)  # one row per request, failures included

    rows, key_spend, team_spend = stored(cluster, token, team_id)
    total = sum(r[2] for r in rows)
    assert total > 0
    assert key_spend == pytest.approx(total, abs=1e-9) and team_spend == pytest.approx(total, abs=1e-9)
    # The budget counters in Redis: every reservation settled to its cost (a settle follows its row's
    # hand-over by one round trip, hence the wait).
    settled = (sum(to_nano(r[2]) for r in rows), 0)
    for scope in (f"key:{token}", f"team:{team_id}"):
        try:
            wait_for(lambda: budget_counter(redis_prefix, scope) == settled, timeout=5)
        except AssertionError:
            assert budget_counter(redis_prefix, scope) == settled   # the values, in the failure
