"""Audit logs switched on through config.yaml, personas who make changes, and the records they leave."""
from __future__ import annotations

import pytest
from auditlog.context import disable_auditlog
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from gateway_project.audit.models import AuditRecord
from gateway_project.config import load_config, set_config
from keys.services import key_generate
from teams.services import user_create


@pytest.fixture
def config_yaml(tmp_path):
    """``config_yaml(text)``: run the test with this config.yaml (and the suite's master key)."""

    def use(text: str) -> None:
        path = tmp_path / "config.yaml"
        path.write_text(text)
        set_config(load_config(path, master_key=settings.GATEWAY_MASTER_KEY))

    yield use
    set_config(None)


@pytest.fixture
def audit_on(db, config_yaml) -> None:
    config_yaml("litellm_settings:\n  store_audit_logs: true\n")


def records(**filters) -> list[AuditRecord]:
    """The audit records, oldest first."""
    return list(AuditRecord.objects.filter(**filters).order_by("seq"))


def last_record(**filters) -> AuditRecord:
    return AuditRecord.objects.filter(**filters).order_by("-seq").first()


@pytest.fixture
def ops_key(db) -> tuple[str, str]:
    """``ops``, a proxy_admin user, and the raw key it calls with: (raw key, key digest)."""
    with disable_auditlog():
        user_create(actor=None, user_id="ops", user_role="proxy_admin", auto_create_key=False)
        key, raw = key_generate(actor=None, user_id="ops")
    return raw, key.token


@pytest.fixture
def ops_api(ops_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ops_key[0]}")
    return client


@pytest.fixture
def root(db, django_user_model):
    """The operator: a superuser signed in to the admin."""
    with disable_auditlog():
        return django_user_model.objects.create_superuser("root", "root@example.com", "unused")


@pytest.fixture
def admin_site(root) -> Client:
    client = Client()
    client.force_login(root)
    return client
