from keys.hashing import digest
from keys.models import VirtualKey


def _generate(api, **fields) -> dict:
    response = api.post("/key/generate", fields, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def test_update_returns_the_key_as_passed_with_its_new_settings(admin_api):
    raw = _generate(admin_api, key_alias="old")["key"]

    response = admin_api.post("/key/update", {"key": raw, "key_alias": "new", "max_budget": 4, "models": ["gpt-4o"]},
                              format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["key"] == raw and body["token_id"] == digest(raw)
    assert (body["key_alias"], body["max_budget"], body["models"]) == ("new", 4.0, ["gpt-4o"])
    stored = VirtualKey.objects.get(token=digest(raw))
    assert (stored.key_alias, stored.max_budget, stored.models) == ("new", 4.0, ["gpt-4o"])


def test_update_accepts_the_keys_hash(admin_api):
    token = _generate(admin_api)["token_id"]

    body = admin_api.post("/key/update", {"key": token, "rpm_limit": 7}, format="json").json()

    assert body["key"] == token and body["rpm_limit"] == 7


def test_update_leaves_absent_fields_untouched(admin_api):
    raw = _generate(admin_api, key_alias="keep", models=["gpt-4o"], tpm_limit=100)["key"]

    body = admin_api.post("/key/update", {"key": raw, "rpm_limit": 5}, format="json").json()

    assert (body["key_alias"], body["models"], body["tpm_limit"], body["rpm_limit"]) == ("keep", ["gpt-4o"], 100, 5)


def test_update_stores_metadata_tags_and_spend_logs_metadata(admin_api):
    raw = _generate(admin_api)["key"]
    metadata = {"tags": ["tag1"], "spend_logs_metadata": {"hello": "world"}}

    body = admin_api.post("/key/update", {"key": raw, "metadata": metadata}, format="json").json()

    assert body["metadata"] == metadata
    assert VirtualKey.objects.get(token=digest(raw)).metadata == metadata


def test_update_with_a_duration_sets_expires(admin_api):
    raw = _generate(admin_api)["key"]

    body = admin_api.post("/key/update", {"key": raw, "duration": "1h"}, format="json").json()

    assert body["expires"] is not None


def test_update_with_a_new_budget_duration_sets_budget_reset_at(admin_api):
    raw = _generate(admin_api)["key"]

    body = admin_api.post("/key/update", {"key": raw, "budget_duration": "30d"}, format="json").json()

    assert body["budget_duration"] == "30d" and body["budget_reset_at"] is not None


def test_update_moves_the_key_to_a_team(admin_api):
    admin_api.post("/team/new", {"team_id": "t1"}, format="json")
    raw = _generate(admin_api)["key"]

    body = admin_api.post("/key/update", {"key": raw, "team_id": "t1"}, format="json").json()

    assert body["team_id"] == "t1"
    assert VirtualKey.objects.get(token=digest(raw)).team_id == "t1"


def test_update_records_who_changed_the_key(admin_api):
    raw = _generate(admin_api)["key"]

    body = admin_api.post("/key/update", {"key": raw, "rpm_limit": 1}, format="json").json()

    assert body["updated_by"] == "default_user_id"


def test_update_to_an_unknown_team_is_400_and_changes_nothing(admin_api):
    raw = _generate(admin_api, key_alias="keep")["key"]

    response = admin_api.post("/key/update", {"key": raw, "key_alias": "changed", "team_id": "ghost"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Team not found, passed team_id=ghost"
    assert VirtualKey.objects.get(token=digest(raw)).key_alias == "keep"


def test_update_of_an_unknown_key_is_404(admin_api):
    response = admin_api.post("/key/update", {"key": "sk-no-such-key", "rpm_limit": 1}, format="json")

    assert response.status_code == 404
    assert response.json() == {"error": {"message": "Key not found in database", "type": "not_found_error",
                                         "param": "key", "code": "404"}}


def test_update_without_a_key_field_is_400(admin_api):
    response = admin_api.post("/key/update", {"rpm_limit": 1}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "key"


def test_update_refuses_wrong_types_and_changes_nothing(admin_api):
    raw = _generate(admin_api, key_alias="keep")["key"]

    response = admin_api.post("/key/update", {"key": raw, "key_alias": "changed", "models": "gpt-4o",
                                              "blocked": "maybe"}, format="json")

    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "models" in message and "blocked" in message
    assert VirtualKey.objects.get(token=digest(raw)).key_alias == "keep"


def test_update_refuses_an_alias_another_key_has(admin_api):
    _generate(admin_api, key_alias="taken")
    raw = _generate(admin_api, key_alias="mine")["key"]

    response = admin_api.post("/key/update", {"key": raw, "key_alias": "taken"}, format="json")

    assert response.status_code == 400
    assert "taken" in response.json()["error"]["message"]
    assert VirtualKey.objects.get(token=digest(raw)).key_alias == "mine"


def test_update_refuses_malformed_json(admin_api):
    response = admin_api.generic("POST", "/key/update", "{'key': 1}", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "request_body"


def test_update_by_a_non_admin_key_is_refused(admin_api, api_as):
    raw = _generate(admin_api, user_id="alice", max_budget=1)["key"]

    response = api_as(raw).post("/key/update", {"key": raw, "max_budget": 1000}, format="json")

    assert response.status_code == 401
    assert "Only proxy admin can be used" in response.json()["error"]["message"]
    assert VirtualKey.objects.get(token=digest(raw)).max_budget == 1.0
