"""The admin as a superuser sees it, and the rows it shows."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from keys.services import key_generate
from spend.models import SpendLog, SpendStatus
from teams.models import Team

RAW_KEY = re.compile(r"sk-[A-Za-z0-9_-]{22}")


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
