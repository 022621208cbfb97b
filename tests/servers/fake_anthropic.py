"""A stand-in for Anthropic's Messages API, for end-to-end tests of the Anthropic adapter.

Run it as a real server (tests never reach real providers):

    python -m tests.servers.fake_anthropic --host 127.0.0.1 --port 8912 [--api-key K]

API (every request is recorded):
    POST /v1/messages    a ``message``, or the real SSE event sequence (``event:`` + ``data:`` lines) with
                         "stream": true

It validates like the real API, answering Anthropic's error JSON (``{"type": "error", "error": {...}}``):
401 without the right ``x-api-key`` (when --api-key is given); 400 without an ``anthropic-version``
header, without ``max_tokens``, with a field the API does not know (``n``, ``presence_penalty``…), with a
``system`` role inside ``messages``, with two turns of the same role in a row, with empty text blocks,
or with ``tool_use`` / ``tool_result`` blocks that do not pair up.

Answers are deterministic: the text is "Hello from the stand-in Anthropic." unless the request has an
``x-stand-in-reply`` header (or a ``reply`` behaviour is set); a stop sequence cuts it (stop_reason
"stop_sequence"), ``max_tokens`` keeps that many words ("max_tokens"). When the request has tools and
the last user turn says "use the tool" (or tool_choice forces a tool), the answer calls the first tool
(or the forced one) with TOOL_INPUT (stop_reason "tool_use"). Usage counts words: input_tokens over the
system prompt and all text, output_tokens over the answer; cache_read_input_tokens comes from an
``x-stand-in-cache-read`` header or the behaviour of that name.

Control endpoints (not recorded), the same as tests/servers/fake_upstream.py, so its StandInClient
drives this stand-in too:
    GET    /_stand_in/health      readiness probe
    GET    /_stand_in/requests    the recorded requests: method, path, query, headers, body, timestamp
    DELETE /_stand_in/requests    forget them
    GET    /_stand_in/behaviour   the failure injection in force
    POST   /_stand_in/behaviour   merge settings (see AnthropicBehaviour); 400 on unknown keys or bad values
    DELETE /_stand_in/behaviour   back to normal
"""
from __future__ import annotations

import argparse
import asyncio
import re
import secrets
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from tests.servers.fake_upstream import (CONTROL_PREFIX, MAX_RECORDED, REPLY_HEADER, BadRequest, Behaviour, Receive,
                                         Request, Send, count_words, drop_connection, read_request, send_json,
                                         stream_events, word_pieces)

DEFAULT_REPLY = "Hello from the stand-in Anthropic."
TOOL_INPUT = {"query": "stand-in weather", "days": 3, "units": ["celsius"]}
TOOL_TRIGGER = "use the tool"
CACHE_READ_HEADER = "x-stand-in-cache-read"
MESSAGES_PATH = "/v1/messages"
# The top-level fields of the Messages API (version 2023-06-01); it refuses any other.
FIELDS = frozenset({"model", "messages", "max_tokens", "system", "stop_sequences", "stream", "temperature",
                    "top_p", "top_k", "metadata", "tools", "tool_choice", "thinking", "service_tier", "container",
                    "mcp_servers", "context_management"})
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               529: "overloaded_error"}
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


# Behaviour --------------------------------------------------------------------------------------


@dataclass
class AnthropicBehaviour(Behaviour):
    """fake_upstream's Behaviour (status/times/body/retry_after/close_connection/cut_stream_after_chunks/
    delay_ms/chunk_delay_ms/reply), plus:

    cache_read_input_tokens       reported in every answer's usage (an x-stand-in-cache-read header wins)
    cache_creation_input_tokens   reported in every answer's usage
    stream_error_after_events     the next streamed answer sends an overloaded ``error`` event after this
                                  many events, then ends, as the real API does when it overloads mid-stream
    """

    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    stream_error_after_events: int | None = None

    def update(self, settings: Any) -> None:
        if isinstance(settings, dict):
            for name in ("cache_read_input_tokens", "cache_creation_input_tokens", "stream_error_after_events"):
                value = settings.get(name, 0)
                if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                    raise BadRequest(f"{name} must be an integer at least 0.")
        super().update(settings)

    def take_stream_error(self) -> int | None:
        after, self.stream_error_after_events = self.stream_error_after_events, None
        return after


# Errors -----------------------------------------------------------------------------------------


