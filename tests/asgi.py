"""One HTTP exchange with an ASGI application in process: the request in one message, a client that stays
until the whole answer is in (then disconnects, as a server says once the answer is sent)."""
from __future__ import annotations

import asyncio
from collections.abc import Callable


async def exchange(app, method: str, path: str, headers, body: bytes = b"", *,
                   on_send: Callable[[dict], None] | None = None,
                   scope: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of ``app``'s answer; ``on_send`` sees each message as the
    application sends it; ``scope`` adds to the request's scope (what a server adds to it)."""
    request = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(name.encode(), value.encode()) for name, value in headers],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 4000), **(scope or {})}
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    answered = asyncio.Event()
    messages = []

    async def receive():
        if pending:
            return pending.pop(0)
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        messages.append(message)
        if on_send is not None:
            on_send(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    await app(request, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    answer_headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    return start["status"], answer_headers, b"".join(m.get("body", b"") for m in messages[1:])
