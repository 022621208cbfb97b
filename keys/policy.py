"""Pure decisions shared by the proxy and the management API: no I/O, no Django models."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from gateway_project.errors import AuthenticationError

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


def model_allowed(model: str, allowed: Iterable[str]) -> bool:
    """An empty list (or ``all-proxy-models``) allows every model; ``prefix/*`` allows a family."""
    allowed = tuple(allowed)
    if not allowed or ALL_MODELS in allowed or model in allowed:
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
