"""Customers (end users) in the audit trail, named by their user_id."""
from tests.audit.conftest import last_record, records

TABLE = "LiteLLM_EndUserTable"


def test_creating_a_customer_records_a_created_row(audit_on, admin_api):
    admin_api.post("/customer/new", {"user_id": "end-1", "alias": "acme", "max_budget": 5}, format="json")

    [record] = records(table_name=TABLE)
    assert (record.action, record.object_id, record.changed_by) == ("created", "end-1", "default_user_id")
    assert record.updated_values["alias"] == "acme" and record.updated_values["max_budget"] == 5.0


def test_updating_a_customer_records_the_changed_values(audit_on, admin_api):
    admin_api.post("/customer/new", {"user_id": "end-1", "alias": "acme"}, format="json")

    admin_api.post("/customer/update", {"user_id": "end-1", "alias": "acme-corp"}, format="json")

    record = last_record(table_name=TABLE)
    assert (record.action, record.before_value, record.updated_values) == (
        "updated", {"alias": "acme"}, {"alias": "acme-corp"})


def test_deleting_a_customer_records_it_deleted(audit_on, admin_api):
    admin_api.post("/customer/new", {"user_id": "end-1"}, format="json")

    admin_api.post("/customer/delete", {"user_ids": ["end-1"]}, format="json")

    record = last_record(table_name=TABLE)
    assert (record.action, record.object_id, record.before_value["user_id"]) == ("deleted", "end-1", "end-1")


def test_blocking_a_customer_records_blocked(audit_on, admin_api):
    admin_api.post("/customer/new", {"user_id": "end-1"}, format="json")

    admin_api.post("/customer/block", {"user_ids": ["end-1"]}, format="json")

    record = last_record(table_name=TABLE)
    assert (record.action, record.updated_values) == ("blocked", {"blocked": True})


def test_unblocking_a_customer_records_unblocked(audit_on, admin_api):
    admin_api.post("/customer/new", {"user_id": "end-1", "blocked": True}, format="json")

    admin_api.post("/customer/unblock", {"user_ids": ["end-1"]}, format="json")

    assert last_record(table_name=TABLE).action == "unblocked"


def test_blocking_an_unknown_customer_records_it_created_blocked(audit_on, admin_api):
    admin_api.post("/customer/block", {"user_ids": ["end-9"]}, format="json")

    [record] = records(table_name=TABLE)
    assert (record.action, record.updated_values["blocked"]) == ("created", True)
