"""Budgets and rate limits on one gateway (in-process counters): the contract's errors, and the
provider never sees a refused request."""
from __future__ import annotations

import concurrent.futures

import pytest

from tests.e2e.conftest import MASTER_KEY, launch_gateway, wait_for

pytestmark = pytest.mark.e2e

HI = [{"role": "user", "content": "hi"}]


def limits_config(upstream_base: str) -> str:
    return f"""model_list:
  - model_name: metered
    litellm_params: {{model: fake/metered, input_cost_per_token: 0, output_cost_per_token: 0.001}}
  - model_name: beta-model
    litellm_params: {{model: fake/beta}}
    model_info: {{access_groups: [beta-models]}}
  - model_name: metered-upstream
    litellm_params:
      model: openai/metered-upstream
      api_base: {upstream_base}/v1
      api_key: os.environ/E2E_UPSTREAM_KEY
      input_cost_per_token: 0
      output_cost_per_token: 0.001
general_settings:
  master_key: {MASTER_KEY}
"""


@pytest.fixture(scope="module")
def gw(e2e_dir, upstream):
    with launch_gateway(e2e_dir, limits_config(upstream.base_url), name="limits-local") as live:
        yield live


def chat(gw, key, model="metered", **body):
    return gw.http.post("/chat/completions", headers={"Authorization": f"Bearer {key}"},
                        json={"model": model, "messages": HI, **body})


def test_a_key_over_its_budget_gets_the_budget_error(gw):
    key = gw.new_key(key_alias="budget-alias", max_budget=0.01)
    assert chat(gw, key, max_tokens=10).status_code == 200  # costs exactly 0.01

    response = chat(gw, key, max_tokens=1)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "budget_exceeded" and error["code"] == "400"
    assert error["message"].startswith("Budget has been exceeded! Key=budget-alias (sk-...")
    assert "Current cost: 0.01, Max budget: 0.01" in error["message"]


def test_max_tokens_is_lowered_to_what_the_budget_can_pay_for(gw, stand_in):
    key = gw.new_key(max_budget=0.003)

    response = chat(gw, key, model="metered-upstream", max_tokens=50)

    assert response.status_code == 200
    assert stand_in.requests()[0]["body"]["max_tokens"] == 3
    assert response.json()["usage"]["completion_tokens"] <= 3


def test_under_a_budget_a_request_without_max_tokens_gets_one(gw, stand_in):
    key = gw.new_key(max_budget=100)

    chat(gw, key, model="metered-upstream")

    assert stand_in.requests()[0]["body"]["max_tokens"] == 4096


def test_without_limits_the_request_is_untouched(gw, stand_in):
    key = gw.new_key()

    chat(gw, key, model="metered-upstream")

    assert "max_tokens" not in stand_in.requests()[0]["body"]


def test_concurrent_requests_cannot_overspend_a_key(gw):
    key = gw.new_key(max_budget=0.025)  # five calls of 5 output tokens at 0.001

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(lambda _: chat(gw, key, max_tokens=5).status_code, range(20)))

    assert statuses.count(200) == 5 and statuses.count(400) == 15
    spend = wait_for(lambda: (lambda s: s if s >= 0.025 - 1e-9 else None)(
        gw.admin("GET", "/key/info", params={"key": key}).json()["info"]["spend"]))
    assert spend == pytest.approx(0.025)


def test_rpm_limit_gives_429_with_retry_after_and_ratelimit_headers(gw):
    key = gw.new_key(key_alias="rpm-key", rpm_limit=2)
    assert [chat(gw, key).status_code for _ in range(2)] == [200, 200]

    response = chat(gw, key)

    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["x-ratelimit-limit-requests"] == "2"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    message = response.json()["error"]["message"]
    assert message.startswith("Rate limit exceeded for api_key: rpm-key (sk-...")
    assert "Limit type: requests. Current limit: 2, Remaining: 0. Limit resets at: " in message


