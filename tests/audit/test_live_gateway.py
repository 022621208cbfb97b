"""Audit logs on a live gateway (ASGI, async middleware, DRF in a worker thread), driven over HTTP."""
import pytest

from tests.e2e.conftest import MASTER_KEY, launch_gateway

pytestmark = pytest.mark.e2e

CONFIG = f"""
model_list:
  - model_name: fake-openai-endpoint
    litellm_params:
      model: fake/fake-openai-endpoint
litellm_settings:
  store_audit_logs: true
general_settings:
  master_key: {MASTER_KEY}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with launch_gateway(tmp_path_factory.mktemp("audit-e2e"), CONFIG, name="audit") as live:
        yield live


def test_a_team_created_over_http_reads_back_from_audit_with_the_callers_identity(gateway):
    created = gateway.admin("POST", "/team/new", json={"max_budget": 2}, headers={"litellm-changed-by": "mallory"})
    assert created.status_code == 200, created.text
    team_id = created.json()["team_id"]

    body = gateway.admin("GET", "/audit", params={"object_id": team_id}).json()

    [row] = body["audit_logs"]
    assert (row["action"], row["table_name"], row["changed_by"]) == ("created", "LiteLLM_TeamTable",
                                                                     "default_user_id")
    assert row["updated_values"]["max_budget"] == 2.0
    assert gateway.admin("GET", f"/audit/{row['id']}").json() == row
