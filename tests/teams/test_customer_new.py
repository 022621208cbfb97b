from teams.models import Customer
from tests.teams.customers import CUSTOMER_FIELDS, customer
from tests.teams.helpers import assert_not_admin_refused


def test_new_returns_the_customer_with_every_field(admin_api):
    response = admin_api.post("/customer/new", {
        "user_id": "end-1", "alias": "Acme", "max_budget": 5, "budget_duration": "30d", "tpm_limit": 1000,
        "rpm_limit": 10, "allowed_model_region": "eu", "default_model": "gpt-4o", "models": ["gpt-4o"],
    }, format="json")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == CUSTOMER_FIELDS
    assert (body["user_id"], body["alias"], body["blocked"], body["spend"]) == ("end-1", "Acme", False, 0.0)
    assert (body["allowed_model_region"], body["default_model"], body["models"]) == ("eu", "gpt-4o", ["gpt-4o"])
    assert (body["max_budget"], body["budget_duration"]) == (5.0, "30d")
    table = body["litellm_budget_table"]
    assert (table["max_budget"], table["tpm_limit"], table["rpm_limit"]) == (5.0, 1000, 10)
    assert table["budget_reset_at"] is not None


def test_new_with_only_user_id_has_defaults_and_no_budget_table(admin_api):
    body = admin_api.post("/customer/new", {"user_id": "end-1"}, format="json").json()

    assert (body["alias"], body["blocked"], body["models"], body["litellm_budget_table"]) == (None, False, [], None)
    assert Customer.objects.filter(user_id="end-1").exists()


def test_new_may_create_the_customer_blocked(admin_api):
    body = admin_api.post("/customer/new", {"user_id": "end-1", "blocked": True}, format="json").json()

    assert body["blocked"] is True


def test_end_user_new_is_an_alias(admin_api):
    response = admin_api.post("/end_user/new", {"user_id": "end-1"}, format="json")

    assert response.status_code == 200 and response.json()["user_id"] == "end-1"


def test_new_refuses_an_existing_user_id(admin_api):
    customer("end-1", alias="first")

    response = admin_api.post("/customer/new", {"user_id": "end-1", "alias": "second"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == {"message": "Customer with user_id=end-1 already exists.",
                                        "type": "bad_request_error", "param": "user_id", "code": "400"}
    assert Customer.objects.get().alias == "first"


def test_new_without_user_id_is_400(admin_api):
    response = admin_api.post("/customer/new", {"alias": "Acme"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "user_id"


def test_new_refuses_an_unknown_region(admin_api):
    response = admin_api.post("/customer/new", {"user_id": "end-1", "allowed_model_region": "mars"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "allowed_model_region"
    assert not Customer.objects.exists()


def test_new_by_a_non_admin_key_is_refused(api_as, alice_key):
    response = api_as(alice_key).post("/customer/new", {"user_id": "end-1"}, format="json")

    assert_not_admin_refused(response)
    assert not Customer.objects.exists()
