"""Who made a change: the authenticated identity of the request being served, never a header.

LiteLLM takes the actor from a ``litellm-changed-by`` header when one is sent. Gateway ignores that
header on purpose: any caller could send it and write someone else's name into the audit trail.
"""
from __future__ import annotations

import ipaddress
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.contrib.auth import get_user_model
from django.http import HttpRequest

# What ``changed_by`` says for a change made outside any request: a Celery task, a management command.
SYSTEM = "system"

_request: ContextVar[HttpRequest | None] = ContextVar("gateway_audit_request", default=None)


@dataclass(frozen=True)
class Actor:
    changed_by: str | None
    api_key: str | None = None      # digest of the calling virtual key; never the master key's
    user: Any = None                # the acting user's row, when there is one
    remote_addr: str | None = None


def actor_of(user: Any, remote_addr: str | None = None) -> Actor:
    """The actor for ``request.user``: a signed-in user (admin, SSO), or the management API's caller
    (``keys.authentication.ApiCaller``: the master key, or a virtual key and the user it belongs to)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return Actor(changed_by=None, remote_addr=remote_addr)
    user_model = get_user_model()
    if isinstance(user, user_model):
        return Actor(changed_by=user.get_username(), user=user, remote_addr=remote_addr)
    user_id = getattr(user, "user_id", None)
    row = None
    if user_id is not None and not getattr(user, "is_master", False):
        row = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: user_id}).first()
    return Actor(changed_by=user_id, api_key=getattr(user, "key_token", None), user=row, remote_addr=remote_addr)


def _ip(value: str | None) -> str | None:
    """An address auditlog's column accepts, or None (a unix socket's peer has none)."""
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


def current_actor() -> Actor:
    """Who is making the change being recorded now."""
    request = _request.get()
    if request is None:
        return Actor(changed_by=SYSTEM)
    actor = request.__dict__.get("_audit_actor")
    if actor is None:
        # Read now, not when the request came in: DRF authenticates inside the view and then sets its
        # caller on this same HttpRequest.
        remote_addr = _ip(getattr(request, "gateway_client_ip", None) or request.META.get("REMOTE_ADDR"))
        actor = actor_of(getattr(request, "user", None), remote_addr)
        if actor.changed_by is not None:
            request._audit_actor = actor
    return actor


def serve_as(request: HttpRequest | None) -> Token:
    """Make ``request`` the one ``current_actor`` reads; what the middleware below does, for code that
    serves a request outside Django's middleware stack (``proxy/hotpath.py``). Undo with ``served``."""
    return _request.set(request)


def served(token: Token) -> None:
    _request.reset(token)


class AuditActorMiddleware:
    """Keeps the request being served at hand for ``current_actor``; costs one context variable."""

    async_capable = True
    sync_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self._acall(request)
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)

    async def _acall(self, request: HttpRequest):
        token = _request.set(request)
        try:
            return await self.get_response(request)
        finally:
            _request.reset(token)
