from asgiref.sync import async_to_sync

from teams.cache import customer_lookup
from teams.models import Customer
from tests.teams.customers import customer
from tests.teams.helpers import assert_not_admin_refused


def test_unblock_returns_the_unblocked_customers(admin_api):
    customer("end-1", blocked=True)
    customer("end-2", blocked=True)

    response = admin_api.post("/customer/unblock", {"user_ids": ["end-1"]}, format="json")

    assert response.status_code == 200
    assert [(r["user_id"], r["blocked"]) for r in response.json()["unblocked_users"]] == [("end-1", False)]
    assert dict(Customer.objects.values_list("user_id", "blocked")) == {"end-1": False, "end-2": True}


def test_unblock_of_a_customer_that_is_not_blocked_succeeds(admin_api):
    customer("end-1")

    body = admin_api.post("/customer/unblock", {"user_ids": ["end-1"]}, format="json").json()

    assert body["unblocked_users"][0]["blocked"] is False


def test_user_unblock_is_an_alias(admin_api):
    customer("end-1", blocked=True)

    response = admin_api.post("/user/unblock", {"user_ids": ["end-1"]}, format="json")

    assert response.status_code == 200
    assert Customer.objects.get().blocked is False


def test_unblock_reaches_the_proxy_customer_cache(admin_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the cache is per process: drop older tests' entry
        customer("end-1", blocked=True)
    assert async_to_sync(customer_lookup)("end-1").blocked is True

    with django_capture_on_commit_callbacks(execute=True):
        admin_api.post("/customer/unblock", {"user_ids": ["end-1"]}, format="json")

    assert async_to_sync(customer_lookup)("end-1").blocked is False


def test_unblock_with_an_unknown_id_unblocks_nothing(admin_api):
    customer("end-1", blocked=True)

    response = admin_api.post("/customer/unblock", {"user_ids": ["end-1", "ghost"]}, format="json")

    assert response.status_code == 404
    assert response.json()["error"] == {"message": "Customer not found, passed user_id=ghost",
                                        "type": "not_found_error", "param": "user_ids", "code": "404"}
    assert Customer.objects.get().blocked is True


def test_unblock_by_a_non_admin_key_is_refused(api_as, alice_key):
    customer("end-1", blocked=True)

    assert_not_admin_refused(api_as(alice_key).post("/customer/unblock", {"user_ids": ["end-1"]}, format="json"))
    assert Customer.objects.get().blocked is True
