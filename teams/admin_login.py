"""The admin's login form, apart from ``teams.sso``: the URLconf sets it on the admin site, and importing
the SSO module would load mozilla-django-oidc, PyJWT and cryptography (about 10 MB per worker) in every
gateway process, SSO configured or not (docs/performance.md, "Memory")."""
from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm

PASSWORD_LOGIN_OFF = "Password sign-in is turned off on this gateway. Use “Sign in with SSO”."


class AdminLoginForm(AdminAuthenticationForm):
    """The admin's login form; refuses every password sign-in when GATEWAY_ADMIN_PASSWORD_LOGIN is off
    (the form is hidden then, and this holds for a POST sent by hand)."""

    @property
    def sso_enabled(self) -> bool:  # read by templates/admin/login.html
        return settings.GATEWAY_SSO_ENABLED

    @property
    def password_login(self) -> bool:
        return settings.GATEWAY_ADMIN_PASSWORD_LOGIN

    def clean(self) -> dict[str, Any]:
        if not settings.GATEWAY_ADMIN_PASSWORD_LOGIN:
            raise forms.ValidationError(PASSWORD_LOGIN_OFF, code="password_login_off")
        return super().clean()