class ApiError(Exception):
    """Answered with Anthropic's error JSON and ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_json(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": f"req_{secrets.token_hex(12)}"}


def injected_error(status: int) -> dict[str, Any]:
    if status == 529:
        return error_json(status, "Overloaded")
    if status == 429:
        return error_json(status, "This request would exceed the stand-in's rate limit (429).")
    return error_json(status, f"The stand-in Anthropic failed on purpose ({status}).")


# Validation, as the real API does it ------------------------------------------------------------


def validated_body(request: Request) -> dict[str, Any]:
    if not request.headers.get("anthropic-version"):
        raise BadRequest("anthropic-version: header is required")
    body = request.json_object()
    extra = sorted(set(body) - FIELDS)
    if extra:
        raise BadRequest(f"{extra[0]}: Extra inputs are not permitted")
    for name, kind in (("model", str), ("messages", list), ("max_tokens", int)):
        if not isinstance(body.get(name), kind) or isinstance(body.get(name), bool):
            raise BadRequest(f"{name}: Field required")
    if body["max_tokens"] < 1:
        raise BadRequest("max_tokens: Input should be greater than or equal to 1")
    check_system(body.get("system"))
    check_messages(body["messages"])
    check_tools(body.get("tools"), body.get("tool_choice"))
    if "metadata" in body and set(body["metadata"] or {}) - {"user_id"}:
        raise BadRequest("metadata: only user_id is permitted")
    stops = body.get("stop_sequences", [])
    if not isinstance(stops, list) or not all(isinstance(stop, str) and stop for stop in stops):
        raise BadRequest("stop_sequences: Input should be a list of non-empty strings")
    return body


def check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise BadRequest("system: Input should be a valid string or list of text blocks")
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise BadRequest(f"system.{index}: Input tag does not match the expected tag 'text'")
        check_block(block, f"system.{index}", "system")


def check_messages(messages: list[Any]) -> None:
    if not messages:
        raise BadRequest("messages: at least one message is required")
    previous: dict[str, Any] = {}
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "system":
            raise BadRequest('messages: Unexpected role "system". The Messages API accepts a top-level `system` '
                             'parameter, not "system" as an input message role.')
        if role not in ("user", "assistant"):
            raise BadRequest(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        if role == previous.get("role"):
            raise BadRequest(f'messages: roles must alternate between "user" and "assistant", but found multiple '
                             f'"{role}" roles in a row')
        blocks = content_blocks(message.get("content"), f"messages.{index}")
        for number, block in enumerate(blocks):
            check_block(block, f"messages.{index}.content.{number}", role)
        check_tool_pairing(previous, blocks, index)
        previous = {"role": role, "blocks": blocks}


def content_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        if not content:
            raise BadRequest(f"{where}: all messages must have non-empty content")
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise BadRequest(f"{where}: all messages must have non-empty content")
    if not all(isinstance(block, dict) for block in content):
        raise BadRequest(f"{where}.content: Input should be a valid list of content blocks")
    return content


def check_block(block: dict[str, Any], where: str, role: str) -> None:
    kind = block.get("type")
    if kind == "text":
        if not isinstance(block.get("text"), str) or not block["text"]:
            raise BadRequest(f"{where}: text content blocks must be non-empty")
    elif kind == "image":
        check_image(block.get("source"), where)
    elif kind == "tool_use" and role == "assistant":
        if not block.get("id") or not block.get("name") or not isinstance(block.get("input"), dict):
            raise BadRequest(f"{where}: tool_use blocks need an id, a name and an input object")
    elif kind == "tool_result" and role == "user":
        if not block.get("tool_use_id"):
            raise BadRequest(f"{where}.tool_use_id: Field required")
    else:
        raise BadRequest(f"{where}: content block type {kind!r} is not permitted in a {role} turn")


def check_image(source: Any, where: str) -> None:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "url" and str(source.get("url", "")).startswith(("http://", "https://")):
        return
    if kind == "base64" and source.get("media_type") in IMAGE_TYPES and source.get("data"):
        return
    raise BadRequest(f"{where}.source: Input should be a base64 image (jpeg, png, gif, webp) or a url source")


def check_tool_pairing(previous: dict[str, Any], blocks: list[dict[str, Any]], index: int) -> None:
    """Every tool_use of an assistant turn is answered by a tool_result in the very next user turn."""
    used = {block["id"] for block in previous.get("blocks", ()) if block.get("type") == "tool_use"}
    answered = {block["tool_use_id"] for block in blocks if block.get("type") == "tool_result"}
    if answered - used:
        raise BadRequest(f"messages.{index}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                         f"{sorted(answered - used)[0]}. Each `tool_result` block must have a corresponding "
                         "`tool_use` block in the previous message.")
    if used - answered:
        raise BadRequest(f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately "
                         f"after: {sorted(used - answered)[0]}. Each `tool_use` block must have a corresponding "
                         "`tool_result` block in the next message.")


def check_tools(tools: Any, tool_choice: Any) -> None:
    if tools is None:
        if tool_choice is not None:
            raise BadRequest("tool_choice: may only be specified while providing tools")
        return
    for index, tool in enumerate(tools if isinstance(tools, list) else [None]):
        if not isinstance(tool, dict) or not TOOL_NAME.match(str(tool.get("name", ""))):
            raise BadRequest(f"tools.{index}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise BadRequest(f"tools.{index}.input_schema: Field required (a JSON schema of type object)")
    if tool_choice is None:
        return
    kind = tool_choice.get("type") if isinstance(tool_choice, dict) else None
    if kind not in ("auto", "any", "none", "tool"):
        raise BadRequest("tool_choice.type: Input should be 'auto', 'any', 'none' or 'tool'")
    if kind == "tool" and tool_choice.get("name") not in {tool["name"] for tool in tools}:
        raise BadRequest(f"tool_choice.name: no tool named {tool_choice.get('name')!r}")


# Answers ----------------------------------------------------------------------------------------


def text_words(content: Any) -> int:
    """Words in a string, or in the text (and tool_result text) of a list of blocks."""
    if not isinstance(content, list):
        return count_words(content)
    blocks = [block for block in content if isinstance(block, dict)]
    return sum(text_words(block.get("content")) if block["type"] == "tool_result" else count_words(block.get("text"))
               for block in blocks)


def last_user_text(messages: list[dict[str, Any]]) -> str:
    content = messages[-1].get("content") if messages[-1].get("role") == "user" else ""
    if isinstance(content, str):
        return content
    return " ".join(block.get("text", "") for block in content if block.get("type") == "text")


def forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool this answer calls, if any: the one tool_choice forces, or the first when asked to."""
    tools, choice = body.get("tools") or [], body.get("tool_choice") or {"type": "auto"}
    if not tools or choice["type"] == "none":
        return None
    if choice["type"] == "tool":
        return next(tool for tool in tools if tool["name"] == choice["name"])
    if choice["type"] == "any" or TOOL_TRIGGER in last_user_text(body["messages"]).lower():
        return tools[0]
    return None


