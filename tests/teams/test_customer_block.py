from asgiref.sync import async_to_sync

from teams.cache import customer_lookup
from teams.models import Customer
from tests.teams.customers import CUSTOMER_FIELDS, customer
from tests.teams.helpers import assert_not_admin_refused


def test_block_returns_the_blocked_customers(admin_api):
    customer("end-1", alias="Acme")

    response = admin_api.post("/customer/block", {"user_ids": ["end-1"]}, format="json")

    assert response.status_code == 200
    [row] = response.json()["blocked_users"]
    assert set(row) == CUSTOMER_FIELDS
    assert (row["user_id"], row["alias"], row["blocked"]) == ("end-1", "Acme", True)
    assert Customer.objects.get().blocked is True


def test_block_creates_unknown_ids_blocked(admin_api):
    body = admin_api.post("/customer/block", {"user_ids": ["new-1", "new-2"]}, format="json").json()

    assert [(r["user_id"], r["blocked"]) for r in body["blocked_users"]] == [("new-1", True), ("new-2", True)]
    assert set(Customer.objects.values_list("user_id", "blocked")) == {("new-1", True), ("new-2", True)}


def test_block_of_a_blocked_customer_keeps_it_blocked(admin_api):
    customer("end-1", blocked=True)

    body = admin_api.post("/customer/block", {"user_ids": ["end-1", "end-1"]}, format="json").json()

    assert [r["user_id"] for r in body["blocked_users"]] == ["end-1"]
    assert Customer.objects.get().blocked is True


def test_block_reaches_the_proxy_customer_cache(admin_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the cache is per process: drop older tests' entry
        customer("end-1")
    assert async_to_sync(customer_lookup)("end-1").blocked is False

    with django_capture_on_commit_callbacks(execute=True):
        admin_api.post("/customer/block", {"user_ids": ["end-1"]}, format="json")

    assert async_to_sync(customer_lookup)("end-1").blocked is True


def test_block_refuses_user_ids_that_are_not_a_list(admin_api):
    response = admin_api.post("/customer/block", {"user_ids": "end-1"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "user_ids"
    assert not Customer.objects.exists()


def test_block_by_a_non_admin_key_is_refused(api_as, alice_key):
    assert_not_admin_refused(api_as(alice_key).post("/customer/block", {"user_ids": ["end-1"]}, format="json"))
    assert not Customer.objects.exists()
