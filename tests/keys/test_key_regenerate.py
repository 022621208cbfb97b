from datetime import timedelta

from asgiref.sync import async_to_sync

from keys.cache import key_lookup
from keys.hashing import digest
from keys.models import VirtualKey
from keys.services import key_generate


def _key(**fields) -> str:
    return key_generate(actor=None, **fields)[1]


def test_regenerate_returns_a_new_key_shown_once_with_the_old_settings(admin_api):
    old = _key(key_alias="ci", user_id="alice", models=["gpt-4o"], max_budget=5, spend=1.5,
               metadata={"tags": ["t"]})

    response = admin_api.post("/key/regenerate", {"key": old}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["key"].startswith("sk-") and body["key"] != old
    assert body["token_id"] == digest(body["key"]) and body["key_name"] == f"sk-...{body['key'][-4:]}"
    assert (body["key_alias"], body["user_id"], body["models"], body["max_budget"], body["spend"],
            body["metadata"]) == ("ci", "alice", ["gpt-4o"], 5.0, 1.5, {"tags": ["t"]})


def test_regenerate_replaces_the_stored_digest(admin_api):
    old = _key()

    new = admin_api.post("/key/regenerate", {"key": old}, format="json").json()["key"]

    assert list(VirtualKey.objects.values_list("token", flat=True)) == [digest(new)]


def test_regenerate_keeps_the_creation_date(admin_api):
    old = _key()
    created_at = VirtualKey.objects.get(token=digest(old)).created_at - timedelta(days=3)
    VirtualKey.objects.filter(token=digest(old)).update(created_at=created_at)

    new = admin_api.post("/key/regenerate", {"key": old}, format="json").json()["key"]

    assert VirtualKey.objects.get(token=digest(new)).created_at == created_at


def test_the_old_key_stops_working_at_once(admin_api, api_as):
    old = _key()

    new = admin_api.post("/key/regenerate", {"key": old}, format="json").json()["key"]

    assert api_as(old).get("/key/info").status_code == 401
    assert api_as(new).get("/key/info").status_code == 200


def test_regenerate_evicts_the_old_key_from_the_proxy_key_cache(admin_api, django_capture_on_commit_callbacks):
    old = _key(key_alias="ci")
    assert async_to_sync(key_lookup)(old) is not None

    with django_capture_on_commit_callbacks(execute=True):
        new = admin_api.post("/key/regenerate", {"key": old}, format="json").json()["key"]

    assert async_to_sync(key_lookup)(old) is None
    assert async_to_sync(key_lookup)(new).key_alias == "ci"


def test_regenerate_takes_the_key_from_the_path(admin_api):
    old = _key(key_alias="ci")

    response = admin_api.post(f"/key/{old}/regenerate", {}, format="json")

    assert response.status_code == 200 and response.json()["key_alias"] == "ci"


def test_regenerate_takes_the_key_from_the_query_string(admin_api):
    old = _key()

    response = admin_api.post(f"/key/regenerate?key={digest(old)}", {}, format="json")

    assert response.status_code == 200 and not VirtualKey.objects.filter(token=digest(old)).exists()


def test_regenerate_with_a_custom_new_key(admin_api):
    old = _key()

    body = admin_api.post("/key/regenerate", {"key": old, "new_key": "sk-my-new-secret"}, format="json").json()

    assert body["key"] == "sk-my-new-secret" and body["token_id"] == digest("sk-my-new-secret")


def test_regenerate_applies_new_settings(admin_api):
    old = _key(key_alias="ci", max_budget=5)

    body = admin_api.post("/key/regenerate", {"key": old, "max_budget": 9, "duration": "1h"}, format="json").json()

    assert body["max_budget"] == 9.0 and body["expires"] is not None and body["key_alias"] == "ci"


def test_regenerate_records_who_regenerated_the_key(admin_api):
    old = _key()

    body = admin_api.post("/key/regenerate", {"key": old}, format="json").json()

    assert body["updated_by"] == "default_user_id"


def test_regenerate_keeps_a_blocked_key_blocked(admin_api):
    old = _key(blocked=True)

    body = admin_api.post("/key/regenerate", {"key": old}, format="json").json()

    assert body["blocked"] is True


def test_regenerate_refuses_a_new_key_without_the_sk_prefix(admin_api):
    old = _key()

    response = admin_api.post("/key/regenerate", {"key": old, "new_key": "pk-12345678"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "new_key"
    assert VirtualKey.objects.filter(token=digest(old)).exists()


def test_regenerate_refuses_a_new_key_that_exists(admin_api):
    old, other = _key(), _key()

    response = admin_api.post("/key/regenerate", {"key": old, "new_key": other}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "A key with this value already exists."
    assert VirtualKey.objects.count() == 2


def test_regenerate_refuses_a_grace_period(admin_api):
    old = _key()

    response = admin_api.post("/key/regenerate", {"key": old, "grace_period": "1h"}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "grace_period" and "Not supported" in error["message"]
    assert VirtualKey.objects.filter(token=digest(old)).exists()


def test_regenerate_with_an_alias_taken_changes_nothing(admin_api):
    _key(key_alias="taken")
    old = _key(key_alias="mine")

    response = admin_api.post("/key/regenerate", {"key": old, "key_alias": "taken"}, format="json")

    assert response.status_code == 400
    assert VirtualKey.objects.get(token=digest(old)).key_alias == "mine"


def test_regenerate_of_an_unknown_key_is_404(admin_api):
    response = admin_api.post("/key/regenerate", {"key": "sk-no-such-key"}, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Key not found in database"


def test_regenerate_without_a_key_is_400(admin_api):
    response = admin_api.post("/key/regenerate", {}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "key"


def test_an_internal_user_may_regenerate_its_own_key(api_as):
    own, spare = _key(user_id="alice"), _key(user_id="alice", key_alias="spare")

    response = api_as(own).post("/key/regenerate", {"key": spare}, format="json")

    assert response.status_code == 200 and response.json()["key_alias"] == "spare"


def test_an_internal_user_may_not_change_limits_while_regenerating(api_as):
    own, spare = _key(user_id="alice"), _key(user_id="alice", max_budget=1)

    response = api_as(own).post("/key/regenerate", {"key": spare, "max_budget": 100}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["message"].endswith("Only a proxy admin may set: max_budget")
    assert VirtualKey.objects.filter(token=digest(spare)).exists()


def test_an_internal_user_may_not_regenerate_someone_elses_key(api_as):
    own, bobs = _key(user_id="alice"), _key(user_id="bob")

    response = api_as(own).post("/key/regenerate", {"key": bobs}, format="json")

    assert response.status_code == 403
    assert VirtualKey.objects.filter(token=digest(bobs)).exists()
