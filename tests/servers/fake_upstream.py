"""A stand-in LLM provider speaking OpenAI's wire format, for end-to-end tests.

Run it as a real server (tests never reach real providers):

    python -m tests.servers.fake_upstream --host 127.0.0.1 --port 8911 [--api-key K]

API (what a gateway calls; every request is recorded):
    POST /v1/chat/completions, /chat/completions   chat.completion, or SSE chunks with "stream": true
    POST /v1/completions, /completions             text_completion (no streaming)
    POST /v1/embeddings, /embeddings               8 deterministic floats per input (or base64)
    GET  /v1/models, /models                       one model

Answers are deterministic: the reply is "Hello from the stand-in upstream." unless the request has an
``x-stand-in-reply`` header (or a ``reply`` behaviour is set); ``max_tokens`` keeps that many words
(finish_reason "length"). Usage counts whitespace-separated words: prompt_tokens over the text of all
messages (or the prompt / the inputs), completion_tokens over the reply.

Control endpoints (not recorded) — StandInClient below wraps them:
    GET    /_stand_in/health      readiness probe
    GET    /_stand_in/requests    the recorded requests: method, path, query, headers, body, timestamp
    DELETE /_stand_in/requests    forget them
    GET    /_stand_in/behaviour   the failure injection in force
    POST   /_stand_in/behaviour   merge settings (see Behaviour); 400 on unknown keys or bad values
    DELETE /_stand_in/behaviour   back to normal
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import re
import secrets
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import orjson

DEFAULT_REPLY = "Hello from the stand-in upstream."
MODEL_ID = "stand-in-model"
REPLY_HEADER = "x-stand-in-reply"
CONTROL_PREFIX = "/_stand_in/"
EMBEDDING_SIZE = 8
MAX_RECORDED = 10_000

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class BadRequest(Exception):
    """Answered as a 400 with OpenAI's error JSON."""


# Requests ---------------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any  # parsed JSON, the raw text when it is not JSON, None when empty
    timestamp: float  # time.monotonic(): comparable with the test process's clock on the same host

    def json_object(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            raise BadRequest("The request body must be a JSON object.")
        return self.body


async def read_request(scope: dict[str, Any], receive: Receive) -> Request:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), _decode_header(raw_value)
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return Request(method=scope["method"], path=scope["path"], query=scope["query_string"].decode("latin-1"),
                   headers=headers, body=_parse_body(b"".join(chunks)), timestamp=time.monotonic())


