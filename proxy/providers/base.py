"""What a provider adapter does: turn an OpenAI-format request into the provider's call, and the
provider's answer (or stream) back into OpenAI format. Failures leave as ``UpstreamError``, with the
provider's key and address removed from the message.

``HttpProvider`` holds what every HTTP adapter shares (pooled client, timeouts, error mapping,
redaction, SSE line reading); an adapter says how to build its URL, headers and bodies.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

import httpx2
import orjson

from gateway_project.config.schema import LitellmParams
from gateway_project.errors import InvalidRequestError, UpstreamError
from proxy.http import Answer, ClientPool, Post, StreamedAnswer

logger = logging.getLogger("gateway.upstream")

# Fields the gateway consumes itself; they never reach a provider.
GATEWAY_FIELDS = frozenset({"metadata", "litellm_metadata", "guardrails", "mock_response"})

_TYPES_BY_STATUS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_denied",
                    404: "not_found_error", 408: "timeout", 409: "conflict", 413: "invalid_request_error",
                    422: "invalid_request_error", 429: "rate_limit_error"}


class FinalBurst(list):
    """A stream's last burst: the read that brought it ended the stream too (``[DONE]``), so nothing follows
    it and the relay sends its events with the end of the answer, in one write. Iterating the stream on
    after it still matters: that reads the response to its end, and its connection goes back to the pool."""


def final_as(burst: list, chunks: list) -> list:
    """``chunks``, marked final when the ``burst`` they were made of was."""
    return FinalBurst(chunks) if isinstance(burst, FinalBurst) else chunks


class Provider(Protocol):
    name: str
    api_base: str

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """A ``chat.completion`` object."""

    def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """``chat.completion.chunk`` objects, in non-empty lists of those that arrived together (one
        network read); the last chunk carries ``usage`` when the provider sent it. A list that ends the
        stream is a ``FinalBurst`` when the provider knows it does."""

    async def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """A ``text_completion`` object."""

    async def embedding(self, body: dict[str, Any]) -> dict[str, Any]:
        """An embeddings ``list`` object."""


_TIMEOUTS: dict[float, dict[str, float]] = {}


def _timeouts(seconds: float) -> dict[str, float]:
    """httpx2's per-request timeout extension: the same budget to connect, write, read and wait for the pool."""
    timeouts = _TIMEOUTS.get(seconds)
    if timeouts is None:
        timeouts = _TIMEOUTS[seconds] = httpx2.Timeout(seconds).as_dict()
    return timeouts


async def _finish(chunks: AsyncIterator[bytes]) -> None:
    """After ``[DONE]``: read the end of the body if it has already arrived (it comes with ``[DONE]`` in
    practice), so that the connection goes back to the pool instead of being closed; never wait for it
    (if the end is not there yet the read is cancelled and the connection closed, as before)."""
    try:
        async with asyncio.timeout(0):
            async for _ in chunks:
                pass
    except (TimeoutError, httpx2.HTTPError, httpx2.StreamError):
        pass


