from asgiref.sync import async_to_sync

from keys.cache import key_lookup
from keys.hashing import digest
from keys.models import VirtualKey


def _generate(api, **fields) -> dict:
    response = api.post("/key/generate", fields, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def test_delete_by_raw_key_returns_the_keys_as_passed(admin_api):
    first, second = _generate(admin_api)["key"], _generate(admin_api)["key"]
    kept = _generate(admin_api)["token_id"]

    response = admin_api.post("/key/delete", {"keys": [first, second]}, format="json")

    assert response.status_code == 200
    assert response.json() == {"deleted_keys": [first, second]}
    assert list(VirtualKey.objects.values_list("token", flat=True)) == [kept]


def test_delete_by_the_keys_hash(admin_api):
    token = _generate(admin_api)["token_id"]

    response = admin_api.post("/key/delete", {"keys": [token]}, format="json")

    assert response.json() == {"deleted_keys": [token]}
    assert not VirtualKey.objects.exists()


def test_delete_by_key_alias(admin_api):
    _generate(admin_api, key_alias="ci")

    response = admin_api.post("/key/delete", {"key_aliases": ["ci"]}, format="json")

    assert response.json() == {"deleted_keys": ["ci"]}
    assert not VirtualKey.objects.exists()


def test_a_deleted_key_no_longer_authenticates(admin_api, api_as):
    raw = _generate(admin_api)["key"]

    admin_api.post("/key/delete", {"keys": [raw]}, format="json")

    response = api_as(raw).get("/key/info")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Authentication Error, Invalid API key provided."


def test_delete_evicts_the_key_from_the_proxy_key_cache(admin_api, django_capture_on_commit_callbacks):
    raw = _generate(admin_api)["key"]
    assert async_to_sync(key_lookup)(raw) is not None

    with django_capture_on_commit_callbacks(execute=True):
        admin_api.post("/key/delete", {"keys": [raw]}, format="json")

    assert async_to_sync(key_lookup)(raw) is None


def test_delete_with_an_unknown_key_deletes_nothing(admin_api):
    raw = _generate(admin_api)["key"]

    response = admin_api.post("/key/delete", {"keys": [raw, "sk-no-such-key"]}, format="json")

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "not_found_error" and error["message"] == "Key not found in database: sk-...-key"
    assert VirtualKey.objects.filter(token=digest(raw)).exists()


def test_delete_with_an_unknown_alias_deletes_nothing(admin_api):
    _generate(admin_api, key_alias="ci")

    response = admin_api.post("/key/delete", {"key_aliases": ["ci", "ghost"]}, format="json")

    assert response.status_code == 404
    assert "ghost" in response.json()["error"]["message"]
    assert VirtualKey.objects.count() == 1


def test_delete_without_keys_or_aliases_is_400(admin_api):
    response = admin_api.post("/key/delete", {}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "keys"


def test_delete_refuses_keys_that_are_not_a_list(admin_api):
    raw = _generate(admin_api)["key"]

    response = admin_api.post("/key/delete", {"keys": raw}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "keys"
    assert VirtualKey.objects.count() == 1


def test_delete_by_a_non_admin_key_is_refused(admin_api, api_as):
    # An internal_user_viewer: internal users may delete their own keys (tests/test_role_matrix.py).
    raw = admin_api.post("/user/new", {"user_id": "vera", "user_role": "internal_user_viewer"}, format="json").json()["key"]

    response = api_as(raw).post("/key/delete", {"keys": [raw]}, format="json")

    assert response.status_code == 401
    assert "Only proxy admin can be used" in response.json()["error"]["message"]
    assert VirtualKey.objects.count() == 1
