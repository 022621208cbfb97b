from keys.hashing import digest
from keys.models import VirtualKey


def test_generate_returns_the_key_once_and_stores_only_its_digest(admin_api):
    response = admin_api.post("/key/generate", {"key_alias": "ci", "models": ["gpt-4o"]}, format="json")

    assert response.status_code == 200
    body = response.json()
    raw = body["key"]
    assert raw.startswith("sk-") and len(raw) == 25
    assert body["token_id"] == digest(raw)
    assert body["key_name"] == f"sk-...{raw[-4:]}"
    stored = VirtualKey.objects.get(token=digest(raw))
    assert raw not in str(VirtualKey.objects.filter(pk=stored.pk).values().first())


def test_generate_keeps_metadata_tags_and_spend_logs_metadata(admin_api):
    metadata = {"tags": ["tag1", "tag2", "tag3"], "spend_logs_metadata": {"hello": "world"}}

    body = admin_api.post("/key/generate", {"metadata": metadata}, format="json").json()

    assert body["metadata"] == metadata
    assert VirtualKey.objects.get(token=body["token_id"]).metadata == metadata


def test_generate_accepts_a_custom_sk_key(admin_api):
    body = admin_api.post("/key/generate", {"key": "sk-my-own-key-123"}, format="json").json()

    assert body["key"] == "sk-my-own-key-123"


def test_generate_refuses_a_custom_key_without_sk_prefix(admin_api):
    response = admin_api.post("/key/generate", {"key": "my-own-key-123"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("Invalid key format. LiteLLM Virtual Key must start with 'sk-'")
    assert not VirtualKey.objects.exists()


def test_generate_with_duration_sets_expiry(admin_api):
    body = admin_api.post("/key/generate", {"duration": "30d"}, format="json").json()

    assert body["expires"] is not None


def test_generate_refuses_a_bad_duration_naming_the_field(admin_api):
    response = admin_api.post("/key/generate", {"duration": "forever"}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "duration" and "duration" in error["message"]
    assert error["code"] == "400" and error["type"] == "bad_request_error"


def test_generate_refuses_wrong_types(admin_api):
    response = admin_api.post("/key/generate", {"models": "gpt-4o", "max_budget": "lots"}, format="json")

    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "models" in message and "max_budget" in message
    assert not VirtualKey.objects.exists()


def test_generate_refuses_malformed_json(admin_api):
    response = admin_api.generic("POST", "/key/generate", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "request_body"


def test_generate_refuses_an_unknown_team(admin_api):
    response = admin_api.post("/key/generate", {"team_id": "no-such-team"}, format="json")

    assert response.status_code == 400
    assert "no-such-team" in response.json()["error"]["message"]
    assert not VirtualKey.objects.exists()


def test_generate_refuses_a_duplicate_alias(admin_api):
    admin_api.post("/key/generate", {"key_alias": "dup"}, format="json")

    response = admin_api.post("/key/generate", {"key_alias": "dup"}, format="json")

    assert response.status_code == 400
    assert "dup" in response.json()["error"]["message"]
    assert VirtualKey.objects.count() == 1


def test_generate_without_a_key_is_401(anonymous_api):
    response = anonymous_api.post("/key/generate", {}, format="json")

    assert response.status_code == 401
    assert response.json() == {"error": {"message": "Authentication Error, No api key passed in.",
                                         "type": "auth_error", "param": "None", "code": "401"}}


def test_generate_with_an_unknown_key_is_401(api_as):
    response = api_as("sk-not-a-real-key").post("/key/generate", {}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Authentication Error, Invalid API key provided."


def test_generate_by_a_non_admin_key_is_refused(admin_api, api_as):
    # An internal_user_viewer: internal users may generate keys for themselves (tests/test_role_matrix.py).
    raw = admin_api.post("/user/new", {"user_id": "vera", "user_role": "internal_user_viewer"}, format="json").json()["key"]

    response = api_as(raw).post("/key/generate", {}, format="json")

    assert response.status_code == 401
    assert "Only proxy admin can be used" in response.json()["error"]["message"]
    assert VirtualKey.objects.count() == 1


def test_generate_for_a_new_user_id_creates_the_user(admin_api, django_user_model):
    admin_api.post("/key/generate", {"user_id": "bob"}, format="json")

    assert django_user_model.objects.get(username="bob").role == "internal_user"