def test_tpm_limit_counts_the_tokens_used(gw):
    key = gw.new_key(tpm_limit=15)
    assert chat(gw, key).status_code == 200     # ~11 tokens
    assert chat(gw, key).status_code == 200     # the bucket was not empty yet

    response = chat(gw, key)

    assert response.status_code == 429
    assert "Limit type: tokens" in response.json()["error"]["message"]


def test_per_model_rpm_limit_on_a_key(gw):
    key = gw.new_key(model_rpm_limit={"metered": 1})
    assert chat(gw, key).status_code == 200

    assert chat(gw, key).status_code == 429
    assert chat(gw, key, model="metered-upstream").status_code == 200


def test_parallel_request_limit(gw, stand_in):
    stand_in.behave(delay_ms=400)
    key = gw.new_key(max_parallel_requests=1)

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        statuses = sorted(pool.map(lambda _: chat(gw, key, model="metered-upstream").status_code, range(3)))

    assert statuses == [200, 429, 429]
    stand_in.reset()
    assert chat(gw, key, model="metered-upstream").status_code == 200  # the slot was given back


def test_a_team_budget_applies_to_its_keys(gw):
    team_id = gw.admin("POST", "/team/new", json={"max_budget": 0.005}).json()["team_id"]
    key = gw.new_key(team_id=team_id)
    assert chat(gw, key, max_tokens=5).status_code == 200

    response = chat(gw, key, max_tokens=1)

    assert response.status_code == 400
    assert f"Team={team_id}" in response.json()["error"]["message"]


def test_a_user_budget_applies_to_the_users_keys(gw):
    gw.admin("POST", "/user/new", json={"user_id": "budget-user", "max_budget": 0.005, "auto_create_key": False})
    key = gw.new_key(user_id="budget-user")
    assert chat(gw, key, max_tokens=5).status_code == 200

    response = chat(gw, key, max_tokens=1)

    assert response.status_code == 400
    assert "User=budget-user" in response.json()["error"]["message"]


def test_a_customer_budget_applies_to_the_end_user(gw):
    gw.admin("POST", "/customer/new", json={"user_id": "budget-customer", "max_budget": 0.005})
    key = gw.new_key()
    assert chat(gw, key, max_tokens=5, user="budget-customer").status_code == 200

    response = chat(gw, key, max_tokens=1, user="budget-customer")

    assert response.status_code == 400
    assert "Customer=budget-customer" in response.json()["error"]["message"]
    assert chat(gw, key, max_tokens=1, user="another-customer").status_code == 200


def test_a_blocked_customer_is_refused_and_unblocked_again(gw, stand_in):
    key = gw.new_key()
    gw.admin("POST", "/customer/block", json={"user_ids": ["blocked-customer"]})

    response = chat(gw, key, model="metered-upstream", user="blocked-customer")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "User blocked from making LLM API Calls. User=blocked-customer"
    assert stand_in.requests() == []
    gw.admin("POST", "/customer/unblock", json={"user_ids": ["blocked-customer"]})
    assert chat(gw, key, model="metered-upstream", user="blocked-customer").status_code == 200


def test_an_admin_setting_spend_back_to_zero_reopens_the_budget(gw):
    key = gw.new_key(max_budget=0.005)
    assert chat(gw, key, max_tokens=5).status_code == 200
    assert chat(gw, key, max_tokens=1).status_code == 400
    wait_for(lambda: gw.admin("GET", "/key/info", params={"key": key}).json()["info"]["spend"] > 0)

    assert gw.admin("POST", "/key/update", json={"key": key, "spend": 0}).status_code == 200

    assert chat(gw, key, max_tokens=5).status_code == 200


def test_a_key_granted_an_access_group_calls_its_models_only(gw):
    key = gw.new_key(models=["beta-models"])

    assert chat(gw, key, model="beta-model").status_code == 200
    assert chat(gw, key, model="metered").status_code == 403
    ids = [m["id"] for m in gw.http.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).json()["data"]]
    assert ids == ["beta-model"]
