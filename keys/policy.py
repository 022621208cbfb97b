"""Pure decisions shared by the proxy and the management API: no I/O, no Django models.

Who may call what: key headers, model access, route control, IP allow-lists, enforced params."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from gateway_project.errors import AuthenticationError, PermissionDeniedError

# First header found wins (LiteLLM's order); values may carry a "Bearer " prefix.
KEY_HEADERS = ("authorization", "x-litellm-api-key", "api-key", "x-api-key", "x-goog-api-key",
               "ocp-apim-subscription-key")

NO_KEY = "Authentication Error, No api key passed in."
MALFORMED_KEY = "Authentication Error, Malformed API Key passed in. Ensure Key has `Bearer ` prefix."
INVALID_KEY = "Authentication Error, Invalid API key provided."
ALL_MODELS = "all-proxy-models"


def read_api_key(headers: Mapping[str, str]) -> str | None:
    """The API key a request carries, or None. ``headers`` are lower-cased names."""
    for name in KEY_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        value = value.strip()
        if name == "authorization":
            scheme, _, token = value.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthenticationError(MALFORMED_KEY)
            return token.strip()
        if value.lower().startswith("bearer "):
            value = value[7:].strip()
        return value or None
    return None


def model_allowed(model: str, allowed: Iterable[str], groups: Mapping[str, Iterable[str]] | None = None) -> bool:
    """An empty list (or ``all-proxy-models``) allows every model; ``prefix/*`` allows a family; an
    access group's name (``model_info.access_groups``) allows the models in that group."""
    allowed = tuple(allowed)
    if not allowed or ALL_MODELS in allowed or model in allowed:
        return True
    if groups and any(model in groups.get(entry, ()) for entry in allowed):
        return True
    return any(entry.endswith("*") and model.startswith(entry[:-1]) for entry in allowed)


def merge_tags(*sources: Iterable[str] | None) -> list[str]:
    """Tags from the request, key and team, first-seen order, no duplicates."""
    merged: dict[str, None] = {}
    for source in sources:
        if not isinstance(source, (list, tuple)):
            continue
        for tag in source:
            if isinstance(tag, str) and tag:
                merged.setdefault(tag, None)
    return list(merged)


def merge_spend_logs_metadata(request: Mapping | None, *defaults: Mapping | None) -> dict:
    """The request's ``spend_logs_metadata`` wins; key and team values fill keys it did not set."""
    merged: dict = {}
    for source in reversed((request, *defaults)):
        if isinstance(source, Mapping):
            merged.update(source)
    return merged


# --- Route control ----------------------------------------------------------------------------------

# LiteLLM's route-group names, usable in public_routes / admin_only_routes / allowed_routes.
ROUTE_GROUPS: dict[str, tuple[str, ...]] = {
    "LiteLLMRoutes.public_routes": (
        "/", "/routes", "/health/liveliness", "/health/liveness", "/health/readiness", "/docs", "/openapi.json",
        "/public/model_hub", "/public/model_hub/info", "/public/v1/model_hub*", "/.well-known/litellm-ui-config",
    ),
    "LiteLLMRoutes.openai_routes": (
        "/chat/completions", "/v1/chat/completions", "/completions", "/v1/completions", "/embeddings",
        "/v1/embeddings", "/models", "/v1/models", "/openai/deployments/*", "/engines/*",
    ),
    "LiteLLMRoutes.info_routes": ("/key/info", "/key/list", "/team/info", "/team/list", "/user/info",
                                  "/model/info", "/v1/model/info", "/spend/logs", "/spend/tags"),
}


@dataclass(frozen=True)
class RouteSet:
    """Paths matched exactly, or by prefix for entries ending in ``*`` (``/api/*``)."""

    exact: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def of(cls, entries: Iterable[str]) -> RouteSet:
        expanded = [path for entry in entries for path in ROUTE_GROUPS.get(entry, (entry,))]
        return cls(exact=frozenset(p for p in expanded if not p.endswith("*")),
                   prefixes=tuple(p[:-1] for p in expanded if p.endswith("*")))

    def __bool__(self) -> bool:
        return bool(self.exact or self.prefixes)

    def matches(self, path: str) -> bool:
        return path in self.exact or path.startswith(self.prefixes) if self.prefixes else path in self.exact


@dataclass(frozen=True)
class RouteRules:
    public: RouteSet
    admin_only: RouteSet
    allowed: RouteSet          # empty: every route is exposed
    allowed_ips: tuple[IPv4Network | IPv6Network, ...]
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...]
    use_x_forwarded_for: bool


def networks(entries: Iterable[str]) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(ip_network(entry, strict=False) for entry in entries)


@lru_cache(maxsize=1024)
def _key_routes(entries: tuple[str, ...]) -> RouteSet:
    return RouteSet.of(entries)


def route_not_allowed(path: str) -> PermissionDeniedError:
    return PermissionDeniedError(f"Route {path} not allowed")


def check_admin_only(rules: RouteRules, path: str, *, is_admin: bool) -> None:
    if rules.admin_only.matches(path) and not is_admin:
        raise PermissionDeniedError(
            f"user not allowed to access this route. Route={path} is an admin only route")


def check_key_routes(allowed_routes: Iterable[str], path: str) -> None:
    """A virtual key's own ``allowed_routes`` (empty: no restriction)."""
    allowed = tuple(allowed_routes)
    if allowed and not _key_routes(allowed).matches(path):
        raise PermissionDeniedError(
            f"Virtual key is not allowed to call this route. Only allowed to call routes: {list(allowed)}. "
            f"Tried to call route: {path}")


# --- IP allow-lists ---------------------------------------------------------------------------------

def ip_not_allowed(ip: str | None) -> PermissionDeniedError:
    return PermissionDeniedError(f"Access forbidden: IP address {ip} not allowed.")


def ip_allowed(ip: str | None, allowed: Iterable[IPv4Network | IPv6Network]) -> bool:
    allowed = tuple(allowed)
    if not allowed:
        return True
    try:
        address = ip_address(ip or "")
    except ValueError:
        return False
    return any(address in network for network in allowed)


def check_key_ips(allowed_ips: Iterable[str], ip: str | None) -> None:
    entries = tuple(allowed_ips)
    if entries and not ip_allowed(ip, _key_networks(entries)):
        raise ip_not_allowed(ip)


@lru_cache(maxsize=1024)
def _key_networks(entries: tuple[str, ...]) -> tuple[IPv4Network | IPv6Network, ...]:
    """A key's ``allowed_ips`` parsed once, not on each of its calls."""
    return networks(entries)


def client_ip(peer: str | None, forwarded_for: str | None, rules: RouteRules) -> str | None:
    """The requester's address: the TCP peer, unless the peer is a trusted proxy; then the nearest
    X-Forwarded-For entry that is not itself a trusted proxy. A spoofed header from anyone else is ignored."""
    if not (rules.use_x_forwarded_for and forwarded_for and rules.trusted_proxies and _trusted(peer, rules)):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, rules):
            return hop
    return hops[0] if hops else peer


def _trusted(ip: str | None, rules: RouteRules) -> bool:
    try:
        address = ip_address(ip or "")
    except ValueError:
        return False
    return any(address in network for network in rules.trusted_proxies)


# --- Enforced params ----------------------------------------------------------------------------------

def missing_enforced_param(body: Mapping, required: Iterable[str]) -> str | None:
    """The first dotted path (``metadata.generation_name``) absent from ``body``, in the error's
    ``[metadata][generation_name]`` notation; None when all are there."""
    for path in required:
        node: object = body
        for part in path.split("."):
            if not isinstance(node, Mapping) or node.get(part) is None:
                parts = path.split(".")
                return parts[0] if len(parts) == 1 else "".join(f"[{p}]" for p in parts)
            node = node[part]
    return None


def enforced_param_error(param: str) -> AuthenticationError:
    return AuthenticationError(
        f"Authentication Error, BadRequest please pass param={param} in request body. This is a required param",
        numeric_code=True)
