"""DRF authentication for the management API: master key or virtual key, by the proxy's headers."""
from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone
from rest_framework.authentication import BaseAuthentication

from gateway_project.config import get_config
from gateway_project.errors import AuthenticationError, ExpiredKeyError, InvalidKeyError
from keys.hashing import digest, same_secret
from keys.models import VirtualKey
from keys.middleware import requester_ip
from keys.policy import INVALID_KEY, check_key_ips, check_key_routes, read_api_key
from teams.models import UserRole

MASTER_USER_ID = "default_user_id"
BLOCKED_KEY = "Authentication Error, Key is blocked. Update via `/key/unblock` if you're an admin."


@dataclass(frozen=True)
class ApiCaller:
    """Who is calling the management API (``request.user``)."""

    user_id: str | None
    role: str
    key_token: str | None = None
    team_id: str | None = None
    is_master: bool = False
    is_authenticated: bool = True

    @property
    def is_proxy_admin(self) -> bool:
        return self.role == UserRole.PROXY_ADMIN


def expired_message(expires, now) -> str:
    return f"Authentication Error - Expired Key. Key Expiry time {expires} and current time {now}"


class GatewayKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        raw = read_api_key(request.headers)
        if raw is None:
            return None
        master = get_config().general_settings.master_key
        if master and same_secret(raw, master):
            return ApiCaller(user_id=MASTER_USER_ID, role=UserRole.PROXY_ADMIN, is_master=True), raw
        key = VirtualKey.objects.select_related("user").filter(token=digest(raw)).first()
        if key is None:
            raise InvalidKeyError(INVALID_KEY)
        if key.blocked:
            raise AuthenticationError(BLOCKED_KEY)
        now = timezone.now()
        if key.is_expired(now):
            raise ExpiredKeyError(expired_message(key.expires, now))
        check_key_routes(key.allowed_routes, request.path)
        check_key_ips(key.allowed_ips, requester_ip(request._request))
        role = key.user.role if key.user else UserRole.INTERNAL_USER
        if key.user and key.user.is_superuser:
            role = UserRole.PROXY_ADMIN
        caller = ApiCaller(user_id=key.user.username if key.user else None, role=role, key_token=key.token,
                           team_id=key.team_id)
        return caller, raw

    def authenticate_header(self, request) -> str:
        return "Bearer"
