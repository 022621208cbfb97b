"""Two gateway instances sharing PostgreSQL and Redis: budgets, rate limits and blocks hold across
both, exactly, as they would behind a load balancer."""
from __future__ import annotations

import concurrent.futures
import itertools
import socket
import uuid
from urllib.parse import urlsplit

import pytest
import redis

from tests.e2e.conftest import MASTER_KEY, _fresh_database_url, launch_gateway, wait_for

pytestmark = pytest.mark.e2e

REDIS_URL = "redis://127.0.0.1:6379/9"
PREFIX = f"test-{uuid.uuid4().hex}:"
HI = [{"role": "user", "content": "hi"}]
CONFIG = f"""model_list:
  - model_name: metered
    litellm_params: {{model: fake/metered, input_cost_per_token: 0, output_cost_per_token: 0.001}}
general_settings:
  master_key: {MASTER_KEY}
"""
RELAYED = """  - model_name: relayed
    litellm_params: {{model: openai/house-model, api_base: "{base}/v1", api_key: os.environ/E2E_UPSTREAM_KEY,
                      input_cost_per_token: 0, output_cost_per_token: 0.001}}
"""


@pytest.fixture(scope="module")
def pair(e2e_dir, upstream):
    database_url, drop = _fresh_database_url(e2e_dir)
    config = CONFIG.replace("general_settings:", RELAYED.format(base=upstream.base_url) + "general_settings:")
    # A long cache TTL: anything seen across instances within a second is the pub/sub's doing. A
    # prefix of its own keeps this pair apart from anything else using the same Redis.
    env = {"REDIS_URL": REDIS_URL, "GATEWAY_CACHE_TTL": "300", "GATEWAY_REDIS_PREFIX": PREFIX}
    try:
        with launch_gateway(e2e_dir, config, name="instance-a", env=env, database_url=database_url) as a, \
                launch_gateway(e2e_dir, config, name="instance-b", env=env, database_url=database_url) as b:
            yield a, b
    finally:
        drop()


def chat(gw, key, **body):
    return gw.http.post("/chat/completions", headers={"Authorization": f"Bearer {key}"},
                        json={"model": "metered", "messages": HI, **body})


@pytest.mark.deployment
def test_a_budget_of_n_requests_admits_exactly_n_of_4n_across_both_instances(pair):
    a, b = pair
    n = 6
    key = a.new_key(max_budget=n * 0.005)  # each call: 5 output tokens at 0.001
    instances = itertools.cycle(pair)
    calls = [next(instances) for _ in range(4 * n)]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda gw: chat(gw, key, max_tokens=5).status_code, calls))

    assert statuses.count(200) == n
    assert statuses.count(400) == 3 * n
    # Every row written first (the key's spend is added in the same transaction as its rows), then the key read.
    wait_for(lambda: len(a.spend_logs(api_key=key)) == 4 * n)
    info = a.admin("GET", "/key/info", params={"key": key}).json()["info"]
    assert info["spend"] == pytest.approx(n * 0.005)
    assert info["spend"] <= info["max_budget"] + 1e-12


@pytest.mark.deployment
def test_an_rpm_limit_holds_across_both_instances_together(pair):
    a, b = pair
    key = a.new_key(rpm_limit=6)

    statuses = [chat(gw, key).status_code for gw in (a, b) * 6]

    assert statuses.count(200) == 6
    assert statuses.count(429) == 6


@pytest.mark.deployment
def test_a_key_blocked_through_one_instance_is_refused_by_the_other_within_a_second(pair):
    a, b = pair
    key = a.new_key()
    assert chat(b, key).status_code == 200  # instance B has the key cached now

    assert a.admin("POST", "/key/block", json={"key": key}).status_code == 200

    wait_for(lambda: chat(b, key).status_code == 401, timeout=1.0, interval=0.05)


