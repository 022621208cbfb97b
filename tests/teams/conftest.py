"""Factories for the team and user endpoint tests: keys, teams and users made through the API."""
from __future__ import annotations

import pytest

@pytest.fixture
def new_key(admin_api):
    """``new_key(**fields)``: a key made by /key/generate; returns the raw key."""

    def make(**fields) -> str:
        response = admin_api.post("/key/generate", fields, format="json")
        assert response.status_code == 200, response.json()
        return response.json()["key"]

    return make


@pytest.fixture
def new_team(admin_api):
    """``new_team(**fields)``: a team made by /team/new with the master key; returns the team dict."""

    def make(**fields) -> dict:
        response = admin_api.post("/team/new", fields, format="json")
        assert response.status_code == 200, response.json()
        return response.json()

    return make


@pytest.fixture
def alice_key(new_key) -> str:
    """A key of the internal user ``alice``: not a proxy admin."""
    return new_key(user_id="alice")
