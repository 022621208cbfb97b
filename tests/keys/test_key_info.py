from datetime import timedelta

from django.utils import timezone

from keys.hashing import digest
from keys.models import VirtualKey

INFO_FIELDS = {
    "key_name", "key_alias", "token_id", "spend", "max_budget", "budget_duration", "budget_reset_at", "soft_budget",
    "expires", "models", "aliases", "config", "user_id", "team_id", "permissions", "metadata", "tags", "guardrails",
    "enforced_params", "allowed_ips", "allowed_routes", "tpm_limit", "rpm_limit", "max_parallel_requests",
    "model_max_budget", "model_rpm_limit", "model_tpm_limit", "blocked", "created_by", "updated_by", "created_at",
    "updated_at",
}


def _generate(api, **fields) -> dict:
    response = api.post("/key/generate", fields, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def test_info_by_key_returns_every_setting_but_never_the_raw_key(admin_api):
    generated = _generate(admin_api, key_alias="ci", models=["gpt-4o"], max_budget=2,
                          metadata={"tags": ["a"], "spend_logs_metadata": {"hello": "world"}})
    raw = generated["key"]

    response = admin_api.get("/key/info", {"key": raw})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"key", "info"} and body["key"] == raw
    assert set(body["info"]) == INFO_FIELDS
    assert body["info"] == {k: v for k, v in generated.items() if k != "key"}
    assert raw not in str(body["info"])


def test_info_by_the_keys_hash(admin_api):
    token = _generate(admin_api, key_alias="ci")["token_id"]

    body = admin_api.get("/key/info", {"key": token}).json()

    assert body["key"] == token and body["info"]["key_alias"] == "ci"


def test_info_without_key_shows_the_calling_key(admin_api, api_as):
    raw = _generate(admin_api, key_alias="mine")["key"]

    body = api_as(raw).get("/key/info").json()

    assert body["key"] == raw and body["info"]["key_alias"] == "mine"


def test_a_non_admin_key_may_view_another_key_of_its_own_user(admin_api, api_as):
    raw = _generate(admin_api, user_id="alice")["key"]
    other = _generate(admin_api, user_id="alice", key_alias="alice-2")["token_id"]

    response = api_as(raw).get("/key/info", {"key": other})

    assert response.status_code == 200 and response.json()["info"]["key_alias"] == "alice-2"


def test_a_non_admin_key_may_not_view_someone_elses_key(admin_api, api_as):
    raw = _generate(admin_api, user_id="alice")["key"]
    bobs = _generate(admin_api, user_id="bob")["token_id"]

    response = api_as(raw).get("/key/info", {"key": bobs})

    assert response.status_code == 403
    assert response.json() == {"error": {"message": "You may only view your own keys.", "type": "auth_error",
                                         "param": "None", "code": "403"}}


def test_info_of_an_unknown_key_is_404(admin_api):
    response = admin_api.get("/key/info", {"key": "sk-no-such-key"})

    assert response.status_code == 404
    assert response.json() == {"error": {"message": "Key not found in database", "type": "not_found_error",
                                         "param": "key", "code": "404"}}


def test_info_without_an_api_key_is_401(anonymous_api):
    response = anonymous_api.get("/key/info", {"key": "sk-anything"})

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Authentication Error, No api key passed in."


def test_info_by_a_blocked_key_is_401(admin_api, api_as):
    raw = _generate(admin_api, blocked=True)["key"]

    response = api_as(raw).get("/key/info")

    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("Authentication Error, Key is blocked.")


def test_info_by_an_expired_key_is_401_expired_key(admin_api, api_as):
    raw = _generate(admin_api)["key"]
    VirtualKey.objects.filter(token=digest(raw)).update(expires=timezone.now() - timedelta(minutes=1))

    response = api_as(raw).get("/key/info")

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "expired_key" and "Expired Key" in error["message"]
