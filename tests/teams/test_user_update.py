from asgiref.sync import async_to_sync

from keys.cache import key_lookup
from teams.models import User
from tests.teams.helpers import USER_FIELDS, assert_not_admin_refused


def _user(admin_api, **fields) -> dict:
    response = admin_api.post("/user/new", fields, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def test_update_returns_the_user_with_the_new_values(admin_api):
    _user(admin_api, user_id="ann", auto_create_key=False)

    response = admin_api.post("/user/update", {"user_id": "ann", "user_email": "ann@example.com", "max_budget": 10,
                                               "models": ["gpt-4o"], "metadata": {"team": "search"},
                                               "tpm_limit": 100, "rpm_limit": 10, "max_parallel_requests": 2},
                              format="json")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == USER_FIELDS
    assert (body["user_email"], body["max_budget"], body["models"], body["metadata"]) == (
        "ann@example.com", 10.0, ["gpt-4o"], {"team": "search"})
    assert (body["tpm_limit"], body["rpm_limit"], body["max_parallel_requests"]) == (100, 10, 2)
    assert User.objects.get(username="ann").max_budget == 10.0


def test_update_leaves_absent_fields_untouched(admin_api):
    _user(admin_api, user_id="ann", user_email="ann@example.com", max_budget=5, auto_create_key=False)

    body = admin_api.post("/user/update", {"user_id": "ann", "rpm_limit": 3}, format="json").json()

    assert (body["user_email"], body["max_budget"], body["rpm_limit"]) == ("ann@example.com", 5.0, 3)


def test_update_changes_the_role(admin_api):
    _user(admin_api, user_id="ann", auto_create_key=False)

    body = admin_api.post("/user/update", {"user_id": "ann", "user_role": "proxy_admin_viewer"}, format="json").json()

    assert body["user_role"] == "proxy_admin_viewer"
    assert User.objects.get(username="ann").role == "proxy_admin_viewer"


def test_a_new_role_reaches_the_proxy_key_cache(admin_api, django_capture_on_commit_callbacks):
    raw = _user(admin_api, user_id="ann")["key"]
    assert async_to_sync(key_lookup)(raw).user_role == "internal_user"

    with django_capture_on_commit_callbacks(execute=True):
        admin_api.post("/user/update", {"user_id": "ann", "user_role": "proxy_admin"}, format="json")

    assert async_to_sync(key_lookup)(raw).user_role == "proxy_admin"


def test_a_user_made_proxy_admin_may_call_admin_routes(admin_api, api_as):
    raw = _user(admin_api, user_id="ann")["key"]

    admin_api.post("/user/update", {"user_id": "ann", "user_role": "proxy_admin"}, format="json")

    assert api_as(raw).post("/team/new", {}, format="json").status_code == 200


def test_a_new_budget_duration_sets_budget_reset_at(admin_api):
    _user(admin_api, user_id="ann", auto_create_key=False)

    body = admin_api.post("/user/update", {"user_id": "ann", "budget_duration": "30d"}, format="json").json()

    assert body["budget_duration"] == "30d" and body["budget_reset_at"] is not None


def test_a_null_email_clears_it(admin_api):
    _user(admin_api, user_id="ann", user_email="ann@example.com", auto_create_key=False)

    body = admin_api.post("/user/update", {"user_id": "ann", "user_email": None}, format="json").json()

    assert body["user_email"] is None


def test_update_refuses_an_email_another_user_has(admin_api):
    _user(admin_api, user_id="ann", user_email="ann@example.com", auto_create_key=False)
    _user(admin_api, user_id="ben", auto_create_key=False)

    response = admin_api.post("/user/update", {"user_id": "ben", "user_email": "ANN@example.com"}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "user_email" and error["message"] == "User with email ANN@example.com already exists."


def test_update_refuses_an_unknown_role(admin_api):
    _user(admin_api, user_id="ann", auto_create_key=False)

    response = admin_api.post("/user/update", {"user_id": "ann", "user_role": "root"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "user_role"
    assert User.objects.get(username="ann").role == "internal_user"


def test_update_of_an_unknown_user_is_404(admin_api):
    response = admin_api.post("/user/update", {"user_id": "nobody", "max_budget": 1}, format="json")

    assert response.status_code == 404
    assert response.json() == {"error": {"message": "User not found, passed user_id=nobody",
                                         "type": "not_found_error", "param": "user_id", "code": "404"}}


def test_update_without_user_id_is_400(admin_api):
    response = admin_api.post("/user/update", {"max_budget": 1}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "user_id"


def test_a_user_may_not_update_itself(admin_api, api_as):
    raw = _user(admin_api, user_id="ann", max_budget=1)["key"]

    response = api_as(raw).post("/user/update", {"user_id": "ann", "max_budget": 1000}, format="json")

    assert_not_admin_refused(response)
    assert User.objects.get(username="ann").max_budget == 1.0
