"""Who may call which management route: one row per (route, request), one column per role.

Each case builds the same world through the services: a user of each role with two keys (the one it
calls with and a spare), ``bob`` (an internal user outside every team) with a key, team ``t1`` (admin
``ta``, member ``iu``), team ``t2`` (no members) and customer ``end-1``. 401 is the route refused to
the role ("Only proxy admin can be used …"), 403 a row that is not the caller's. A change in anyone's
access fails a case here; a new route without a row fails ``test_every_management_route_has_a_row``.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.urls import resolve
from rest_framework.test import APIClient

from keys.api.urls import urlpatterns as key_urls
from keys.services import key_generate
from spend.api.urls import urlpatterns as spend_urls
from teams.api.urls import urlpatterns as team_urls
from teams.models import TeamRole
from teams.services import Member, customer_create, team_create, user_create
from tests.conftest import MASTER_KEY

ROLES = ("master", "proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer", "team_admin")
ADMIN_ONLY = (200, 200, 401, 401, 401, 401)
EVERYONE = (200, 200, 200, 200, 200, 200)
ADMINS_AND_VIEWERS = (200, 200, 200, 401, 401, 401)
OWN_KEY_WRITE = (200, 200, 401, 200, 401, 200)
OTHERS_KEY_WRITE = (200, 200, 401, 403, 401, 403)

LANGFUSE_CALLBACK = {"callback_name": "langfuse", "callback_vars": {"langfuse_public_key": "pk-lf-1",
                                                                    "langfuse_secret_key": "sk-lf-1"}}

# Placeholders: {me} the caller's user_id, {spare} the digest of its spare key, {bob_key} bob's key digest.
MATRIX = [
    # method, path, body (POST) or query (GET)                                master admin viewer user uviewer team_admin
    ("POST", "/key/generate", {},                                                OWN_KEY_WRITE),
    ("POST", "/key/generate", {"user_id": "bob"},                                OTHERS_KEY_WRITE),
    ("POST", "/key/generate", {"team_id": "t1"},                                 (200, 200, 401, 403, 401, 200)),
    ("POST", "/key/generate", {"spend": 5},                                      ADMIN_ONLY),
    ("POST", "/key/update", {"key": "{spare}", "key_alias": "{me}-renamed"},     OWN_KEY_WRITE),
    ("POST", "/key/update", {"key": "{spare}", "max_budget": 100},               ADMIN_ONLY),
    ("POST", "/key/update", {"key": "{bob_key}", "key_alias": "mine"},           OTHERS_KEY_WRITE),
    ("POST", "/key/delete", {"keys": ["{spare}"]},                               OWN_KEY_WRITE),
    ("POST", "/key/delete", {"keys": ["{bob_key}"]},                             OTHERS_KEY_WRITE),
    ("POST", "/key/block", {"key": "{spare}"},                                   OWN_KEY_WRITE),
    ("POST", "/key/block", {"key": "{bob_key}"},                                 OTHERS_KEY_WRITE),
    ("POST", "/key/unblock", {"key": "{spare}"},                                 ADMIN_ONLY),
    ("POST", "/key/regenerate", {"key": "{spare}"},                              OWN_KEY_WRITE),
    ("POST", "/key/regenerate", {"key": "{bob_key}"},                            OTHERS_KEY_WRITE),
    ("POST", "/key/{spare}/regenerate", {},                                      OWN_KEY_WRITE),
    ("GET", "/key/info", {"key": "{spare}"},                                     EVERYONE),
    ("GET", "/key/info", {"key": "{bob_key}"},                                   (200, 200, 200, 403, 403, 403)),
    ("GET", "/key/list", {},                                                     EVERYONE),
    ("POST", "/team/new", {},                                                    ADMIN_ONLY),
    ("POST", "/team/update", {"team_id": "t1", "team_alias": "renamed"},         (200, 200, 401, 401, 401, 200)),
    ("POST", "/team/update", {"team_id": "t1", "max_budget": 1},                 ADMIN_ONLY),
    ("POST", "/team/update", {"team_id": "t2", "team_alias": "renamed"},         ADMIN_ONLY),
    ("POST", "/team/delete", {"team_ids": ["t1"]},                               ADMIN_ONLY),
    ("GET", "/team/info", {"team_id": "t1"},                                     (200, 200, 200, 200, 401, 200)),
    ("GET", "/team/info", {"team_id": "t2"},                                     ADMINS_AND_VIEWERS),
    ("GET", "/team/list", {},                                                    ADMINS_AND_VIEWERS),
    ("GET", "/team/list", {"user_id": "{me}"},                                   EVERYONE),
    ("GET", "/team/list", {"user_id": "bob"},                                    (200, 200, 200, 403, 403, 403)),
    ("POST", "/team/member_add", {"team_id": "t1", "member": {"role": "user", "user_id": "bob"}},
                                                                                 (200, 200, 401, 401, 401, 200)),
    ("POST", "/team/member_add", {"team_id": "t2", "member": {"role": "admin", "user_id": "{me}"}},
                                                                                 ADMIN_ONLY),
    ("POST", "/team/member_delete", {"team_id": "t1", "user_id": "iu"},          (200, 200, 401, 401, 401, 200)),
    ("POST", "/team/t1/callback", LANGFUSE_CALLBACK,                              (200, 200, 401, 401, 401, 200)),
    ("POST", "/team/t2/callback", LANGFUSE_CALLBACK,                              ADMIN_ONLY),
    ("GET", "/team/t1/callback", {},                                             (200, 200, 200, 401, 401, 200)),
    ("POST", "/team/t1/disable_logging", {},                                     (200, 200, 401, 401, 401, 200)),
    ("POST", "/team/block", {"team_id": "t1"},                                   ADMIN_ONLY),
    ("POST", "/team/unblock", {"team_id": "t1"},                                 ADMIN_ONLY),
    ("POST", "/user/new", {"user_id": "newbie"},                                 ADMIN_ONLY),
    ("POST", "/user/update", {"user_id": "bob", "max_budget": 1},                ADMIN_ONLY),
    ("POST", "/user/delete", {"user_ids": ["bob"]},                              ADMIN_ONLY),
    ("GET", "/user/info", {"user_id": "bob"},                                    (200, 200, 200, 403, 403, 403)),
    ("GET", "/user/info", {},                                                    (400, 200, 200, 200, 200, 200)),
    ("POST", "/customer/new", {"user_id": "end-2"},                              ADMIN_ONLY),
    ("POST", "/end_user/new", {"user_id": "end-2"},                              ADMIN_ONLY),
    ("GET", "/customer/info", {"end_user_id": "end-1"},                          ADMINS_AND_VIEWERS),
    ("GET", "/customer/list", {},                                                ADMINS_AND_VIEWERS),
    ("POST", "/customer/update", {"user_id": "end-1", "alias": "renamed"},       ADMIN_ONLY),
    ("POST", "/customer/delete", {"user_ids": ["end-1"]},                        ADMIN_ONLY),
    ("POST", "/customer/block", {"user_ids": ["end-1"]},                         ADMIN_ONLY),
    ("POST", "/customer/unblock", {"user_ids": ["end-1"]},                       ADMIN_ONLY),
    ("POST", "/user/unblock", {"user_ids": ["end-1"]},                           ADMIN_ONLY),
    # /spend/logs: everyone, narrowed to their own rows unless they see everything; /spend/tags: readers.
    ("GET", "/spend/logs", {},                                                   EVERYONE),
    ("GET", "/spend/tags", {},                                                   ADMINS_AND_VIEWERS),
    # Spend reports: everyone, narrowed to their own keys (or the team they administer); activity: readers.
    ("GET", "/global/spend/report", {"start_date": "2026-01-01", "end_date": "2026-01-02"}, EVERYONE),
    ("GET", "/global/spend/tags", {"start_date": "2026-01-01", "end_date": "2026-01-02"},   EVERYONE),
    ("GET", "/key/spend/report", {"start_date": "2026-01-01", "end_date": "2026-01-02"},    EVERYONE),
    ("GET", "/team/spend/report", {"start_date": "2026-01-01", "end_date": "2026-01-02", "team_id": "t1"}, EVERYONE),
    ("GET", "/team/daily/activity", {"start_date": "2026-01-01", "end_date": "2026-01-02"}, ADMINS_AND_VIEWERS),
    ("GET", "/tag/daily/activity", {"start_date": "2026-01-01", "end_date": "2026-01-02"},  ADMINS_AND_VIEWERS),
]

CASES = [
    pytest.param(role, method, path, data, statuses[column], id=f"{index:02d}-{method}-{path}-{role}")
    for index, (method, path, data, statuses) in enumerate(MATRIX)
    for column, role in enumerate(ROLES)
]


@dataclass(frozen=True)
class Caller:
    key: str
    spare: str
    user_id: str


def _user_with_keys(user_id: str, role: str) -> Caller:
    user_create(actor=None, user_id=user_id, user_role=role, auto_create_key=False)
    raw = key_generate(actor=None, user_id=user_id)[1]
    spare, _ = key_generate(actor=None, user_id=user_id, key_alias=f"{user_id}-spare")
    return Caller(key=raw, spare=spare.token, user_id=user_id)


@pytest.fixture
def world(db) -> dict:
    master_spare, _ = key_generate(actor=None, key_alias="master-spare")
    callers = {
        "master": Caller(key=MASTER_KEY, spare=master_spare.token, user_id="default_user_id"),
        "proxy_admin": _user_with_keys("pa", "proxy_admin"),
        "proxy_admin_viewer": _user_with_keys("pav", "proxy_admin_viewer"),
        "internal_user": _user_with_keys("iu", "internal_user"),
        "internal_user_viewer": _user_with_keys("iuv", "internal_user_viewer"),
        "team_admin": _user_with_keys("ta", "internal_user"),
    }
    bob = _user_with_keys("bob", "internal_user")
    team_create(team_id="t1", members_with_roles=[Member(role=TeamRole.ADMIN, user_id="ta"),
                                                  Member(role=TeamRole.USER, user_id="iu")])
    team_create(team_id="t2")
    customer_create(user_id="end-1")
    return {"callers": callers, "bob_key": bob.spare}


def _fill(value, names: dict):
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, list):
        return [_fill(item, names) for item in value]
    if isinstance(value, dict):
        return {name: _fill(item, names) for name, item in value.items()}
    return value


@pytest.mark.parametrize("role, method, path, data, status", CASES)
def test_role_may_call_route(world, role, method, path, data, status):
    caller = world["callers"][role]
    names = {"me": caller.user_id, "spare": caller.spare, "bob_key": world["bob_key"]}
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {caller.key}")
    path, data = _fill(path, names), _fill(data, names)

    if method == "GET":
        response = client.get(path, data)
    else:
        response = client.post(path, data, format="json")

    assert response.status_code == status, response.json()
    if status == 401:
        assert response.json()["error"]["message"].startswith(
            "Authentication Error, Only proxy admin can be used to generate, delete, update info for new "
            f"keys/users/teams. Route={path}.")


def test_every_management_route_has_a_row():
    routes = {str(pattern.pattern) for pattern in key_urls + team_urls + spend_urls}
    covered = {resolve(_fill(path, {"spare": "sk-anything"})).route for _, path, _, _ in MATRIX}

    assert routes == covered
