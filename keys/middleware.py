"""Route control and IP allow-lists for every request (proxy, management API, admin).

What needs no identity is decided here, before anything else runs: the global IP allow-list and
``allowed_routes`` (which locks out the master key too, as in LiteLLM). What depends on who calls
(``admin_only_routes``, a key's own routes and IPs) is decided where the caller is authenticated,
with the same ``keys.policy`` functions.
"""
from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from gateway_project.errors import GatewayError, error_json
from keys.policy import client_ip, ip_allowed, ip_not_allowed, route_not_allowed
from keys.routing_rules import current_rules


def refusal(exc: GatewayError) -> HttpResponse:
    return HttpResponse(error_json(exc), status=exc.status, content_type="application/json")


def requester_ip(request: HttpRequest) -> str | None:
    """The client address as route control resolved it (trusted proxies honoured)."""
    return getattr(request, "gateway_client_ip", request.META.get("REMOTE_ADDR"))


def is_public_route(request: HttpRequest) -> bool:
    return getattr(request, "gateway_public_route", False)


class RoutePolicyMiddleware:
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
        return check_route_policy(request) or self.get_response(request)

    async def _acall(self, request: HttpRequest):
        return check_route_policy(request) or await self.get_response(request)


def check_route_policy(request: HttpRequest) -> HttpResponse | None:
    """The refusal for a request the IP allow-list or ``allowed_routes`` keeps out, else None. Also run
    by the hot-path dispatch (``proxy/hotpath.py``), which serves the proxy's routes without
    Django's middleware stack."""
    rules = current_rules()
    ip = client_ip(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"), rules)
    request.gateway_client_ip = ip
    if not ip_allowed(ip, rules.allowed_ips):
        return refusal(ip_not_allowed(ip))
    if rules.allowed and not rules.allowed.matches(request.path):
        return refusal(route_not_allowed(request.path))
    request.gateway_public_route = rules.public.matches(request.path)
    return None
