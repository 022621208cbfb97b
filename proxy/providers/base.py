"""What a provider adapter does: turn an OpenAI-format request into the provider's call, and the
provider's answer (or stream) back into OpenAI format. Errors leave as ``UpstreamError``."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

# Fields the gateway consumes itself; they never reach a provider.
GATEWAY_FIELDS = frozenset({"metadata", "litellm_metadata", "guardrails", "mock_response"})


class Provider(Protocol):
    name: str
    api_base: str

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """A ``chat.completion`` object."""

    def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """``chat.completion.chunk`` objects; the last carries ``usage`` when the provider sent it."""


def upstream_body(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    payload = {name: value for name, value in body.items() if name not in GATEWAY_FIELDS}
    payload["model"] = upstream_model
    return payload
