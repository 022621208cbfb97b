"""One pooled ``httpx2.AsyncClient`` per upstream base URL, opened lazily, closed on shutdown."""
from __future__ import annotations

import asyncio

import httpx2


class ClientPool:
    def __init__(self, *, timeout: float, max_connections: int = 1000) -> None:
        self._timeout = timeout
        self._limits = httpx2.Limits(max_connections=max_connections, max_keepalive_connections=200,
                                     keepalive_expiry=30)
        # Keyed by event loop too: a client's connections belong to the loop that opened them
        # (one loop per server process; tests may run several).
        self._clients: dict[tuple[int, str], httpx2.AsyncClient] = {}

    def get(self, base_url: str) -> httpx2.AsyncClient:
        key = (id(asyncio.get_running_loop()), base_url)
        client = self._clients.get(key)
        if client is None:
            client = httpx2.AsyncClient(base_url=base_url, timeout=self._timeout, limits=self._limits,
                                        follow_redirects=False, trust_env=False)
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        loop_id = id(asyncio.get_running_loop())
        for key in [k for k in self._clients if k[0] == loop_id]:
            await self._clients.pop(key).aclose()
