from tests.teams.customers import CUSTOMER_FIELDS, customer
from tests.teams.helpers import assert_not_admin_refused


def test_info_returns_the_customer(admin_api):
    customer("end-1", alias="Acme", max_budget=5, default_model="gpt-4o")

    response = admin_api.get("/customer/info", {"end_user_id": "end-1"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == CUSTOMER_FIELDS
    assert (body["user_id"], body["alias"], body["max_budget"], body["default_model"]) == ("end-1", "Acme", 5.0,
                                                                                           "gpt-4o")
    assert body["litellm_budget_table"]["max_budget"] == 5.0


def test_info_of_an_unknown_customer_is_404(admin_api):
    response = admin_api.get("/customer/info", {"end_user_id": "ghost"})

    assert response.status_code == 404
    assert response.json()["error"] == {"message": "Customer not found, passed end_user_id=ghost",
                                        "type": "not_found_error", "param": "end_user_id", "code": "404"}


def test_info_without_end_user_id_is_400(admin_api):
    response = admin_api.get("/customer/info")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "end_user_id"


def test_a_proxy_admin_viewer_may_read_a_customer(admin_api, api_as):
    customer("end-1")
    raw = admin_api.post("/user/new", {"user_id": "vic", "user_role": "proxy_admin_viewer"}, format="json").json()["key"]

    assert api_as(raw).get("/customer/info", {"end_user_id": "end-1"}).status_code == 200


def test_info_by_an_internal_user_is_refused(api_as, alice_key):
    customer("end-1")

    assert_not_admin_refused(api_as(alice_key).get("/customer/info", {"end_user_id": "end-1"}))
