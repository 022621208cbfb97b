"""Shared fixtures: the master key, API clients as named personas, factories."""
from __future__ import annotations

import os

import pytest
from rest_framework.test import APIClient

MASTER_KEY = "sk-test-master-key"


def pytest_collection_modifyitems(config, items) -> None:
    """``deployment`` tests exercise what production runs on PostgreSQL (several processes, Redis, restarts):
    they run on the PostgreSQL pass only, so the suite's second, SQLite pass does not repeat them."""
    if not os.environ.get("DATABASE_URL", "").startswith("sqlite"):
        return
    skip = pytest.mark.skip(reason="a multi-process deployment test: run on the PostgreSQL pass only")
    for item in items:
        if item.get_closest_marker("deployment") is not None:
            item.add_marker(skip)


@pytest.fixture
def master_key() -> str:
    return MASTER_KEY


@pytest.fixture
def admin_api(db) -> APIClient:
    """The management API as the proxy admin (master key)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {MASTER_KEY}")
    return client


@pytest.fixture
def anonymous_api(db) -> APIClient:
    return APIClient()


@pytest.fixture
def api_as(db):
    """``api_as(raw_key)``: the management API as the holder of a virtual key."""

    def make(raw_key: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        return client

    return make
