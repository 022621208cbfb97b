from asgiref.sync import async_to_sync

from teams.cache import customer_lookup
from teams.models import Customer
from tests.teams.customers import customer
from tests.teams.helpers import assert_not_admin_refused


def test_delete_returns_the_ids_as_passed(admin_api):
    customer("end-1")
    customer("end-2")
    customer("kept")

    response = admin_api.post("/customer/delete", {"user_ids": ["end-1", "end-2"]}, format="json")

    assert response.status_code == 200
    assert response.json() == {"deleted_customers": ["end-1", "end-2"]}
    assert list(Customer.objects.values_list("user_id", flat=True)) == ["kept"]


def test_delete_evicts_the_customer_from_the_proxy_cache(admin_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the cache is per process: drop older tests' entry
        customer("end-1")
    assert async_to_sync(customer_lookup)("end-1") is not None

    with django_capture_on_commit_callbacks(execute=True):
        admin_api.post("/customer/delete", {"user_ids": ["end-1"]}, format="json")

    assert async_to_sync(customer_lookup)("end-1") is None


def test_delete_with_an_unknown_id_deletes_nothing(admin_api):
    customer("end-1")

    response = admin_api.post("/customer/delete", {"user_ids": ["end-1", "ghost"]}, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Customer not found, passed user_id=ghost"
    assert Customer.objects.count() == 1


def test_delete_refuses_an_empty_list(admin_api):
    response = admin_api.post("/customer/delete", {"user_ids": []}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "user_ids"


def test_delete_by_a_non_admin_key_is_refused(api_as, alice_key):
    customer("end-1")

    assert_not_admin_refused(api_as(alice_key).post("/customer/delete", {"user_ids": ["end-1"]}, format="json"))
    assert Customer.objects.count() == 1
