import pytest

from spend.writer import write_batch
from tests.factories import spend_record


def test_tags_are_counted_and_summed_most_spend_first(admin_api):
    write_batch([spend_record(request_tags=["model-anthropic-claude-v2.1", "app-ishaan-prod"], spend=0.000112)
                 for _ in range(2)] +
                [spend_record(request_tags=["model-anthropic-claude-v2.1", "app-ishaan-local"], spend=0.000112)
                 for _ in range(4)])

    rows = admin_api.get("/spend/tags").json()

    assert [r["individual_request_tag"] for r in rows] == [
        "model-anthropic-claude-v2.1", "app-ishaan-local", "app-ishaan-prod"]
    assert [r["log_count"] for r in rows] == [6, 4, 2]
    assert rows[0]["total_spend"] == pytest.approx(0.000672)
    assert rows[2]["total_spend"] == pytest.approx(0.000224)


def test_spend_tags_is_for_admins_only(admin_api, api_as):
    raw = admin_api.post("/key/generate", {}, format="json").json()["key"]

    assert api_as(raw).get("/spend/tags").status_code == 401
