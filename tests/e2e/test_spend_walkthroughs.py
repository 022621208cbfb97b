"""The seed's "Tracking Spend for Custom Tags" and "Tracking Spend with custom metadata", step by step."""
import pytest

from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.e2e

POEM = [{"role": "user", "content": "this is a test request, write a short poem"}]


def tag_counts(gateway, tags):
    rows = {r["individual_request_tag"]: r for r in gateway.admin("GET", "/spend/tags").json()}
    return {tag: rows.get(tag, {}).get("log_count", 0) for tag in tags}


def test_tags_from_key_team_and_request_are_counted_and_summed(gateway, stand_in):
    # Step 1: tags on a key and on a team.
    key = gateway.new_key(metadata={"tags": ["walk-key-tag"]})
    team_id = gateway.admin("POST", "/team/new", json={"metadata": {"tags": ["walk-team-tag"]}}).json()["team_id"]
    team_key = gateway.new_key(team_id=team_id)
    # Step 2: requests through the SDK carrying their own tags in extra_body metadata.
    request_tags = ["walk-model-anthropic-claude-v2.1", "walk-app-ishaan-prod"]
    for api_key in (key, key, team_key):
        gateway.sdk(api_key).chat.completions.create(model="priced-model", messages=POEM,
                                                     extra_body={"metadata": {"tags": request_tags}})

    # Step 3: /spend/tags counts each tag once per request and sums its spend.
    expected = {"walk-model-anthropic-claude-v2.1": 3, "walk-app-ishaan-prod": 3, "walk-key-tag": 2,
                "walk-team-tag": 1}
    wait_for(lambda: tag_counts(gateway, expected) == expected)
    rows = {r["individual_request_tag"]: r for r in gateway.admin("GET", "/spend/tags").json()}
    assert rows["walk-app-ishaan-prod"]["total_spend"] == pytest.approx(3 * 0.0019)
    assert rows["walk-key-tag"]["total_spend"] == pytest.approx(2 * 0.0019)


def test_spend_tags_rows_have_the_seed_shape(gateway, stand_in):
    gateway.sdk().chat.completions.create(model="priced-model", messages=POEM,
                                          extra_body={"metadata": {"tags": ["shape-tag"]}})

    wait_for(lambda: tag_counts(gateway, ["shape-tag"])["shape-tag"] == 1)
    row = next(r for r in gateway.admin("GET", "/spend/tags").json() if r["individual_request_tag"] == "shape-tag")
    assert set(row) == {"individual_request_tag", "log_count", "total_spend"}


def test_tags_sent_with_curl_style_json_are_tracked(gateway, stand_in):
    response = gateway.admin("POST", "/chat/completions", json={
        "model": "priced-model", "messages": [{"role": "user", "content": "what llm are you"}],
        "metadata": {"tags": ["curl-tag"]}})

    assert response.status_code == 200
    row = gateway.spend_row(response.json()["id"])
    assert row["request_tags"] == ["curl-tag"]


def test_spend_logs_metadata_from_key_shows_in_spend_logs(gateway, stand_in):
    key = gateway.new_key(metadata={"spend_logs_metadata": {"hello": "world"}})

    response = gateway.sdk(key).chat.completions.create(model="priced-model", messages=POEM)

    row = gateway.spend_row(response.id)
    assert row["request_id"] == response.id
    assert row["call_type"] == "acompletion"
    assert row["metadata"]["spend_logs_metadata"] == {"hello": "world"}
    assert row["metadata"]["user_api_key"] == row["api_key"]
    assert set(row["metadata"]) >= {"user_api_key", "user_api_key_alias", "user_api_key_team_id",
                                    "user_api_key_user_id", "user_api_key_team_alias", "spend_logs_metadata"}


def test_spend_logs_metadata_from_the_request_wins_over_key_and_team(gateway, stand_in):
    team_id = gateway.admin("POST", "/team/new", json={
        "metadata": {"spend_logs_metadata": {"hello": "team", "team_only": True}}}).json()["team_id"]
    key = gateway.new_key(team_id=team_id, metadata={"spend_logs_metadata": {"hello": "key", "key_only": 1}})

    response = gateway.sdk(key).chat.completions.create(
        model="priced-model", messages=POEM, extra_body={"metadata": {"spend_logs_metadata": {"hello": "world"}}})

    row = gateway.spend_row(response.id)
    assert row["metadata"]["spend_logs_metadata"] == {"hello": "world", "key_only": 1, "team_only": True}
    assert row["team_id"] == team_id


def test_spend_logs_can_be_filtered_by_key_and_user(gateway, stand_in):
    key = gateway.new_key(user_id="walkthrough-user")

    response = gateway.sdk(key).chat.completions.create(model="priced-model", messages=POEM)

    gateway.spend_row(response.id)
    assert [r["request_id"] for r in gateway.spend_logs(api_key=key)] == [response.id]
    assert [r["request_id"] for r in gateway.spend_logs(user_id="walkthrough-user")] == [response.id]