def upstream_body(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    payload = {name: value for name, value in body.items() if name not in GATEWAY_FIELDS}
    payload["model"] = upstream_model
    return payload


class HttpProvider:
    """Shared plumbing of adapters that call an HTTP API through the pooled clients."""

    name = "http"
    default_api_base = ""

    def __init__(self, params: LitellmParams, *, model_group: str, clients: ClientPool,
                 default_timeout: float) -> None:
        self.params = params
        self.api_base = (params.api_base or self.default_api_base).rstrip("/")
        self.model = params.upstream_model
        self.model_group = model_group
        self._clients = clients
        self.timeout = params.timeout or default_timeout
        self.stream_timeout = params.stream_timeout or self.timeout
        self._secret = params.api_key
        self._headers_for: dict[str, str] | None = None  # self.headers() the prepared requests were built with
        self._posts: dict[str, Post] = {}  # by URL

    # What an adapter may override --------------------------------------------------------------

    @classmethod
    def config_problem(cls, params: LitellmParams) -> str | None:
        """What is wrong with a deployment's settings for this provider (reported at start), or None."""
        return None

    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json"}

    async def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        raise InvalidRequestError(f"{self.name} deployments do not support /completions", param="model")

    async def embedding(self, body: dict[str, Any]) -> dict[str, Any]:
        raise InvalidRequestError(f"{self.name} deployments do not support /embeddings", param="model")

    # Shared plumbing ---------------------------------------------------------------------------

    async def post_json(self, url: str, payload: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        response = await self.send(url, payload, timeout or self.timeout)
        return self.json_body(response)

    async def send(self, url: str, payload: dict[str, Any], timeout: float, *,
                   stream: bool = False) -> httpx2.Response | Answer | StreamedAnswer:
        """POST ``payload``: the response as it arrives when ``stream`` (``sse_bursts`` reads it), else an
        ``Answer`` (status_code, headers, content) read whole; a transport failure or an error status raises
        UpstreamError."""
        try:
            # A request prepared once per deployment URL and headers (proxy.http.Post): a call costs the
            # body's bytes, not an httpx2.Request.
            response = await self._clients.post(self.api_base, self._post_for(url), orjson.dumps(payload),
                                                 _timeouts(timeout), stream=stream)
        except httpx2.TimeoutException:
            raise self.error(408, f"the upstream did not answer within {timeout:g}s") from None
        except httpx2.TransportError as exc:
            logger.warning("model group %s: upstream unreachable: %s", self.model_group, type(exc).__name__)
            raise self.error(502, "could not connect to the upstream") from None
        if response.status_code >= 400:
            if isinstance(response, Answer):
                raise self.failure(response.as_response())
            if isinstance(response, StreamedAnswer):
                response = response.as_response()
            await response.aread()
            await response.aclose()
            raise self.failure(response)
        return response

    def _post_for(self, url: str) -> Post:
        headers = self.headers()
        if headers != self._headers_for:   # the first call, or headers that changed (a refreshed token)
            self._headers_for, self._posts = headers, {}
        post = self._posts.get(url)
        if post is None:
            post = self._posts[url] = self._clients.prepare(self.api_base, url, headers)
        return post

    async def sse_bursts(self, response: httpx2.Response | StreamedAnswer) -> AsyncIterator[list[bytes]]:
        """The ``data:`` payloads of a server-sent-events response, until ``[DONE]`` or its end: one
        non-empty list per network read, with the payloads of all the complete lines that read brought
        (an upstream often sends many events in one write; the relay then answers them in one write).
        The stream's first payload comes alone, as soon as its line is found, before the rest of its read
        is looked at: the time to the first token does not wait for the whole burst."""
        # Lines split on bytes (LF or CRLF; the providers send no bare CR), decoded by orjson, not by
        # aiter_lines' text decoder. The body's own stream as it arrives, unless a content-encoding is to be
        # undone (an httpx2.Response then, read through aiter_bytes' decoders).
        encoded = isinstance(response, httpx2.Response) and "content-encoding" in response.headers
        rest, chunks, first = b"", response.aiter_bytes() if encoded else aiter(response.stream), True
        try:
            async for chunk in chunks:
                lines = (rest + chunk).split(b"\n") if rest else chunk.split(b"\n")
                rest = lines.pop()
                burst, done = [], False
                for line in lines:
                    if line.startswith(b"data:"):
                        data = line[5:].strip()
                        if data == b"[DONE]":
                            done = True
                            break
                        if first:
                            first = False
                            yield [data]
                        else:
                            burst.append(data)
                if burst:
                    yield FinalBurst(burst) if done else burst
                if done:
                    await _finish(chunks)
                    return
            if rest.startswith(b"data:") and rest[5:].strip() not in (b"", b"[DONE]"):
                yield [rest[5:].strip()]
        except httpx2.TimeoutException:
            raise self.error(408, "the upstream stopped sending before the stream was complete") from None
        except httpx2.TransportError:
            raise self.error(502, "the upstream connection broke before the stream was complete") from None
        finally:
            await response.aclose()

    def json_body(self, response: httpx2.Response | Answer) -> dict[str, Any]:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise self.error(502, "the upstream answered with a body that is not JSON") from None
        if not isinstance(body, dict):
            raise self.error(502, "the upstream answered with an unexpected JSON shape")
        return body

    def loads_chunk(self, data: bytes | str) -> dict[str, Any]:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise self.error(502, "the upstream sent a malformed stream chunk") from None
        if not isinstance(chunk, dict):
            raise self.error(502, "the upstream sent a malformed stream chunk")
        return chunk

    def failure(self, response: httpx2.Response) -> UpstreamError:
        """The provider's error answer, as an UpstreamError with the provider's status."""
        status = response.status_code
        message, kind = f"the upstream answered {status}", _TYPES_BY_STATUS.get(status, "api_error")
        try:
            error = orjson.loads(response.content).get("error")
        except (orjson.JSONDecodeError, AttributeError):
            error = None
        if isinstance(error, dict):
            message = str(error.get("message") or message)
            kind = error.get("type") if isinstance(error.get("type"), str) else kind
        elif isinstance(error, str):
            message = error
        headers = {}
        if response.headers.get("retry-after"):
            headers["retry-after"] = response.headers["retry-after"]
        return self.error(status, message, type=kind, headers=headers)

    def error(self, status: int, message: str, *, type: str | None = None,
              headers: dict[str, str] | None = None) -> UpstreamError:
        text = self.redact(f"{message} (model group {self.model_group})")
        kind = type or ("timeout" if status == 408 else "api_connection_error" if status == 502 else "api_error")
        return UpstreamError(text, status=status, type=kind, headers=headers)

    def redact(self, text: str) -> str:
        """An upstream's key or address must never reach a client or a log line."""
        if self._secret:
            text = text.replace(self._secret, "[REDACTED]")
        return text.replace(self.api_base, "[upstream]") if self.api_base else text
