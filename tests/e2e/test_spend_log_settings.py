"""general_settings that shape the spend log, on a live gateway: disable_requester_ip_address_logging,
proxy_batch_write_at, and store_prompts_in_spend_logs (accepted, warned about at start)."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import MASTER_KEY, launch_gateway

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def private_gateway(e2e_dir):
    config = f"""model_list:
  - model_name: fake-openai-endpoint
    litellm_params: {{model: fake/fake-openai-endpoint, input_cost_per_token: 0.000001}}
general_settings:
  master_key: {MASTER_KEY}
  disable_requester_ip_address_logging: true
  proxy_batch_write_at: 0.05
  store_prompts_in_spend_logs: true
"""
    # The environment's interval would hold rows for ten minutes: a row shows up only if the config's is used.
    with launch_gateway(e2e_dir, config, name="private", env={"GATEWAY_SPEND_FLUSH_INTERVAL": "600"}) as live:
        yield live


def test_the_requester_ip_is_left_out_of_the_spend_log(private_gateway):
    response = private_gateway.http.post("/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                                         json={"model": "fake-openai-endpoint", "messages": HELLO})

    row = private_gateway.spend_row(response.json()["id"])   # within the config's batch interval
    assert row["requester_ip_address"] is None
    assert row["metadata"]["requester_ip_address"] is None


def test_store_prompts_in_spend_logs_is_refused_with_a_warning_at_start(private_gateway):
    log = private_gateway.process.log_tail(lines=400)
    assert "gateway.W003" in log and "store_prompts_in_spend_logs is not supported" in log
