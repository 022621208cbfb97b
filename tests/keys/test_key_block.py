from asgiref.sync import async_to_sync

from keys.cache import key_lookup
from keys.hashing import digest
from keys.models import VirtualKey
from keys.services import key_generate


def _key(**fields) -> str:
    return key_generate(actor=None, **fields)[1]


def test_block_returns_the_key_as_passed_with_blocked_true(admin_api):
    raw = _key(key_alias="ci")

    response = admin_api.post("/key/block", {"key": raw}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["key"] == raw and body["token_id"] == digest(raw)
    assert body["blocked"] is True and body["key_alias"] == "ci"
    assert VirtualKey.objects.get(token=digest(raw)).blocked is True


def test_block_accepts_the_keys_hash(admin_api):
    raw = _key()

    body = admin_api.post("/key/block", {"key": digest(raw)}, format="json").json()

    assert body["key"] == digest(raw) and body["blocked"] is True


def test_block_reaches_the_proxy_key_cache_at_once(admin_api, django_capture_on_commit_callbacks):
    raw = _key()
    assert async_to_sync(key_lookup)(raw).blocked is False

    with django_capture_on_commit_callbacks(execute=True):
        admin_api.post("/key/block", {"key": raw}, format="json")

    assert async_to_sync(key_lookup)(raw).blocked is True


def test_a_blocked_key_is_refused_by_the_management_api(admin_api, api_as):
    raw = _key()

    admin_api.post("/key/block", {"key": raw}, format="json")

    response = api_as(raw).get("/key/info")
    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("Authentication Error, Key is blocked.")


def test_block_records_who_blocked_the_key(admin_api):
    raw = _key()

    body = admin_api.post("/key/block", {"key": raw}, format="json").json()

    assert body["updated_by"] == "default_user_id"


def test_unblock_returns_the_key_with_blocked_false(admin_api):
    raw = _key(blocked=True)

    response = admin_api.post("/key/unblock", {"key": raw}, format="json")

    assert response.status_code == 200
    assert response.json()["blocked"] is False
    assert VirtualKey.objects.get(token=digest(raw)).blocked is False


def test_unblock_reaches_the_proxy_key_cache_at_once(admin_api, django_capture_on_commit_callbacks):
    raw = _key(blocked=True)
    assert async_to_sync(key_lookup)(raw).blocked is True

    with django_capture_on_commit_callbacks(execute=True):
        admin_api.post("/key/unblock", {"key": raw}, format="json")

    assert async_to_sync(key_lookup)(raw).blocked is False


def test_block_of_an_unknown_key_is_404(admin_api):
    response = admin_api.post("/key/block", {"key": "sk-no-such-key"}, format="json")

    assert response.status_code == 404
    assert response.json() == {"error": {"message": "Key not found in database", "type": "not_found_error",
                                         "param": "key", "code": "404"}}


def test_block_without_a_key_is_400(admin_api):
    response = admin_api.post("/key/block", {}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "key"


def test_an_internal_user_may_block_its_own_key(api_as):
    own = _key(user_id="alice")
    spare = _key(user_id="alice")

    response = api_as(own).post("/key/block", {"key": spare}, format="json")

    assert response.status_code == 200 and response.json()["blocked"] is True


def test_an_internal_user_may_not_block_someone_elses_key(api_as):
    own, bobs = _key(user_id="alice"), _key(user_id="bob")

    response = api_as(own).post("/key/block", {"key": bobs}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["message"] == "You may only change your own keys."
    assert VirtualKey.objects.get(token=digest(bobs)).blocked is False


def test_an_internal_user_may_not_unblock_even_its_own_key(api_as):
    own, blocked = _key(user_id="alice"), _key(user_id="alice", blocked=True)

    response = api_as(own).post("/key/unblock", {"key": blocked}, format="json")

    assert response.status_code == 401
    assert "Only proxy admin can be used" in response.json()["error"]["message"]
    assert VirtualKey.objects.get(token=digest(blocked)).blocked is True