def _decode_header(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode(errors="replace")


# Behaviour (failure injection) ------------------------------------------------------------------


@dataclass
class Behaviour:
    """What ``POST /_stand_in/behaviour`` sets. One-shot settings are used up; the others stay until reset.

    status, times          the next ``times`` (default 1) API requests answer ``status`` with an error JSON
    body                   that error JSON instead of the default one
    retry_after            a ``retry-after`` header on those error answers
    close_connection       the next ``times`` (default 1) API requests get their connection closed, no answer
    cut_stream_after_chunks  the next streamed answer stops, connection closed, after this many SSE events
    delay_ms               latency before every answer
    hold                   API requests are recorded, then wait unanswered until hold is set false (or the
                           behaviour is reset): the test decides when the upstream answers
    chunk_delay_ms         pause between streamed events (to see that a relay does not buffer)
    reply                  the reply text, unless a request's x-stand-in-reply header says otherwise
    omit_usage             answers carry no usage at all (as some OpenAI-compatible servers do)
    """

    status: int | None = None
    times: int = 0  # injected failures left (status answers or closed connections)
    body: Any = None
    retry_after: str | None = None
    close_connection: bool = False
    cut_stream_after_chunks: int | None = None
    delay_ms: int = 0
    hold: bool = False
    chunk_delay_ms: int = 0
    reply: str | None = None
    omit_usage: bool = False

    def update(self, settings: Any) -> None:
        """Merge ``settings`` in; validates everything before changing anything."""
        if not isinstance(settings, dict):
            raise BadRequest("The behaviour must be a JSON object.")
        unknown = set(settings) - {f.name for f in fields(self)}
        if unknown:
            raise BadRequest(f"Unknown behaviour settings: {sorted(unknown)}.")
        if settings.get("status") is not None and settings.get("close_connection"):
            raise BadRequest("Set either status or close_connection, not both.")
        changes = {name: _validated(name, value) for name, value in settings.items()}
        # a new failure replaces the other kind, and happens once unless told otherwise
        if changes.get("status") is not None:
            changes |= {"close_connection": False, "times": changes.get("times", 1)}
        elif changes.get("close_connection"):
            changes |= {"status": None, "times": changes.get("times", 1)}
        for name, value in changes.items():
            setattr(self, name, value)

    def take_failure(self) -> str | None:
        """Use up one injected failure: "status", "close" or None."""
        if self.times <= 0 or (self.status is None and not self.close_connection):
            return None
        self.times -= 1
        return "close" if self.close_connection else "status"

    def take_cut(self) -> int | None:
        cut, self.cut_stream_after_chunks = self.cut_stream_after_chunks, None
        return cut


def _validated(name: str, value: Any) -> Any:
    """``value`` checked for setting ``name``; raises BadRequest."""
    if value is None and name in ("status", "body", "retry_after", "cut_stream_after_chunks", "reply"):
        return None
    if name == "status":
        return _int_setting(name, value, 400, 599)
    if name in ("times", "delay_ms", "chunk_delay_ms", "cut_stream_after_chunks"):
        return _int_setting(name, value, 0, None)
    if name in ("close_connection", "omit_usage", "hold"):
        if not isinstance(value, bool):
            raise BadRequest(f"{name} must be true or false.")
        return value
    if name == "retry_after":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise BadRequest("retry_after must be a number or a string.")
        return str(value)
    if name == "reply" and not isinstance(value, str):
        raise BadRequest("reply must be a string.")
    return value  # body: any JSON


def _int_setting(name: str, value: Any, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        limits = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadRequest(f"{name} must be an integer {limits}.")
    return value


# Responses --------------------------------------------------------------------------------------


async def send_json(send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = orjson.dumps(payload)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


def error_json(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def injected_error(status: int) -> dict[str, Any]:
    if status == 429:
        return error_json("The stand-in upstream is rate limiting on purpose (429)", "requests", "rate_limit_exceeded")
    type_ = "server_error" if status >= 500 else "invalid_request_error"
    return error_json(f"The stand-in upstream failed on purpose ({status})", type_)


async def drop_connection(send: Send, response_started: bool) -> None:
    """Close the TCP connection right now, as a crashed upstream would.

    uvicorn hands the app a bound ``send`` of its request cycle, whose ``transport`` we close: the
    client then sees the connection end (no answer at all, or a chunked body without its end). Once
    uvicorn has noticed the disconnect, returning from the app is silent. Elsewhere we fall back to
    leaving the response unfinished, which also makes uvicorn close the connection.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        if not response_started:  # an unfinished answer, so the server cannot replace it with a 500
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]})
        return
    transport.close()  # flushes what was already written, then closes
    for _ in range(200):  # until the protocol's connection_lost marked the cycle disconnected (≤ ~1 s)
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0.005)


# The OpenAI API ---------------------------------------------------------------------------------


def count_words(text: Any) -> int:
    return len(text.split()) if isinstance(text, str) else 0


def message_words(messages: list[Any]) -> int:
    """Words in all message contents: strings, or the text parts of a list of parts."""
    total = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            total += sum(count_words(part.get("text")) for part in content
                         if isinstance(part, dict) and part.get("type") == "text")
        else:
            total += count_words(content)
    return total


def input_words(value: Any) -> int:
    """Words in a prompt / embedding input: a string, a list of strings, or token arrays (a token each)."""
    if isinstance(value, str):
        return count_words(value)
    if isinstance(value, list):
        return sum(input_words(item) if isinstance(item, (str, list)) else 1 for item in value)
    return 0


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def word_pieces(text: str) -> list[str]:
    """``text`` cut into one piece per word, whitespace kept, so that "".join(pieces) == text."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def embedding_vector(item: Any) -> list[float]:
    """8 floats in [-1, 1) from the SHA-256 of the input; exact in float32, so base64 round-trips."""
    text = item if isinstance(item, str) else orjson.dumps(item).decode()
    digest = hashlib.sha256(text.encode()).digest()
    return [(byte - 128) / 128 for byte in digest[:EMBEDDING_SIZE]]


@dataclass
class Reply:
    text: str
    finish_reason: str


def make_reply(app: StandInApp, request: Request, body: dict[str, Any]) -> Reply:
    text = request.headers.get(REPLY_HEADER, app.behaviour.reply if app.behaviour.reply is not None else DEFAULT_REPLY)
    limit = body.get("max_tokens", body.get("max_completion_tokens"))
    words = text.split()
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit < len(words):
        return Reply(" ".join(words[:limit]), "length")
    return Reply(text, "stop")


def required(body: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or (isinstance(value, (list, str)) and not value):
        raise BadRequest(f"'{name}' is a required property and must not be empty.")
    return value


async def chat_completions(app: StandInApp, request: Request, send: Send) -> None:
    body = request.json_object()
    model = required(body, "model", str)
    messages = required(body, "messages", list)
    reply = make_reply(app, request, body)
    # "object" is filled in per answer; listed here so keys come in OpenAI's order
    completion = {"id": f"chatcmpl-{secrets.token_hex(12)}", "object": None, "created": int(time.time()),
                  "model": model}
    counts = usage(message_words(messages), count_words(reply.text))
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and not app.behaviour.omit_usage
        events = chat_stream_events(completion, reply, counts if include_usage else None)
        await stream_events(app, send, events)
        return
    await send_json(send, 200, {
        **completion, "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                     "finish_reason": reply.finish_reason}],
        "usage": None if app.behaviour.omit_usage else counts, "system_fingerprint": None})


def chat_stream_events(completion: dict[str, Any], reply: Reply, counts: dict[str, int] | None) -> Iterator[bytes]:
    """The SSE events of a streamed chat completion, as OpenAI sends them."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {**completion, "object": "chat.completion.chunk", "system_fingerprint": None, "usage": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}

    yield sse(chunk({"role": "assistant", "content": ""}))
    for piece in word_pieces(reply.text):
        yield sse(chunk({"content": piece}))
    yield sse(chunk({}, reply.finish_reason))
    if counts is not None:
        yield sse({**chunk({}), "choices": [], "usage": counts})
    yield b"data: [DONE]\n\n"


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def stream_events(app: StandInApp, send: Send, events: Iterator[bytes]) -> None:
    """One ASGI body message per event, so each reaches the client as it is produced."""
    cut = app.behaviour.take_cut()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]})
    for sent, event in enumerate(events):
        if cut is not None and sent >= cut:
            await drop_connection(send, response_started=True)
            return
        if sent and app.behaviour.chunk_delay_ms:
            await asyncio.sleep(app.behaviour.chunk_delay_ms / 1000)
        await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def completions(app: StandInApp, request: Request, send: Send) -> None:
    body = request.json_object()
    model = required(body, "model", str)
    prompt = required(body, "prompt", (str, list))
    if body.get("stream"):
        raise BadRequest("The stand-in upstream does not stream /completions.")
    reply = make_reply(app, request, body)
    await send_json(send, 200, {
        "id": f"cmpl-{secrets.token_hex(12)}", "object": "text_completion", "created": int(time.time()),
        "model": model,
        "choices": [{"text": reply.text, "index": 0, "logprobs": None, "finish_reason": reply.finish_reason}],
        "usage": usage(input_words(prompt), count_words(reply.text))})


async def embeddings(app: StandInApp, request: Request, send: Send) -> None:
    body = request.json_object()
    model = required(body, "model", str)
    inputs = required(body, "input", (str, list))
    items = [inputs] if isinstance(inputs, str) or all(isinstance(i, int) for i in inputs) else inputs
    as_base64 = body.get("encoding_format") == "base64"  # what the openai SDK asks for by default
    data = [{"object": "embedding", "index": index, "embedding": encode_vector(embedding_vector(item), as_base64)}
            for index, item in enumerate(items)]
    words = input_words(inputs)
    await send_json(send, 200, {"object": "list", "model": model, "data": data,
                                "usage": {"prompt_tokens": words, "total_tokens": words}})


def encode_vector(vector: list[float], as_base64: bool) -> list[float] | str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector


async def list_models(app: StandInApp, request: Request, send: Send) -> None:
    await send_json(send, 200, {"object": "list", "data": [
        {"id": MODEL_ID, "object": "model", "created": 1700000000, "owned_by": "stand-in"}]})


Handler = Callable[["StandInApp", Request, Send], Awaitable[None]]
ROUTES: dict[str, tuple[str, Handler]] = {
    path: route
    for route, paths in [(("POST", chat_completions), ("/v1/chat/completions", "/chat/completions")),
                         (("POST", completions), ("/v1/completions", "/completions")),
                         (("POST", embeddings), ("/v1/embeddings", "/embeddings")),
                         (("GET", list_models), ("/v1/models", "/models"))]
    for path in paths
}


# The ASGI application ---------------------------------------------------------------------------


class StandInApp:
    """The raw ASGI app. State lives in memory: run it in a single process (no workers)."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.recorded: deque[Request] = deque(maxlen=MAX_RECORDED)
        self.behaviour = Behaviour()
        self.released = asyncio.Event()  # set whenever requests are not held
        self.released.set()

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
            await send_json(send, 400, error_json(str(exc), "invalid_request_error"))

    async def api(self, request: Request, send: Send) -> None:
        route = ROUTES.get(request.path)
        if route is None:
            await send_json(send, 404, error_json(f"Unknown path {request.path}", "invalid_request_error",
                                                  "unknown_url"))
            return
        method, handler = route
        if request.method != method:
            await send_json(send, 405, error_json(f"Use {method} for {request.path}", "invalid_request_error"))
            return
        if self.behaviour.delay_ms:
            await asyncio.sleep(self.behaviour.delay_ms / 1000)
        await self.released.wait()
        if await self.injected_failure(send):
            return
        if not self.authorized(request.headers):
            await send_json(send, 401, error_json("Incorrect API key provided", "invalid_request_error",
                                                  "invalid_api_key"))
            return
        await handler(self, request, send)

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

    def authorized(self, headers: dict[str, str]) -> bool:
        if self.api_key is None:
            return True
        return headers.get("authorization") == f"Bearer {self.api_key}" or headers.get("api-key") == self.api_key

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
                self.behaviour = Behaviour()
            if self.behaviour.hold:
                self.released.clear()
            else:
                self.released.set()
            await send_json(send, 200, self.behaviour)
        else:
            await send_json(send, 404, error_json(f"Unknown control endpoint {request.method} {request.path}",
                                                  "invalid_request_error"))


# Test-side client -------------------------------------------------------------------------------


class StandInClient:
    """Drives a running stand-in from a test: what did it receive, and how should it misbehave.

        upstream = StandInClient("http://127.0.0.1:8911")
        upstream.behave(status=503, times=2, retry_after=1)
        ...
        assert upstream.requests()[-1]["body"]["model"] == "gpt-4o"
    """

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        import httpx2  # the server itself does not need it

        self.base_url = base_url.rstrip("/")
        self._http = httpx2.Client(base_url=self.base_url + CONTROL_PREFIX.rstrip("/"), timeout=timeout,
                                   trust_env=False)

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """The recorded API requests, oldest first (only those to ``path`` if given)."""
        recorded = self._call("GET", "/requests")
        return [r for r in recorded if path is None or r["path"] == path]

    def wait_for_requests(self, count: int, path: str | None = None, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Poll until at least ``count`` requests (to ``path``) were recorded; returns them."""
        deadline = time.monotonic() + timeout
        while len(recorded := self.requests(path)) < count:
            if time.monotonic() >= deadline:
                raise AssertionError(f"the stand-in received {len(recorded)} requests to {path or 'any path'} "
                                     f"within {timeout:g}s, expected {count}: {[r['path'] for r in recorded]}")
            time.sleep(0.02)
        return recorded

    def clear(self) -> None:
        self._call("DELETE", "/requests")

    def behave(self, **settings: Any) -> dict[str, Any]:
        """Merge failure-injection settings (see Behaviour); returns the behaviour now in force."""
        return self._call("POST", "/behaviour", json=settings)

    def behaviour(self) -> dict[str, Any]:
        return self._call("GET", "/behaviour")

    def reset(self) -> None:
        """Normal behaviour again; the recorded requests are kept (see clear())."""
        self._call("DELETE", "/behaviour")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> StandInClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code != 200:
            raise RuntimeError(f"stand-in {method} {path} answered {response.status_code}: {response.text}")
        return response.json()


# Command line -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A stand-in LLM provider speaking OpenAI's API, for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (or 'api-key: KEY') on API calls")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    import uvicorn

    print(f"stand-in upstream on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(StandInApp(api_key=args.api_key), host=args.host, port=args.port, log_level=args.log_level,
                lifespan="off", access_log=False)


if __name__ == "__main__":
    main()
