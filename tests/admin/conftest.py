"""The admin as its personas see it (a superuser operator, a proxy_admin_viewer), the rows it shows,
and the proxy in-process, to check that what the admin changed reaches the request path."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from keys.services import key_generate
from spend.models import SpendLog, SpendStatus
from spend.writer import writer
from teams.models import Team, UserRole
from tests.audit.conftest import audit_on, config_yaml  # noqa: F401  (fixtures, re-exported)

RAW_KEY = re.compile(r"sk-[A-Za-z0-9_-]{22}")
# What a viewer may look at: the view permission of each gateway model, nothing else.
VIEW_PERMISSIONS = ("view_virtualkey", "view_team", "view_teammembership", "view_user", "view_customer",
                    "view_spendlog")


@pytest.fixture
def root(db, django_user_model):
    """The operator: a superuser who manages the gateway in the admin."""
    return django_user_model.objects.create_superuser("root", "root@example.com", "unused")


@pytest.fixture
def admin_site(root) -> Client:
    client = Client()
    client.force_login(root)
    return client


@pytest.fixture
def viewer(db, django_user_model):
    """``vera``: staff, role proxy_admin_viewer, with view permissions only."""
    user = django_user_model.objects.create_user("vera", "vera@example.com", "unused", is_staff=True,
                                                 role=UserRole.PROXY_ADMIN_VIEWER)
    user.user_permissions.set(Permission.objects.filter(codename__in=VIEW_PERMISSIONS))
    return user


@pytest.fixture
def viewer_site(viewer) -> Client:
    client = Client()
    client.force_login(viewer)
    return client


@pytest.fixture
def ml_team(db) -> Team:
    return Team.objects.create(team_alias="ml-research", max_budget=10.0, spend=0.12)


@pytest.fixture
def make_key(db):
    """``make_key(**fields)``: a key issued by the real service; returns the VirtualKey."""

    def make(**fields):
        key, _raw = key_generate(actor="fixture", **fields)
        return key

    return make


@pytest.fixture
def issue_key(db):
    """``issue_key(**fields)``: a key issued by the real service; returns (VirtualKey, raw secret)."""

    def issue(**fields):
        return key_generate(actor="fixture", **fields)

    return issue


@pytest.fixture
def proxy(db):
    """``proxy(raw_key, **body)``: one chat completion through the real proxy, in-process, against the
    built-in fake model; returns the response. The proxy reads keys, teams and customers from its
    snapshot caches, so a test sees a change there only once the admin's transaction commits."""
    client = Client()
    unwritten = writer.pending

    def call(raw_key: str, **body):
        payload = {"model": "fake-openai-endpoint", "messages": [{"role": "user", "content": "hi"}], **body}
        return client.post("/chat/completions", payload, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    yield call
    # Each call hands a spend row to the process-wide writer, whose flushing task died with the call's
    # event loop: drop those rows, or a later test's flush would write them into its database.
    del writer._buffer[unwritten:]


@pytest.fixture
def make_spend_logs(db):
    """``make_spend_logs(count, **fields)``: ledger rows, newest first, one minute apart."""

    def make(count: int, **fields) -> list[SpendLog]:
        now = timezone.now()
        rows = [
            SpendLog(request_id=f"chatcmpl-{i:05d}", call_id=f"call-{i}", call_type="acompletion",
                     model_group="fake-openai-endpoint", status=SpendStatus.SUCCESS, total_tokens=30,
                     spend=0.0001, start_time=now - timedelta(minutes=i), end_time=now - timedelta(minutes=i),
                     **fields)
            for i in range(count)
        ]
        return SpendLog.objects.bulk_create(rows)

    return make
