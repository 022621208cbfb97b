"""Step 3: request and response size limits (``max_request_size_mb``, ``max_response_size_mb``).

The request limit is enforced at the ASGI layer, before Django reads the body: from
``Content-Length`` when the client sends one (nothing is read), else on the bytes as they arrive
(chunked uploads), stopping at the limit. The response limit is checked on the serialized body, and
on the bytes of a stream as they are relayed.
"""
from __future__ import annotations

import asyncio

import orjson

from django.conf import settings

from gateway_project.config import get_config
from gateway_project.errors import BadRequestError, GatewayError
from spend import alerts, metrics

MB = 1024 * 1024
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


def request_too_large(size_bytes: int, limit_mb: float) -> BadRequestError:
    return BadRequestError(f"Request size is too large. Request size is {size_bytes / MB} MB. "
                           f"Max size is {limit_mb} MB", param="content-length", numeric_code=True)


def response_too_large(size_bytes: int, limit_mb: float) -> BadRequestError:
    return BadRequestError(f"Response size is too large. Response size is {size_bytes / MB} MB. "
                           f"Max size is {limit_mb} MB", param="content-length", numeric_code=True)


def response_limit_bytes() -> int | None:
    limit = get_config().general_settings.max_response_size_mb
    return None if limit is None else int(limit * MB)


def check_response_size(size_bytes: int) -> None:
    limit = get_config().general_settings.max_response_size_mb
    if limit is not None and size_bytes > limit * MB:
        raise response_too_large(size_bytes, limit)


def headers_too_large(size_bytes: int, limit: int) -> GatewayError:
    return GatewayError(f"Request headers are too large: {size_bytes} bytes. Max size is {limit} bytes",
                        status=431, type="bad_request_error", param="headers")


class RequestSizeLimit:
    """ASGI middleware: refuse oversized headers (``GATEWAY_MAX_HEADER_BYTES``), and a request body
    over ``max_request_size_mb`` without reading past it."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            header_bytes = sum(len(name) + len(value) for name, value in scope.get("headers", ()))
            if header_bytes > settings.GATEWAY_MAX_HEADER_BYTES:
                await _refuse(send, headers_too_large(header_bytes, settings.GATEWAY_MAX_HEADER_BYTES))
                return
        limit_mb = get_config().general_settings.max_request_size_mb if scope["type"] == "http" else None
        if limit_mb is None or scope.get("method") in _BODYLESS:
            await self.app(scope, receive, send)
            return
        limit = limit_mb * MB
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            _alert_too_large(scope, declared, limit_mb)
            await _refuse(send, request_too_large(declared, limit_mb))
            return
        messages, size = [], 0
        while True:  # read (at most up to the limit) so the size is known before Django sees the body
            message = await receive()
            if message["type"] != "http.request":
                messages.append(message)
                break
            size += len(message.get("body", b""))
            if size > limit:
                _alert_too_large(scope, size, limit_mb)
                await _refuse(send, request_too_large(size, limit_mb))
                return
            messages.append(message)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(messages, receive), send)


def _alert_too_large(scope, size_bytes: int, limit_mb: float) -> None:
    client = (scope.get("client") or ("unknown",))[0]
    alerts.request_too_large(client=client, path=scope.get("path", ""), size_bytes=size_bytes, limit_mb=limit_mb)


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(messages: list, receive):
    pending = list(messages)

    async def replayed():
        return pending.pop(0) if pending else await receive()

    return replayed


async def _refuse(send, exc: GatewayError) -> None:
    body = orjson.dumps(exc.body())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    headers += [(name.encode(), value.encode()) for name, value in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ConcurrencyLimit:
    """ASGI middleware: past ``GATEWAY_MAX_CONCURRENT_REQUESTS`` requests in flight in this worker
    (streams count until they end), answer 503 with ``retry-after`` at once instead of queueing
    without bound. Health probes are always answered."""

    EXEMPT = ("/health/liveliness", "/health/liveness", "/health/readiness")

    def __init__(self, app) -> None:
        self.app = app
        self.in_flight = 0
        self.idle: asyncio.Event | None = None

    async def __call__(self, scope, receive, send) -> None:
        limit = settings.GATEWAY_MAX_CONCURRENT_REQUESTS
        if scope["type"] != "http" or scope.get("path") in self.EXEMPT:
            await self.app(scope, receive, send)
            return
        if limit and self.in_flight >= limit:
            await _refuse(send, GatewayError(
                f"The gateway is at capacity ({limit} requests in flight in this worker); retry shortly.",
                status=503, type="service_unavailable", headers={"retry-after": "1"}))
            return
        self.in_flight += 1  # counted even without a limit: shutdown waits for it to reach 0
        metrics.IN_FLIGHT.inc()
        started = False

        async def tracked_send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except asyncio.CancelledError:
            if not started:  # cut at shutdown (past GATEWAY_GRACEFUL_TIMEOUT) before any answer: say so
                await _refuse(send, GatewayError("The gateway is shutting down; retry the request.", status=503,
                                                 type="service_unavailable", headers={"retry-after": "1"}))
            raise
        finally:
            self.in_flight -= 1
            metrics.IN_FLIGHT.dec()
            if not self.in_flight and self.idle is not None:
                self.idle.set()

    async def drained(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until no request is in flight; at shutdown, this lets requests the
        server cancelled record their spend before the buffer is flushed."""
        if not self.in_flight:
            return True
        self.idle = asyncio.Event()
        try:
            await asyncio.wait_for(self.idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False
