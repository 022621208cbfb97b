"""Which keys a caller that is not a proxy admin may create or change: the object checks behind the
/key/* views. The route itself is gated by the permission classes in ``teams/permissions.py``."""
from __future__ import annotations

from typing import Any

from gateway_project.errors import PermissionDeniedError
from keys.models import VirtualKey
from keys.policy import model_allowed
from teams.models import TeamRole
from teams.permissions import caller_user_id, is_proxy_admin, route_refused
from teams.selectors import team_role_of, user_get

# On a key it creates, an internal user may set anything that only narrows what the key may do.
# These can widen it (hide_secrets off, model aliases, gateway config, accounting): admins only.
ADMIN_ONLY_ON_NEW_KEY = ("spend", "permissions", "aliases", "config")
# On an existing key an owner may only rename and re-tag it: changing a limit could undo one a proxy
# admin set, and there is no record of who set it.
OWNER_EDITABLE = ("key", "new_key", "key_alias", "metadata", "tags")


def owns(caller, key: VirtualKey) -> bool:
    return key.user_id is not None and key.user.username == caller_user_id(caller)


def check_new_key(request, fields: dict[str, Any]) -> dict[str, Any]:
    """The /key/generate fields an internal user sent, checked, with the owner's ``models`` filled
    in when absent. Keys are for the caller, or, with a ``team_id`` it administers, for a member."""
    caller = request.user
    if is_proxy_admin(caller):
        return fields
    refused = [name for name in ADMIN_ONLY_ON_NEW_KEY if name in fields]
    if refused:
        raise route_refused(request, caller, fields=refused)
    own_id, team_id = caller_user_id(caller), fields.get("team_id")
    owner_id = fields.get("user_id") or own_id
    if team_id is not None and team_role_of(team_id=team_id, user_id=own_id) != TeamRole.ADMIN:
        raise PermissionDeniedError("You may only create keys for teams you are an admin of.")
    if owner_id != own_id and (team_id is None or team_role_of(team_id=team_id, user_id=owner_id) is None):
        raise PermissionDeniedError("You may only create keys for yourself, or for members of a team you are "
                                    "an admin of.")
    allowed = user_get(user_id=owner_id).models
    denied = [m for m in fields.get("models", []) if not model_allowed(m, allowed)]
    if denied:
        raise PermissionDeniedError(f"A key may only have models its user may use; not allowed: {', '.join(denied)}")
    return {**fields, "user_id": owner_id, "models": fields.get("models", allowed)}


def check_owner_change(request, key: VirtualKey, fields: dict[str, Any]) -> None:
    """An internal user may rename, re-tag, block and regenerate its own keys; nothing else."""
    caller = request.user
    if is_proxy_admin(caller):
        return
    refused = [name for name in fields if name not in OWNER_EDITABLE]
    if refused:
        raise route_refused(request, caller, fields=refused)
    if not owns(caller, key):
        raise PermissionDeniedError("You may only change your own keys.")


def check_owner_delete(request, keys: list[VirtualKey]) -> None:
    if not is_proxy_admin(request.user) and not all(owns(request.user, key) for key in keys):
        raise PermissionDeniedError("You may only delete your own keys.")
