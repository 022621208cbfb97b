"""Two gateway instances sharing PostgreSQL and Redis: budgets, rate limits and blocks hold across
both, exactly, as they would behind a load balancer."""
from __future__ import annotations

import concurrent.futures
import itertools

import uuid

import pytest

from tests.e2e.conftest import MASTER_KEY, _fresh_database_url, launch_gateway, wait_for

pytestmark = pytest.mark.e2e

REDIS_URL = "redis://127.0.0.1:6379/9"
HI = [{"role": "user", "content": "hi"}]
CONFIG = f"""model_list:
  - model_name: metered
    litellm_params: {{model: fake/metered, input_cost_per_token: 0, output_cost_per_token: 0.001}}
general_settings:
  master_key: {MASTER_KEY}
"""


@pytest.fixture(scope="module")
def pair(e2e_dir):
    database_url, drop = _fresh_database_url(e2e_dir)
    # A long cache TTL: anything seen across instances within a second is the pub/sub's doing. A
    # prefix of its own keeps this pair apart from anything else using the same Redis.
    env = {"REDIS_URL": REDIS_URL, "GATEWAY_CACHE_TTL": "300", "GATEWAY_REDIS_PREFIX": f"test-{uuid.uuid4().hex}:"}
    try:
        with launch_gateway(e2e_dir, CONFIG, name="instance-a", env=env, database_url=database_url) as a, \
                launch_gateway(e2e_dir, CONFIG, name="instance-b", env=env, database_url=database_url) as b:
            yield a, b
    finally:
        drop()


def chat(gw, key, **body):
    return gw.http.post("/chat/completions", headers={"Authorization": f"Bearer {key}"},
                        json={"model": "metered", "messages": HI, **body})


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
    info = wait_for(lambda: (lambda i: i if len(a.spend_logs(api_key=key)) == 4 * n else None)(
        a.admin("GET", "/key/info", params={"key": key}).json()["info"]))
    assert info["spend"] == pytest.approx(n * 0.005)
    assert info["spend"] <= info["max_budget"] + 1e-12


def test_an_rpm_limit_holds_across_both_instances_together(pair):
    a, b = pair
    key = a.new_key(rpm_limit=6)

    statuses = [chat(gw, key).status_code for gw in (a, b) * 6]

    assert statuses.count(200) == 6
    assert statuses.count(429) == 6


def test_a_key_blocked_through_one_instance_is_refused_by_the_other_within_a_second(pair):
    a, b = pair
    key = a.new_key()
    assert chat(b, key).status_code == 200  # instance B has the key cached now

    assert a.admin("POST", "/key/block", json={"key": key}).status_code == 200

    wait_for(lambda: chat(b, key).status_code == 401, timeout=1.0, interval=0.05)


def test_a_team_deleted_through_one_instance_leaves_none_of_its_keys_working_on_the_other(pair):
    a, b = pair
    team_id = a.admin("POST", "/team/new", json={}).json()["team_id"]
    keys = [a.new_key(team_id=team_id) for _ in range(3)]
    assert all(chat(b, key).status_code == 200 for key in keys)

    assert a.admin("POST", "/team/delete", json={"team_ids": [team_id]}).status_code == 200

    wait_for(lambda: all(chat(b, key).status_code == 401 for key in keys), timeout=1.0, interval=0.05)


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
