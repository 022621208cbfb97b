"""Anthropic's Messages API, translated to and from OpenAI's chat completions.

Only parameters the Messages API accepts are sent (it answers 400 to any unknown field), so OpenAI-only
ones (``n``, penalties, ``logit_bias``, ``response_format``, …) and the gateway's own fields are dropped.
"""
from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx2
import orjson

from gateway_project.errors import InvalidRequestError, UpstreamError
from proxy.providers.base import FinalBurst, HttpProvider

API_VERSION = "2023-06-01"
# The Messages API requires max_tokens; 4096 is the largest output every Claude model accepts.
DEFAULT_MAX_TOKENS = 4096
_SAMPLING = ("temperature", "top_p", "top_k")
_FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
                   "tool_use": "tool_calls", "refusal": "content_filter"}
_TOOL_CHOICES = {"auto": "auto", "required": "any", "none": "none"}
# A stream's error event comes after the 200; its type says which status the API would have answered.
_STATUS_BY_ERROR_TYPE = {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
                         "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429,
                         "api_error": 500, "overloaded_error": 529}


class AnthropicProvider(HttpProvider):
    name = "anthropic"
    default_api_base = "https://api.anthropic.com"

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "anthropic-version": API_VERSION}
        if self.params.api_key:
            headers["x-api-key"] = self.params.api_key
        return headers

    @property
    def url(self) -> str:
        # Configs copied from other tools give the base with or without the version segment.
        base = self.api_base if self.api_base.endswith("/v1") else f"{self.api_base}/v1"
        return f"{base}/messages"

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        message = await self.post_json(self.url, messages_request(body, self.model, stream=False))
        return chat_completion(message)

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        payload = messages_request(body, self.model, stream=True)
        response = await self.send(self.url, payload, self.stream_timeout, stream=True)
        stream = _StreamTranslator(self.model)
        # aclosing: the connection is released as soon as we stop reading, not when collected.
        async with aclosing(self.sse_bursts(response)) as bursts:
            async for burst in bursts:
                chunks: list[dict[str, Any]] = []
                try:
                    for data in burst:
                        event = self.loads_chunk(data)
                        if event.get("type") == "error":
                            raise self._stream_error(event.get("error"))
                        chunks += stream.chunks(event)
                        if stream.finished:
                            break
                except UpstreamError:
                    if chunks:  # what the burst brought before the error reaches the client first
                        yield chunks
                    raise
                if chunks:  # a burst of pings and block stops translates to nothing
                    yield FinalBurst(chunks) if stream.finished else chunks
                if stream.finished:
                    return
        raise self.error(502, "the upstream stream ended before message_stop")

    def failure(self, response: httpx2.Response) -> UpstreamError:
        error = super().failure(response)
        # The router's context_window_fallbacks recognise OpenAI's wording; Anthropic says "prompt is too long".
        if error.status == 400 and "prompt is too long" in error.message:
            error.type = "context_length_exceeded"
        return error

    def _stream_error(self, error: Any) -> UpstreamError:
        error = error if isinstance(error, dict) else {}
        kind = error.get("type") if isinstance(error.get("type"), str) else "api_error"
        message = str(error.get("message") or "the upstream reported an error mid-stream")
        return self.error(_STATUS_BY_ERROR_TYPE.get(kind, 500), message, type=kind)


# OpenAI request → Anthropic request ---------------------------------------------------------------


