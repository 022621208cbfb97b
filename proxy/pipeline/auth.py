"""Step 1: who is calling. Master key (constant-time), a JWT (proxy.pipeline.jwt), or a virtual key
through the key cache."""
from __future__ import annotations

from datetime import datetime, timezone

from gateway_project.errors import AuthenticationError, ExpiredKeyError, InvalidKeyError
from keys.authentication import BLOCKED_KEY, MASTER_USER_ID, expired_message
from keys.cache import key_lookup
from keys.hashing import same_secret
from keys.middleware import is_public_route
from keys.policy import (INVALID_KEY, NO_KEY, check_admin_only, check_key_ips, check_key_routes,
                         read_api_key)
from keys.routing_rules import current_rules
from proxy.pipeline.context import Principal, RequestContext
from proxy.runtime import get_runtime
from teams.cache import team_lookup
from teams.models import UserRole


def blocked_team_message(team_id: str) -> str:
    return f"Authentication Error, Team={team_id} is blocked. Update via `/team/unblock` if you're an admin."


ANONYMOUS = Principal(token="", key=None, team=None, user_id=None, role="anonymous")


async def authenticate(ctx: RequestContext) -> None:
    """Who calls, then what that caller may reach: admin-only routes, a key's own routes and IPs."""
    await _identify(ctx)
    principal, path = ctx.principal, ctx.request.path
    if principal is ANONYMOUS:
        return
    check_admin_only(current_rules(), path, is_admin=principal.role == UserRole.PROXY_ADMIN)
    if principal.key is not None:
        check_key_routes(principal.key.allowed_routes, path)
        check_key_ips(principal.key.allowed_ips, ctx.requester_ip)


async def _identify(ctx: RequestContext) -> None:
    raw = read_api_key(ctx.request.headers)
    if raw is None:
        if is_public_route(ctx.request):
            ctx.principal = ANONYMOUS
            return
        raise AuthenticationError(NO_KEY)
    runtime = get_runtime()
    if runtime.master_key and same_secret(raw, runtime.master_key):
        ctx.principal = Principal(token=runtime.master_key_digest, key=None, team=None, user_id=MASTER_USER_ID,
                                  role=UserRole.PROXY_ADMIN)
        return
    if runtime.jwt_auth.handles(raw):  # only with enable_jwt_auth, and only for a JWT-shaped token
        ctx.principal = await runtime.jwt_auth.authenticate(raw)
        return
    key = await key_lookup(raw)
    if key is None:
        raise InvalidKeyError(INVALID_KEY)
    if key.blocked:
        raise AuthenticationError(BLOCKED_KEY)
    now = datetime.now(timezone.utc)
    if key.expires is not None and key.expires <= now:
        raise ExpiredKeyError(expired_message(key.expires, now))
    team = await team_lookup(key.team_id) if key.team_id else None
    if team is not None and team.blocked:
        raise AuthenticationError(blocked_team_message(team.team_id))
    ctx.principal = Principal(token=key.token, key=key, team=team, user_id=key.user_id,
                              role=key.user_role or UserRole.INTERNAL_USER)
