"""Single sign-on for the Django admin through an OpenID Connect identity provider (docs/sso.md).

``GatewayOIDCBackend`` signs a person in after mozilla-django-oidc has run the authorization-code
flow and verified the ID token. On every sign-in it maps the IdP's groups claim onto a gateway role:

    a group in GATEWAY_OIDC_ADMIN_GROUPS   -> role proxy_admin, staff and superuser
    a group in GATEWAY_OIDC_VIEWER_GROUPS  -> role proxy_admin_viewer, staff with view-only permissions
    neither                                -> refused; an existing account loses its admin access

The user row is matched on the username claim (GATEWAY_OIDC_USERNAME_CLAIM, the API's ``user_id``),
created on first sign-in, and gets no usable password.
"""
from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView
from requests import RequestException

from teams.admin_login import PASSWORD_LOGIN_OFF  # noqa: F401  (re-exported: the SSO tests read it here)
from teams.models import User, UserRole

logger = logging.getLogger("gateway.sso")

# The Django group that carries the view-only permissions of proxy_admin_viewer.
VIEWER_GROUP = "proxy_admin_viewer"

NOT_ALLOWED = ("Your account ({username}) is not in a group allowed to use this admin. "
               "Ask your administrator to add you to one of the gateway's admin groups.")
NO_USERNAME = "The identity provider did not send the {claim!r} claim, so the gateway cannot tell who you are."
SIGN_IN_FAILED = ("Sign-in with the identity provider did not complete. Try again; if it keeps failing, "
                  "ask your administrator (the reason is in the gateway's log).")


def claim_groups(claims: dict[str, Any]) -> set[str]:
    """The group values of the configured claim: a list, or one string (some IdPs send a single role
    as a string, others a space- or comma-separated list)."""
    raw = claims.get(settings.GATEWAY_OIDC_GROUPS_CLAIM)
    if raw is None:
        return set()
    if isinstance(raw, str):
        return {part for part in raw.replace(",", " ").split() if part}
    if isinstance(raw, (list, tuple)):
        return {str(item) for item in raw}
    return set()


def role_for(claims: dict[str, Any]) -> str | None:
    """proxy_admin, proxy_admin_viewer, or None when no group grants admin access (admin wins)."""
    groups = claim_groups(claims)
    if groups & set(settings.GATEWAY_OIDC_ADMIN_GROUPS):
        return UserRole.PROXY_ADMIN
    if groups & set(settings.GATEWAY_OIDC_VIEWER_GROUPS):
        return UserRole.PROXY_ADMIN_VIEWER
    return None


def viewer_group() -> Group:
    """The group granting every model's ``view_`` permission, kept in step with installed models."""
    group, _ = Group.objects.get_or_create(name=VIEWER_GROUP)
    wanted = set(Permission.objects.filter(codename__startswith="view_").values_list("pk", flat=True))
    have = set(group.permissions.values_list("pk", flat=True))
    if wanted != have:
        group.permissions.set(wanted)
    return group


class GatewayOIDCBackend(OIDCAuthenticationBackend):
    """Creates/updates admin users from the IdP's claims and applies the role mapping on every sign-in."""

    def authenticate(self, request, **kwargs):
        # The IdP refusing the code (used twice, expired, wrong client secret), the IdP unreachable, or an
        # ID token that fails verification (signature, nonce): back to the login page, not a 500/400.
        try:
            return super().authenticate(request, **kwargs)
        except (RequestException, SuspiciousOperation) as exc:
            logger.warning("SSO sign-in failed: %s: %s", type(exc).__name__, exc)
            if request is not None:
                messages.error(request, SIGN_IN_FAILED)
            return None

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        # Some IdPs (Entra ID) put groups/roles only in the ID token: merge it under the userinfo answer.
        userinfo = super().get_userinfo(access_token, id_token, payload)
        return {**payload, **userinfo}

    def _username(self, claims: dict[str, Any]) -> str:
        value = claims.get(settings.GATEWAY_OIDC_USERNAME_CLAIM)
        return str(value).strip() if value is not None else ""

    def _refuse(self, text: str) -> bool:
        if getattr(self, "request", None) is not None:
            messages.error(self.request, text)
        return False

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        username = self._username(claims)
        if not username:
            logger.warning("SSO sign-in refused: no %r claim", settings.GATEWAY_OIDC_USERNAME_CLAIM)
            return self._refuse(NO_USERNAME.format(claim=settings.GATEWAY_OIDC_USERNAME_CLAIM))
        if role_for(claims) is None:
            # Someone removed from the admin groups at the IdP loses admin access here too.
            User.objects.filter(username=username, is_staff=True).update(is_staff=False, is_superuser=False)
            logger.warning("SSO sign-in refused for %s: groups %s grant no admin role",
                           username, sorted(claim_groups(claims)))
            return self._refuse(NOT_ALLOWED.format(username=username))
        return True

    def filter_users_by_claims(self, claims: dict[str, Any]):
        return User.objects.filter(username=self._username(claims))

    def describe_user_by_claims(self, claims: dict[str, Any]) -> str:
        return f"username {self._username(claims)}"

    def create_user(self, claims: dict[str, Any]) -> User:
        with transaction.atomic():
            user = User(username=self._username(claims))
            user.set_unusable_password()
            return self._apply(user, claims)

    def update_user(self, user: User, claims: dict[str, Any]) -> User:
        with transaction.atomic():
            return self._apply(user, claims)

    def _apply(self, user: User, claims: dict[str, Any]) -> User:
        role = role_for(claims)
        user.role = role
        user.is_staff = True
        user.is_superuser = role == UserRole.PROXY_ADMIN
        user.email = str(claims.get("email") or user.email or "")
        user.first_name = str(claims.get("given_name") or user.first_name or "")[:150]
        user.last_name = str(claims.get("family_name") or user.last_name or "")[:150]
        user.save()
        group = viewer_group()
        if role == UserRole.PROXY_ADMIN_VIEWER:
            user.groups.add(group)
        else:
            user.groups.remove(group)
        logger.info("SSO sign-in: %s as %s", user.username, role)
        return user


class GatewayOIDCCallbackView(OIDCAuthenticationCallbackView):
    """/oidc/callback/ (settings.OIDC_CALLBACK_CLASS): a callback whose state this browser session did not
    start (replayed, forged, or from another tab after sign-out) ends on the login page, not a 400."""

    def get(self, request):
        try:
            return super().get(request)
        except SuspiciousOperation as exc:
            logger.warning("SSO callback refused: %s", exc)
            messages.error(request, SIGN_IN_FAILED)
            return self.login_failure()

