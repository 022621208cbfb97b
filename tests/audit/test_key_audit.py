"""Virtual keys in the audit trail: each change one record, named by the key's hash, never holding it."""
from keys.hashing import digest
from tests.audit.conftest import last_record, records

TABLE = "LiteLLM_VerificationToken"


def _generate(admin_api, **fields) -> str:
    response = admin_api.post("/key/generate", fields, format="json")
    assert response.status_code == 200, response.json()
    return response.json()["key"]


def test_generating_a_key_records_one_created_row_named_by_its_hash(audit_on, admin_api):
    raw = _generate(admin_api, key_alias="ci", models=["gpt-4o"])

    [record] = records(table_name=TABLE)
    assert (record.action, record.object_id, record.changed_by) == ("created", digest(raw), "default_user_id")
    assert record.before_value is None
    assert record.updated_values["key_alias"] == "ci" and record.updated_values["models"] == ["gpt-4o"]


def test_the_key_and_its_digest_are_never_among_the_recorded_values(audit_on, admin_api):
    raw = _generate(admin_api, key_alias="ci")
    admin_api.post("/key/update", {"key": raw, "max_budget": 5}, format="json")
    admin_api.post("/key/delete", {"keys": [raw]}, format="json")

    for record in records(table_name=TABLE):
        values = f"{record.before_value} {record.updated_values} {record.log_entry.changes}"
        assert digest(raw) not in values and raw not in values
        assert "token" not in (record.before_value or {}) and "token_id" not in record.updated_values


def test_updating_a_key_records_the_changed_values_before_and_after(audit_on, admin_api):
    raw = _generate(admin_api, max_budget=1)

    admin_api.post("/key/update", {"key": raw, "max_budget": 5, "models": ["gpt-4o"]}, format="json")

    record = last_record(table_name=TABLE)
    assert record.action == "updated" and record.object_id == digest(raw)
    assert record.before_value == {"max_budget": 1.0, "models": []}
    assert record.updated_values == {"max_budget": 5.0, "models": ["gpt-4o"]}


def test_deleting_a_key_records_what_it_was(audit_on, admin_api):
    raw = _generate(admin_api, key_alias="gone")

    admin_api.post("/key/delete", {"keys": [raw]}, format="json")

    record = last_record(table_name=TABLE)
    assert (record.action, record.object_id) == ("deleted", digest(raw))
    assert record.before_value["key_alias"] == "gone" and record.updated_values == {}


def test_blocking_a_key_records_blocked(audit_on, admin_api):
    raw = _generate(admin_api)

    admin_api.post("/key/block", {"key": raw}, format="json")

    record = last_record(table_name=TABLE)
    assert record.action == "blocked"
    assert (record.before_value, record.updated_values) == ({"blocked": False}, {"blocked": True})


def test_unblocking_a_key_records_unblocked(audit_on, admin_api):
    raw = _generate(admin_api, blocked=True)

    admin_api.post("/key/unblock", {"key": raw}, format="json")

    assert last_record(table_name=TABLE).action == "unblocked"


def test_an_update_that_changes_nothing_records_nothing(audit_on, admin_api):
    raw = _generate(admin_api, max_budget=1)

    admin_api.post("/key/update", {"key": raw, "max_budget": 1}, format="json")

    assert len(records(table_name=TABLE)) == 1


def test_regenerating_a_key_records_the_old_hash_deleted_and_the_new_one_created(audit_on, admin_api):
    raw = _generate(admin_api, key_alias="ci")

    new_raw = admin_api.post("/key/regenerate", {"key": raw}, format="json").json()["key"]

    assert [(r.action, r.object_id) for r in records(table_name=TABLE)][1:] == [
        ("deleted", digest(raw)), ("created", digest(new_raw))]