def reply_text(app: AnthropicStandIn, request: Request, body: dict[str, Any]) -> tuple[str, str, str | None]:
    """The answer's text, stop_reason and stop_sequence."""
    text = request.headers.get(REPLY_HEADER, app.behaviour.reply if app.behaviour.reply is not None else DEFAULT_REPLY)
    found = [(text.find(stop), stop) for stop in body.get("stop_sequences", []) if stop in text]
    if found:
        position, stop = min(found)
        text, reason, sequence = text[:position], "stop_sequence", stop
    else:
        reason, sequence = "end_turn", None
    words = text.split()
    if len(words) > body["max_tokens"]:
        return " ".join(words[: body["max_tokens"]]), "max_tokens", None
    return text, reason, sequence


def make_message(app: AnthropicStandIn, request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """The complete ``message`` the request gets (streamed answers are cut from it)."""
    tool = forced_tool(body)
    if tool is not None:
        content = [] if (body.get("tool_choice") or {}).get("type") in ("any", "tool") else [
            {"type": "text", "text": f"I will use the {tool['name']} tool."}]
        content.append({"type": "tool_use", "id": f"toolu_{secrets.token_hex(12)}", "name": tool["name"],
                        "input": TOOL_INPUT})
        reason, sequence = "tool_use", None
    else:
        text, reason, sequence = reply_text(app, request, body)
        content = [{"type": "text", "text": text}] if text else []
    # a tool call costs a token per 4 characters of its input's JSON, roughly what tokenizers do
    output = text_words(content) + sum(len(orjson.dumps(block["input"])) // 4
                                       for block in content if block["type"] == "tool_use")
    return {"id": f"msg_{secrets.token_hex(12)}", "type": "message", "role": "assistant", "model": body["model"],
            "content": content, "stop_reason": reason, "stop_sequence": sequence,
            "usage": message_usage(app, request, body, output)}


def message_usage(app: AnthropicStandIn, request: Request, body: dict[str, Any], output: int) -> dict[str, int]:
    header = request.headers.get(CACHE_READ_HEADER, "")
    cache_read = int(header) if header.isdigit() else app.behaviour.cache_read_input_tokens
    prompt = text_words(body.get("system")) + sum(text_words(m["content"]) for m in body["messages"])
    return {"input_tokens": prompt, "cache_creation_input_tokens": app.behaviour.cache_creation_input_tokens,
            "cache_read_input_tokens": cache_read, "output_tokens": output}


def event(payload: dict[str, Any]) -> bytes:
    return f"event: {payload['type']}\n".encode() + b"data: " + orjson.dumps(payload) + b"\n\n"


def stream_events_of(message: dict[str, Any]) -> Iterator[bytes]:
    """The SSE events of ``message`` streamed, in the order and shapes the real API sends them."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 1}}
    yield event({"type": "message_start", "message": start})
    for index, block in enumerate(message["content"]):
        opening = {**block, "text": ""} if block["type"] == "text" else {**block, "input": {}}
        yield event({"type": "content_block_start", "index": index, "content_block": opening})
        if index == 0:
            yield event({"type": "ping"})
        for delta in block_deltas(block):
            yield event({"type": "content_block_delta", "index": index, "delta": delta})
        yield event({"type": "content_block_stop", "index": index})
    yield event({"type": "message_delta", "delta": {"stop_reason": message["stop_reason"],
                                                    "stop_sequence": message["stop_sequence"]},
                 "usage": {"output_tokens": usage["output_tokens"]}})
    yield event({"type": "message_stop"})


def block_deltas(block: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if block["type"] == "text":
        for piece in word_pieces(block["text"]):
            yield {"type": "text_delta", "text": piece}
        return
    arguments = orjson.dumps(block["input"]).decode()
    yield {"type": "input_json_delta", "partial_json": ""}  # the real API opens with an empty fragment
    for start in range(0, len(arguments), 7):
        yield {"type": "input_json_delta", "partial_json": arguments[start:start + 7]}


def broken_after(events: Iterator[bytes], count: int) -> Iterator[bytes]:
    for sent, payload in enumerate(events):
        if sent == count:
            break
        yield payload
    yield event({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})


async def messages(app: AnthropicStandIn, request: Request, send: Send) -> None:
    body = validated_body(request)
    message = make_message(app, request, body)
    if not body.get("stream"):
        await send_json(send, 200, message)
        return
    events = stream_events_of(message)
    error_after = app.behaviour.take_stream_error()
    await stream_events(app, send, events if error_after is None else broken_after(events, error_after))


# The ASGI application ---------------------------------------------------------------------------


class AnthropicStandIn:
    """The raw ASGI app. State lives in memory: run it in a single process (no workers)."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.recorded: deque[Request] = deque(maxlen=MAX_RECORDED)
        self.behaviour = AnthropicBehaviour()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # run with lifespan="off"; nothing else is spoken here
        request = await read_request(scope, receive)
        try:
            if request.path.startswith(CONTROL_PREFIX):
                await self.control(request, send)
            else:
                self.recorded.append(request)
                await self.api(request, send)
        except BadRequest as exc:
            await send_json(send, 400, error_json(400, str(exc)))
        except ApiError as exc:
            await send_json(send, exc.status, error_json(exc.status, str(exc)))

    async def api(self, request: Request, send: Send) -> None:
        if request.path != MESSAGES_PATH:
            raise ApiError(404, f"Not found: {request.path}")
        if request.method != "POST":
            raise ApiError(405, f"Use POST for {request.path}")
        if self.behaviour.delay_ms:
            await asyncio.sleep(self.behaviour.delay_ms / 1000)
        if await self.injected_failure(send):
            return
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            raise ApiError(401, "invalid x-api-key" if request.headers.get("x-api-key") else
                           "x-api-key header is required")
        await messages(self, request, send)

    async def injected_failure(self, send: Send) -> bool:
        """Answer with the injected failure, if one is due; True when it did."""
        failure, behaviour = self.behaviour.take_failure(), self.behaviour
        if failure == "close":
            await drop_connection(send, response_started=False)
        elif failure == "status":
            headers = [(b"retry-after", behaviour.retry_after.encode())] if behaviour.retry_after else []
            body = behaviour.body if behaviour.body is not None else injected_error(behaviour.status)
            await send_json(send, behaviour.status, body, headers)
        return failure is not None

    async def control(self, request: Request, send: Send) -> None:
        route = (request.method, request.path.removeprefix(CONTROL_PREFIX))
        if route == ("GET", "health"):
            await send_json(send, 200, {"status": "ok"})
        elif route == ("GET", "requests"):
            await send_json(send, 200, list(self.recorded))  # orjson serialises dataclasses
        elif route == ("DELETE", "requests"):
            self.recorded.clear()
            await send_json(send, 200, {"cleared": True})
        elif route[1] == "behaviour" and request.method in ("GET", "POST", "DELETE"):
            if request.method == "POST":
                self.behaviour.update(request.body)
            elif request.method == "DELETE":
                self.behaviour = AnthropicBehaviour()
            await send_json(send, 200, self.behaviour)
        else:
            raise ApiError(404, f"Unknown control endpoint {request.method} {request.path}")


# Command line -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A stand-in for Anthropic's Messages API, for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", help="require 'x-api-key: KEY' on API calls")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    import uvicorn

    print(f"stand-in Anthropic on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(AnthropicStandIn(api_key=args.api_key), host=args.host, port=args.port, log_level=args.log_level,
                lifespan="off", access_log=False)


if __name__ == "__main__":
    main()
