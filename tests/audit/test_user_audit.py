"""Internal users in the audit trail, named by user_id, never with their password."""
from teams.services import user_create
from tests.audit.conftest import last_record, records

TABLE = "LiteLLM_UserTable"


def test_creating_a_user_records_a_created_row_named_by_user_id(audit_on, admin_api):
    admin_api.post("/user/new", {"user_id": "ann", "user_email": "ann@example.com", "auto_create_key": False},
                   format="json")

    [record] = records(table_name=TABLE)
    assert (record.action, record.object_id, record.changed_by) == ("created", "ann", "default_user_id")
    assert record.updated_values["user_email"] == "ann@example.com"
    assert record.updated_values["user_role"] == "internal_user"


def test_a_users_password_and_last_login_are_never_recorded(audit_on, django_user_model):
    user = django_user_model.objects.create_user("ann", password="s3cret-pass")
    user.set_password("an0ther-pass")
    user.save()

    [record] = records(table_name=TABLE)
    values = f"{record.updated_values} {record.log_entry.changes}"
    assert "password" not in values and "last_login" not in values and "pbkdf2" not in values


def test_updating_a_user_records_the_changed_values(audit_on, admin_api):
    admin_api.post("/user/new", {"user_id": "ann", "auto_create_key": False}, format="json")

    admin_api.post("/user/update", {"user_id": "ann", "user_role": "proxy_admin_viewer", "max_budget": 3},
                   format="json")

    record = last_record(table_name=TABLE)
    assert (record.action, record.object_id) == ("updated", "ann")
    assert record.before_value == {"user_role": "internal_user", "max_budget": None}
    assert record.updated_values == {"user_role": "proxy_admin_viewer", "max_budget": 3.0}


def test_deleting_a_user_records_it_deleted(audit_on, admin_api):
    admin_api.post("/user/new", {"user_id": "ann", "auto_create_key": False}, format="json")

    admin_api.post("/user/delete", {"user_ids": ["ann"]}, format="json")

    record = last_record(table_name=TABLE)
    assert (record.action, record.object_id) == ("deleted", "ann")
    assert record.before_value["user_id"] == "ann" and record.updated_values == {}


def test_making_a_user_superuser_records_it(audit_on, django_user_model):
    user_create(actor=None, user_id="ann", auto_create_key=False)
    user = django_user_model.objects.get(username="ann")

    user.is_superuser = user.is_staff = True
    user.save()

    record = last_record(table_name=TABLE)
    assert record.updated_values == {"user_role": "proxy_admin", "is_staff": True, "is_superuser": True}
