"""One pooled ``httpx2.AsyncClient`` per guardrail service and event loop, opened on first use.

Keyed by event loop too: a client's connections belong to the loop that opened them (one loop per
server process; tests may run several).
"""
from __future__ import annotations

import asyncio

import httpx2

_LIMITS = httpx2.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30)
_clients: dict[tuple[int, str], httpx2.AsyncClient] = {}


def service_client(base_url: str) -> httpx2.AsyncClient:
    """The pooled client for ``base_url``; callers pass their own timeout on each request."""
    key = (id(asyncio.get_running_loop()), base_url)
    client = _clients.get(key)
    if client is None:
        client = httpx2.AsyncClient(base_url=base_url, timeout=30.0, limits=_LIMITS, follow_redirects=False,
                                    trust_env=False)
        _clients[key] = client
    return client


async def close_clients() -> None:
    """Close this event loop's clients."""
    loop_id = id(asyncio.get_running_loop())
    for key in [key for key in _clients if key[0] == loop_id]:
        await _clients.pop(key).aclose()


def describe(exc: Exception) -> str:
    """A short reason for a failed service call, for logs and the fail-closed error."""
    if isinstance(exc, httpx2.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"answered HTTP {exc.response.status_code}"
    if isinstance(exc, httpx2.RequestError):
        return f"unreachable ({type(exc).__name__})"
    return f"gave an unreadable answer ({type(exc).__name__})"
