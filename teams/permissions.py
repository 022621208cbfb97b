"""DRF permissions for the management API, by the caller's role."""
from __future__ import annotations

from rest_framework.permissions import BasePermission

from gateway_project.errors import AuthenticationError
from keys.policy import NO_KEY, check_admin_only
from keys.routing_rules import current_rules
from teams.models import TeamRole, UserRole
from teams.selectors import team_role_of


def _require_caller(request):
    caller = request.user
    if caller is None or not getattr(caller, "is_authenticated", False):
        raise AuthenticationError(NO_KEY)
    check_admin_only(current_rules(), request.path, is_admin=getattr(caller, "is_proxy_admin", False))
    return caller


def caller_user_id(caller) -> str | None:
    return getattr(caller, "user_id", None)


def route_refused(request, caller, *, fields: list[str] | None = None) -> AuthenticationError:
    """The 401 for a route (or, with ``fields``, settings) the caller's role may not use at all."""
    message = ("Authentication Error, Only proxy admin can be used to generate, delete, update info for new "
               f"keys/users/teams. Route={request.path}. Your role={getattr(caller, 'role', None)}. "
               f"Your user_id={caller_user_id(caller)}")
    if fields:
        message += f". Only a proxy admin may set: {', '.join(sorted(fields))}"
    return AuthenticationError(message)


def is_proxy_admin(caller) -> bool:
    return getattr(caller, "is_proxy_admin", False)


def sees_everything(caller) -> bool:
    """Proxy admins and ``proxy_admin_viewer`` users read every row; everyone else reads their own."""
    return is_proxy_admin(caller) or getattr(caller, "role", None) == UserRole.PROXY_ADMIN_VIEWER


def manages_own(caller) -> bool:
    """An ``internal_user`` who is a user (not a key without one): may write its own keys, and its
    teams' settings and members when it is their admin. Viewer roles never write."""
    return getattr(caller, "role", None) == UserRole.INTERNAL_USER and caller_user_id(caller) is not None


class IsProxyAdmin(BasePermission):
    """Only the master key, a ``proxy_admin`` user's key, or an admin signed in to the admin site."""

    def has_permission(self, request, view) -> bool:
        caller = _require_caller(request)
        if is_proxy_admin(caller):
            return True
        raise route_refused(request, caller)


class IsProxyAdminOrViewer(BasePermission):
    """Reads of every row: proxy admins and ``proxy_admin_viewer`` users."""

    def has_permission(self, request, view) -> bool:
        caller = _require_caller(request)
        if sees_everything(caller):
            return True
        raise route_refused(request, caller)


class IsProxyAdminOrOwner(BasePermission):
    """Writes a proxy admin may make on anything and an internal user on its own keys or the teams it
    administers; the view checks the row (403 when it is not theirs)."""

    def has_permission(self, request, view) -> bool:
        caller = _require_caller(request)
        if is_proxy_admin(caller) or manages_own(caller):
            return True
        raise route_refused(request, caller)


class IsAuthenticatedCaller(BasePermission):
    """Any valid key; the view narrows what it shows to the caller's own rows."""

    def has_permission(self, request, view) -> bool:
        _require_caller(request)
        return True


# What a team admin (not a proxy admin) may change on its team: money, limits, models and blocking
# stay with proxy admins.
TEAM_ADMIN_EDITABLE = ("team_id", "team_alias", "metadata")


def check_team_admin(request, team_id: str, *, fields: dict | None = None) -> None:
    """Proxy admins pass; an internal user passes for a team it is an admin of (and, with ``fields``,
    only for ``TEAM_ADMIN_EDITABLE``); anyone else gets the route's 401."""
    caller = request.user
    if is_proxy_admin(caller):
        return
    if not manages_own(caller) or team_role_of(team_id=team_id, user_id=caller_user_id(caller)) != TeamRole.ADMIN:
        raise route_refused(request, caller)
    refused = [name for name in fields or {} if name not in TEAM_ADMIN_EDITABLE]
    if refused:
        raise route_refused(request, caller, fields=refused)


def check_team_reader(request, team_id: str) -> None:
    """Admins and viewers read every team; a member reads its own; anyone else gets the route's 401."""
    caller = request.user
    if not sees_everything(caller) and team_role_of(team_id=team_id, user_id=caller_user_id(caller)) is None:
        raise route_refused(request, caller)
