from asgiref.sync import async_to_sync

from teams.cache import customer_lookup
from teams.models import Customer
from tests.teams.customers import customer
from tests.teams.helpers import assert_not_admin_refused


def test_update_returns_the_customer_with_the_new_values(admin_api):
    customer("end-1", alias="old")

    response = admin_api.post("/customer/update", {"user_id": "end-1", "alias": "new", "max_budget": 3,
                                                   "allowed_model_region": "us", "models": ["gpt-4o"]},
                              format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["alias"], body["max_budget"], body["allowed_model_region"], body["models"]) == (
        "new", 3.0, "us", ["gpt-4o"])
    assert Customer.objects.get().alias == "new"


def test_update_leaves_absent_fields_untouched(admin_api):
    customer("end-1", alias="keep", default_model="gpt-4o")

    body = admin_api.post("/customer/update", {"user_id": "end-1", "max_budget": 1}, format="json").json()

    assert (body["alias"], body["default_model"]) == ("keep", "gpt-4o")


def test_a_new_budget_duration_sets_budget_reset_at(admin_api):
    customer("end-1")

    body = admin_api.post("/customer/update", {"user_id": "end-1", "budget_duration": "1d"}, format="json").json()

    assert body["litellm_budget_table"]["budget_reset_at"] is not None


def test_update_reaches_the_proxy_customer_cache(admin_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the cache is per process: drop older tests' entry
        customer("end-1")
    assert async_to_sync(customer_lookup)("end-1").max_budget is None

    with django_capture_on_commit_callbacks(execute=True):
        admin_api.post("/customer/update", {"user_id": "end-1", "max_budget": 2}, format="json")

    assert async_to_sync(customer_lookup)("end-1").max_budget == 2.0


def test_update_of_an_unknown_customer_is_404(admin_api):
    response = admin_api.post("/customer/update", {"user_id": "ghost", "alias": "x"}, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Customer not found, passed user_id=ghost"
    assert not Customer.objects.exists()


def test_update_by_a_non_admin_key_is_refused(api_as, alice_key):
    customer("end-1", alias="keep")

    response = api_as(alice_key).post("/customer/update", {"user_id": "end-1", "alias": "mine"}, format="json")

    assert_not_admin_refused(response)
    assert Customer.objects.get().alias == "keep"