@pytest.mark.deployment
def test_a_team_deleted_through_one_instance_leaves_none_of_its_keys_working_on_the_other(pair):
    a, b = pair
    team_id = a.admin("POST", "/team/new", json={}).json()["team_id"]
    keys = [a.new_key(team_id=team_id) for _ in range(3)]
    assert all(chat(b, key).status_code == 200 for key in keys)

    assert a.admin("POST", "/team/delete", json={"team_ids": [team_id]}).status_code == 200

    wait_for(lambda: all(chat(b, key).status_code == 401 for key in keys), timeout=1.0, interval=0.05)


def _stream_then_hang_up(gw, key: str, model: str) -> str:
    """A streamed chat completion read up to its ``data: [DONE]`` event, then the connection closed at once,
    before the chunked body's end (what the openai SDK does after [DONE]); returns the completion id."""
    address = urlsplit(gw.base_url)
    body = (b'{"model": "%s", "stream": true, "max_tokens": 5, '
            b'"messages": [{"role": "user", "content": "hi"}]}' % model.encode())
    request = (f"POST /chat/completions HTTP/1.1\r\nHost: {address.netloc}\r\nAuthorization: Bearer {key}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    received = b""
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(request)
        while b"data: [DONE]" not in received:
            data = conn.recv(65536)
            assert data, received
            received += data
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
    assert received.startswith(b"HTTP/1.1 200"), received
    return received.split(b'"id":"', 1)[1].split(b'"', 1)[0].decode()


@pytest.mark.parametrize("model", ["metered", "relayed"])
@pytest.mark.deployment
def test_streams_the_client_hangs_up_on_right_after_done_are_recorded_and_settled(pair, stand_in, model):
    """The client goes away while the gateway closes the stream's books (upstream closed, spend recorded,
    budget reservation turned into the cost): that bookkeeping still runs to the end, on every stream."""
    a, _ = pair
    n = 12
    stand_in.behave(chunk_delay_ms=5)   # the relayed stream lasts long enough to be in the in-flight journal
    key = a.new_key(max_budget=1.0)
    ids = [_stream_then_hang_up(a, key, model) for _ in range(n)]

    rows = wait_for(lambda: (lambda r: r if len(r) >= n else None)(a.spend_logs(api_key=key)))
    assert sorted(r["request_id"] for r in rows) == sorted(ids)
    spend = sum(r["spend"] for r in rows)
    assert spend == pytest.approx(n * 0.005)
    info = a.admin("GET", "/key/info", params={"key": key}).json()["info"]
    assert info["spend"] == pytest.approx(spend)
    # The budget counters in Redis: every reservation settled to its cost, none left over.
    client = redis.Redis.from_url(REDIS_URL)
    token = rows[0]["api_key"]   # the key's hash

    def counters():
        found = {kind: [int(client.get(name)) for name in client.scan_iter(match=f"{PREFIX}{kind}:key:{token}*")]
                 for kind in ("spent", "reserved")}
        return found if found["reserved"] == [0] else None

    found = wait_for(counters, timeout=5)
    assert found["spent"] == [round(spend * 1e9)]


def test_redis_down_fails_closed_with_a_clear_error(e2e_dir):
    config = CONFIG
    env = {"REDIS_URL": "redis://127.0.0.1:1/0"}  # nothing listens there
    with launch_gateway(e2e_dir, config, name="no-redis", env=env) as gw:
        key = gw.new_key(max_budget=1)
        response = chat(gw, key)
        unlimited = chat(gw, gw.new_key())

    assert response.status_code == 503
    assert "shared counters cannot be reached" in response.json()["error"]["message"]
    assert "Traceback" not in response.text
    assert unlimited.status_code == 200  # a key without limits needs no counters


def test_redis_down_can_be_configured_to_fail_open(e2e_dir):
    config = CONFIG + "  counters_fail_open: true\n"
    with launch_gateway(e2e_dir, config, name="no-redis-open", env={"REDIS_URL": "redis://127.0.0.1:1/0"}) as gw:
        response = chat(gw, gw.new_key(max_budget=1))
        log = gw.process.log_tail(200)

    assert response.status_code == 200
    assert "admitted without budget and rate-limit checks" in log
