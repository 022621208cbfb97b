"""Any server that speaks OpenAI's API: OpenAI, vLLM, Ollama, Groq, Together, OpenRouter, …"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import orjson

from gateway_project.config.schema import LitellmParams
from gateway_project.errors import UpstreamError
from proxy.http import ClientPool
from proxy.providers.base import upstream_body

logger = logging.getLogger("gateway.upstream")

DEFAULT_API_BASE = "https://api.openai.com/v1"
_TYPES_BY_STATUS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_denied",
                    404: "not_found_error", 408: "timeout", 409: "conflict", 422: "invalid_request_error",
                    429: "rate_limit_error"}


class OpenAICompatible:
    name = "openai"

    def __init__(self, params: LitellmParams, *, model_group: str, clients: ClientPool,
                 default_timeout: float) -> None:
        self.api_base = (params.api_base or DEFAULT_API_BASE).rstrip("/")
        self._model = params.upstream_model
        self._model_group = model_group
        self._clients = clients
        self._timeout = params.timeout or default_timeout
        self._stream_timeout = params.stream_timeout or self._timeout
        self._secret = params.api_key
        self._headers = {"content-type": "application/json"}
        if params.api_key:
            self._headers["authorization"] = f"Bearer {params.api_key}"

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._send("/chat/completions", upstream_body(body, self._model), self._timeout)
        return self._json(response)

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        payload = upstream_body(body, self._model)
        # Ask for usage in the stream so streamed spend is exact; the relay hides the usage chunk
        # from clients that did not ask for it.
        payload["stream_options"] = {**(payload.get("stream_options") or {}), "include_usage": True}
        response = await self._send("/chat/completions", payload, self._stream_timeout, stream=True)
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    yield orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise self._error(502, "the upstream sent a malformed stream chunk") from None
        except httpx2.TimeoutException:
            raise self._error(408, "the upstream stopped sending before the stream was complete") from None
        except httpx2.TransportError:
            raise self._error(502, "the upstream connection broke before the stream was complete") from None
        finally:
            await response.aclose()

    async def _send(self, path: str, payload: dict[str, Any], timeout: float, *, stream: bool = False) -> httpx2.Response:
        client = self._clients.get(self.api_base)
        request = client.build_request("POST", self.api_base + path, content=orjson.dumps(payload),
                                       headers=self._headers, timeout=timeout)
        try:
            response = await client.send(request, stream=stream)
        except httpx2.TimeoutException:
            raise self._error(408, f"the upstream did not answer within {timeout:g}s") from None
        except httpx2.TransportError as exc:
            logger.warning("model group %s: upstream unreachable: %s", self._model_group, type(exc).__name__)
            raise self._error(502, "could not connect to the upstream") from None
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            raise self._upstream_failure(response)
        return response

    def _json(self, response: httpx2.Response) -> dict[str, Any]:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise self._error(502, "the upstream answered with a body that is not JSON") from None
        if not isinstance(body, dict):
            raise self._error(502, "the upstream answered with an unexpected JSON shape")
        return body

    def _upstream_failure(self, response: httpx2.Response) -> UpstreamError:
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
        if status == 429 and response.headers.get("retry-after"):
            headers["retry-after"] = response.headers["retry-after"]
        return self._error(status if status >= 400 else 502, message, type=kind, headers=headers)

    def _error(self, status: int, message: str, *, type: str | None = None, headers: dict | None = None) -> UpstreamError:
        text = self._redact(f"{message} (model group {self._model_group})")
        kind = type or ("timeout" if status == 408 else "api_connection_error" if status == 502 else "api_error")
        return UpstreamError(text, status=status, type=kind, headers=headers)

    def _redact(self, text: str) -> str:
        """An upstream's key or address must never reach a client."""
        if self._secret:
            text = text.replace(self._secret, "[REDACTED]")
        return text.replace(self.api_base, "[upstream]")