def messages_request(body: dict[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat request; raises InvalidRequestError on what it cannot map."""
    system, messages = _conversation(body.get("messages") or [])
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_MAX_TOKENS
    payload: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
    if system:
        payload["system"] = system
    payload |= {name: body[name] for name in _SAMPLING if body.get(name) is not None}
    stop = body.get("stop")
    if stop:
        payload["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if isinstance(body.get("user"), str) and body["user"]:
        payload["metadata"] = {"user_id": body["user"]}
    if body.get("tools"):  # OpenAI, too, refuses a tool_choice without tools
        payload["tools"] = [_tool(tool) for tool in body["tools"]]
        tool_choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if tool_choice:
            payload["tool_choice"] = tool_choice
    if stream:
        payload["stream"] = True
    return payload


def _conversation(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """System text blocks, and the user/assistant turns with consecutive same-role turns merged
    (the Messages API requires strict alternation; OpenAI clients often send two user turns in a row)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer"):
            system += _blocks(message.get("content"), index)
        elif role == "user":
            _append(turns, "user", _content(message.get("content"), index))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_content(message, index))
        elif role == "tool":
            _append(turns, "user", [_tool_result(message, index)])
        else:
            raise InvalidRequestError(f"messages[{index}]: role {role!r} is not supported by Anthropic models",
                                      param="messages")
    return system, turns


def _append(turns: list[dict[str, Any]], role: str, content: str | list[dict[str, Any]]) -> None:
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"] = _as_blocks(turns[-1]["content"]) + _as_blocks(content)
    else:
        turns.append({"role": role, "content": content})


def _as_blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return content


def _content(content: Any, index: int) -> str | list[dict[str, Any]]:
    return content if isinstance(content, str) else _blocks(content, index)


def _blocks(content: Any, index: int) -> list[dict[str, Any]]:
    """Anthropic content blocks for an OpenAI content string or list of parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return _as_blocks(content)
    if not isinstance(content, list):
        raise InvalidRequestError(f"messages[{index}].content must be a string or a list of parts",
                                  param="messages")
    return [block for part in content if (block := _part(part, index))]


def _part(part: Any, index: int) -> dict[str, Any] | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        if not part.get("text"):
            return None  # the Messages API rejects empty text blocks
        block = {"type": "text", "text": part["text"]}
        if part.get("cache_control"):  # prompt caching is asked for per block
            block["cache_control"] = part["cache_control"]
        return block
    if kind == "image_url":
        image = part.get("image_url")
        return _image(image.get("url") if isinstance(image, dict) else image, index)
    raise InvalidRequestError(f"messages[{index}]: content part type {kind!r} is not supported by Anthropic models",
                              param="messages")


def _image(url: Any, index: int) -> dict[str, Any]:
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    header, _, data = url.partition(",") if isinstance(url, str) else ("", "", "")
    if not (header.startswith("data:") and header.endswith(";base64") and data):
        raise InvalidRequestError(f"messages[{index}]: an image must be an http(s) URL or a base64 data: URL",
                                  param="messages")
    media_type = header.removeprefix("data:").removesuffix(";base64")
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _assistant_content(message: dict[str, Any], index: int) -> str | list[dict[str, Any]]:
    tool_calls = message.get("tool_calls") or []
    if not tool_calls:
        return _content(message.get("content"), index)
    return _blocks(message.get("content"), index) + [_tool_use(call, index) for call in tool_calls]


def _tool_use(call: Any, index: int) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not call.get("id") or not function.get("name"):
        raise InvalidRequestError(f"messages[{index}].tool_calls: each needs an id and a function name",
                                  param="messages")
    try:
        arguments = orjson.loads(function.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        raise InvalidRequestError(f"messages[{index}].tool_calls: arguments must be a JSON object",
                                  param="messages")
    return {"type": "tool_use", "id": call["id"], "name": function["name"], "input": arguments}


def _tool_result(message: dict[str, Any], index: int) -> dict[str, Any]:
    if not message.get("tool_call_id"):
        raise InvalidRequestError(f"messages[{index}]: a tool message needs a tool_call_id", param="messages")
    return {"type": "tool_result", "tool_use_id": message["tool_call_id"],
            "content": _content(message.get("content"), index)}


def _tool(tool: Any) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    if not isinstance(function, dict) or not function.get("name"):
        raise InvalidRequestError("tools: Anthropic models take only function tools with a name", param="tools")
    translated = {"name": function["name"],
                  "input_schema": function.get("parameters") or {"type": "object", "properties": {}}}
    if function.get("description"):
        translated["description"] = function["description"]
    return translated


def _tool_choice(choice: Any, parallel_tool_calls: Any) -> dict[str, Any] | None:
    if choice is None and parallel_tool_calls is not False:
        return None  # both APIs default to auto
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not name:
            raise InvalidRequestError("tool_choice: a function choice needs a function name", param="tool_choice")
        translated = {"type": "tool", "name": name}
    elif choice is None or choice in _TOOL_CHOICES:
        translated = {"type": _TOOL_CHOICES.get(choice, "auto")}
    else:
        raise InvalidRequestError(f"tool_choice: {choice!r} is not one of auto, required, none", param="tool_choice")
    if parallel_tool_calls is False and translated["type"] != "none":
        translated["disable_parallel_tool_use"] = True
    return translated


# Anthropic answer → OpenAI answer -----------------------------------------------------------------


def chat_completion(message: dict[str, Any]) -> dict[str, Any]:
    """The ``chat.completion`` for a Messages API ``message``."""
    blocks = [block for block in message.get("content") or () if isinstance(block, dict)]
    texts = [block.get("text") or "" for block in blocks if block.get("type") == "text"]
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    tool_calls = [_tool_call(block) for block in blocks if block.get("type") == "tool_use"]
    if tool_calls:
        reply["tool_calls"] = tool_calls
    return {"id": message.get("id"), "object": "chat.completion", "created": int(time.time()),
            "model": message.get("model"),
            "choices": [{"index": 0, "message": reply, "finish_reason": finish_reason(message.get("stop_reason"))}],
            "usage": openai_usage(message.get("usage") or {})}


def _tool_call(block: dict[str, Any]) -> dict[str, Any]:
    return {"id": block.get("id"), "type": "function",
            "function": {"name": block.get("name"), "arguments": orjson.dumps(block.get("input") or {}).decode()}}


def finish_reason(stop_reason: Any) -> str:
    return _FINISH_REASONS.get(stop_reason, "stop")


def openai_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """OpenAI usage for Anthropic's: its input_tokens leave out cached input, OpenAI's prompt_tokens include it."""
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    cache_creation = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cache_read + cache_creation
    completion = int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cache_read},
            "cache_creation_input_tokens": cache_creation}


class _StreamTranslator:
    """Turns Messages API stream events into ``chat.completion.chunk`` objects, one event at a time."""

    def __init__(self, model: str) -> None:
        self.base = {"id": None, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        self.usage: dict[str, Any] = {}
        self.stop_reason: Any = None
        self.tool_indexes: dict[int, int] = {}  # content block index → OpenAI tool_calls index
        self.finished = False

    def chunks(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "message_start":
            return self._start(event.get("message") or {})
        if kind == "content_block_start":
            return self._block_start(event.get("index"), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(event.get("index"), event.get("delta") or {})
        if kind == "message_delta":
            # Server tools can send several message_delta events; the last one's stop reason counts.
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
            self._take_usage(event.get("usage"))
            return []
        if kind == "message_stop":
            self.finished = True
            return [self._chunk({}, finish_reason(self.stop_reason)),
                    {**self.base, "choices": [], "usage": openai_usage(self.usage)}]
        return []  # ping, content_block_stop, and event types added to the API later

    def _start(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        self.base["id"] = message.get("id")
        self.base["model"] = message.get("model") or self.base["model"]
        self._take_usage(message.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, index: Any, block: dict[str, Any]) -> list[dict[str, Any]]:
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []
        self.tool_indexes[index] = len(self.tool_indexes)
        call = {"index": self.tool_indexes[index], "id": block.get("id"), "type": "function",
                "function": {"name": block.get("name"), "arguments": ""}}
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, index: Any, delta: dict[str, Any]) -> list[dict[str, Any]]:
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if delta.get("type") == "input_json_delta" and delta.get("partial_json") and index in self.tool_indexes:
            call = {"index": self.tool_indexes[index], "function": {"arguments": delta["partial_json"]}}
            return [self._chunk({"tool_calls": [call]})]
        return []  # thinking and signature deltas have no OpenAI counterpart

    def _take_usage(self, usage: Any) -> None:
        # message_delta's counts are cumulative, so later values replace earlier ones.
        if isinstance(usage, dict):
            self.usage |= {name: value for name, value in usage.items() if value is not None}

    def _chunk(self, delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return {**self.base, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}
