"""The SSO backend's role mapping and the admin login page without SSO (the embedded default).
The whole flow against a real IdP and a browser is in tests/e2e/test_sso.py."""
from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.messages.storage.fallback import FallbackStorage
from django.test import Client, RequestFactory, override_settings

from teams.models import User, UserRole
from teams.sso import NOT_ALLOWED, PASSWORD_LOGIN_OFF, GatewayOIDCBackend, claim_groups, role_for

SSO = override_settings(GATEWAY_OIDC_GROUPS_CLAIM="roles", GATEWAY_OIDC_ADMIN_GROUPS=["gw-admins"],
                        GATEWAY_OIDC_VIEWER_GROUPS=["gw-viewers"], GATEWAY_OIDC_USERNAME_CLAIM="preferred_username",
                        OIDC_OP_TOKEN_ENDPOINT="http://idp.invalid/token",
                        OIDC_OP_USER_ENDPOINT="http://idp.invalid/userinfo",
                        OIDC_OP_JWKS_ENDPOINT="http://idp.invalid/jwks", OIDC_RP_CLIENT_ID="gateway",
                        OIDC_RP_CLIENT_SECRET="secret")


def backend_with_request() -> GatewayOIDCBackend:
    backend = GatewayOIDCBackend()
    request = RequestFactory().get("/oidc/callback/")
    request.session = {}
    request._messages = FallbackStorage(request)
    backend.request = request
    return backend


@SSO
@pytest.mark.parametrize(("roles", "expected"), [
    (["gw-admins", "other"], {"gw-admins", "other"}),
    ("gw-viewers", {"gw-viewers"}),
    ("gw-viewers gw-admins", {"gw-viewers", "gw-admins"}),
    ("a,b", {"a", "b"}),
    (None, set()),
    ({"not": "a list"}, set()),
])
def test_groups_claim_as_list_or_string(roles, expected):
    assert claim_groups({"roles": roles}) == expected


@SSO
def test_admin_group_wins_over_viewer_group():
    assert role_for({"roles": ["gw-viewers", "gw-admins"]}) == UserRole.PROXY_ADMIN
    assert role_for({"roles": ["gw-viewers"]}) == UserRole.PROXY_ADMIN_VIEWER
    assert role_for({"roles": ["staff"]}) is None
    assert role_for({"groups": ["gw-admins"]}) is None  # another claim than the configured one


@SSO
@pytest.mark.django_db
def test_roles_are_mapped_again_on_every_sign_in():
    backend = backend_with_request()
    claims = {"preferred_username": "ada", "email": "ada@example.test", "roles": ["gw-admins"]}
    assert backend.verify_claims(claims)
    user = backend.create_user(claims)
    assert (user.role, user.is_staff, user.is_superuser, user.has_usable_password()) == (
        UserRole.PROXY_ADMIN, True, True, False)

    claims["roles"] = ["gw-viewers"]
    user = backend.update_user(User.objects.get(username="ada"), claims)
    user = User.objects.get(pk=user.pk)
    assert (user.role, user.is_staff, user.is_superuser) == (UserRole.PROXY_ADMIN_VIEWER, True, False)
    assert user.has_perm("keys.view_virtualkey") and not user.has_perm("keys.change_virtualkey")

    claims["roles"] = ["staff"]
    assert backend.verify_claims(claims) is False
    user = User.objects.get(pk=user.pk)
    assert (user.is_staff, user.is_superuser) == (False, False)
    assert [str(m) for m in backend.request._messages] == [NOT_ALLOWED.format(username="ada")]


@SSO
@pytest.mark.django_db
def test_claims_without_a_username_are_refused():
    backend = backend_with_request()
    assert backend.verify_claims({"email": "x@example.test", "roles": ["gw-admins"]}) is False
    assert "preferred_username" in [str(m) for m in backend.request._messages][0]


@pytest.mark.django_db
def test_without_sso_the_login_page_is_the_password_form(django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "a-Long-passw0rd")
    client = Client()
    page = client.get("/admin/login/").content.decode()
    assert 'id="login-form"' in page and "sso-login-button" not in page
    response = client.post("/admin/login/?next=/admin/", {"username": "root", "password": "a-Long-passw0rd",
                                                          "next": "/admin/"})
    assert response.status_code == 302 and response["Location"] == "/admin/"


@pytest.mark.django_db
def test_password_post_is_refused_when_password_login_is_off(django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "a-Long-passw0rd")
    client = Client()
    with override_settings(GATEWAY_ADMIN_PASSWORD_LOGIN=False):
        response = client.post("/admin/login/", {"username": "root", "password": "a-Long-passw0rd"})
    assert response.status_code == 200
    assert PASSWORD_LOGIN_OFF in response.content.decode().replace("&ldquo;", "“").replace("&rdquo;", "”")
    assert "_auth_user_id" not in client.session


def test_the_test_identity_provider_is_not_part_of_the_gateway():
    # django-oauth-toolkit is installed for tests/idp, a project of its own; the gateway never loads it.
    assert not any(app.startswith(("oauth2_provider", "tests.idp")) for app in settings.INSTALLED_APPS)
    assert settings.ROOT_URLCONF != "tests.idp.urls"
