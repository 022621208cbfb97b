"""DRF permissions for the management API, by the caller's role."""
from __future__ import annotations

from rest_framework.permissions import BasePermission

from gateway_project.errors import AuthenticationError
from keys.policy import NO_KEY


def _require_caller(request):
    caller = request.user
    if caller is None or not getattr(caller, "is_authenticated", False):
        raise AuthenticationError(NO_KEY)
    return caller


def caller_user_id(caller) -> str | None:
    return getattr(caller, "user_id", None)


class IsProxyAdmin(BasePermission):
    """Only the master key, a ``proxy_admin`` user's key, or an admin signed in to the admin site."""

    def has_permission(self, request, view) -> bool:
        caller = _require_caller(request)
        if getattr(caller, "is_proxy_admin", False):
            return True
        raise AuthenticationError(
            "Authentication Error, Only proxy admin can be used to generate, delete, update info for new "
            f"keys/users/teams. Route={request.path}. Your role={getattr(caller, 'role', None)}. "
            f"Your user_id={caller_user_id(caller)}"
        )


class IsAuthenticatedCaller(BasePermission):
    """Any valid key; the view narrows what it shows to the caller's own rows."""

    def has_permission(self, request, view) -> bool:
        _require_caller(request)
        return True
