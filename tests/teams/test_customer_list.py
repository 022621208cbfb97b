from tests.teams.customers import customer
from tests.teams.helpers import assert_not_admin_refused


def test_list_returns_every_customer_oldest_first(admin_api):
    customer("end-1")
    customer("end-2", blocked=True)

    response = admin_api.get("/customer/list")

    assert response.status_code == 200
    assert [(c["user_id"], c["blocked"]) for c in response.json()] == [("end-1", False), ("end-2", True)]


def test_list_is_paginated(admin_api):
    for n in range(3):
        customer(f"end-{n}")

    body = admin_api.get("/customer/list", {"page": 2, "size": 2}).json()

    assert [c["user_id"] for c in body] == ["end-2"]


def test_list_without_customers_is_empty(admin_api):
    assert admin_api.get("/customer/list").json() == []


def test_list_refuses_a_size_over_1000(admin_api):
    response = admin_api.get("/customer/list", {"size": 1001})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "size"


def test_list_by_an_internal_user_is_refused(api_as, alice_key):
    assert_not_admin_refused(api_as(alice_key).get("/customer/list"))
