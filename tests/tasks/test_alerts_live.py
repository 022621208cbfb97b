"""Alerts from a live gateway (embedded mode: no Redis) to a stand-in Slack webhook on 127.0.0.1.

Alerts are delivered in order by one thread, so once a later "sentinel" alert has arrived, any
earlier one that was going to arrive has too: counting them then needs no fixed sleep.
"""
from __future__ import annotations

import itertools

import pytest

from tests.e2e.conftest import MASTER_KEY, launch_gateway, wait_for
from tests.servers.fake_webhook import messages
from tests.servers.process import free_port
from tests.tasks.conftest import launch_webhook

pytestmark = pytest.mark.e2e

HI = [{"role": "user", "content": "hi"}]


def alerts_config(dead_port: int) -> str:
    return f"""model_list:
  - model_name: metered
    litellm_params: {{model: fake/metered, input_cost_per_token: 0, output_cost_per_token: 0.001}}
  - model_name: half-dead
    litellm_params: {{model: openai/gpt-4o, api_base: "http://127.0.0.1:{dead_port}/v1", api_key: sk-x}}
  - model_name: half-dead
    litellm_params: {{model: fake/alive}}
router_settings: {{allowed_fails: 0, cooldown_time: 60, num_retries: 1}}
general_settings:
  master_key: {MASTER_KEY}
  max_request_size_mb: 0.01
  alerting: ["slack"]
"""

_sentinels = itertools.count(1)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp("alerts-live")
    with launch_webhook(work_dir) as webhook:
        env = {"SLACK_WEBHOOK_URL": f"{webhook.base_url}/services/T0/B0/secret"}
        with launch_gateway(work_dir, alerts_config(free_port()), name="alerts-gateway", env=env) as gateway:
            yield gateway, webhook


def chat(gw, key, max_tokens: int):
    return gw.http.post("/chat/completions", headers={"Authorization": f"Bearer {key}"},
                        json={"model": "metered", "messages": HI, "max_tokens": max_tokens})


def spend_of(gw, key) -> float:
    return gw.admin("GET", "/key/info", params={"key": key}).json()["info"]["spend"]


def after_sentinel(gw, webhook) -> list[str]:
    """Every message sent so far, once a fresh key's budget alert has come through after them.

    Spend written in the same batch as the sentinel's could be checked after it: wait until the
    spend that should alert has been written before calling this."""
    alias = f"sentinel-{next(_sentinels)}"
    key = gw.new_key(key_alias=alias, max_budget=0.001)
    assert chat(gw, key, max_tokens=1).status_code == 200
    wait_for(lambda: any(alias in text and "100%" in text for text in messages(webhook)), timeout=15)
    return [text for text in messages(webhook) if "sentinel-" not in text]


def test_a_key_crossing_80_then_100_percent_of_its_budget_sends_two_slack_messages(live):
    gw, webhook = live
    webhook.clear()
    key = gw.new_key(key_alias="alerted-app", max_budget=0.01)

    assert chat(gw, key, max_tokens=8).status_code == 200   # 0.008: 80%
    wait_for(lambda: spend_of(gw, key) == pytest.approx(0.008))
    assert chat(gw, key, max_tokens=2).status_code == 200   # 0.010: 100%
    assert chat(gw, key, max_tokens=1).status_code == 400   # over budget: refused, nothing spent
    wait_for(lambda: spend_of(gw, key) == pytest.approx(0.01))  # written before the sentinel's spend

    sent = after_sentinel(gw, webhook)
    assert len(sent) == 2 and all(text.startswith("Budget alert: key alerted-app (sk-...") for text in sent)
    assert "$0.008, 80% of its max budget of $0.01" in sent[0]
    assert "$0.01, 100% of its max budget of $0.01" in sent[1]


def test_oversized_requests_send_one_slack_message(live):
    gw, webhook = live
    webhook.clear()
    big = "x" * 20_000

    statuses = [gw.http.post("/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                             json={"model": "metered", "messages": [{"role": "user", "content": big}]}).status_code
                for _ in range(3)]

    assert statuses == [400, 400, 400]
    sent = after_sentinel(gw, webhook)
    assert len(sent) == 1 and sent[0].startswith("Request too large: 127.0.0.1 sent 0.02 MB to /chat/completions")


def test_a_deployment_cooling_down_sends_one_slack_message(live):
    gw, webhook = live
    webhook.clear()

    def failing_reported() -> bool:  # each call picks one of the two deployments first, at random
        response = gw.http.post("/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                                json={"model": "half-dead", "messages": HI})
        assert response.status_code == 200  # retried on the live deployment
        return any(text.startswith("Deployment failing") for text in messages(webhook))

    wait_for(failing_reported, timeout=15)
    sent = after_sentinel(gw, webhook)

    assert len(sent) == 1 and sent[0].startswith("Deployment failing: openai/gpt-4o in model group half-dead")
