"""litellm_settings.store_audit_logs: off by default, read at every change."""
from auditlog.models import LogEntry

from gateway_project.audit.models import AuditRecord
from teams.services import customer_create


def test_nothing_is_recorded_without_store_audit_logs(db, admin_api):
    admin_api.post("/team/new", {"team_id": "t1", "members_with_roles": [{"role": "user", "user_id": "ann"}]},
                   format="json")
    admin_api.post("/key/generate", {"team_id": "t1"}, format="json")
    admin_api.post("/team/delete", {"team_ids": ["t1"]}, format="json")

    assert not AuditRecord.objects.exists() and not LogEntry.objects.exists()


def test_store_audit_logs_false_records_nothing(config_yaml, admin_api):
    config_yaml("litellm_settings:\n  store_audit_logs: false\n")

    admin_api.post("/customer/new", {"user_id": "end-1"}, format="json")

    assert not AuditRecord.objects.exists() and not LogEntry.objects.exists()


def test_switching_store_audit_logs_on_takes_effect_without_a_restart(db, config_yaml):
    customer_create(user_id="before")
    config_yaml("litellm_settings:\n  store_audit_logs: true\n")

    customer_create(user_id="after")

    assert list(AuditRecord.objects.values_list("object_id", flat=True)) == ["after"]
