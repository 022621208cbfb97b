"""A fast stand-in LLM upstream for benchmarks: OpenAI's chat wire format on a bare asyncio protocol.

    python -m bench.upstream --port 8950 [--latency-ms 0] [--chunks 20]

Unlike ``tests.servers.fake_upstream`` (uvicorn, records every request, failure injection), this one
does as little as it can per request, so that "direct" is the ceiling the harness can drive and
not a second server under test. httptools parses (keep-alive, any body framing); uvloop runs the loop
when installed.

Any POST answers a chat completion; with ``"stream": true`` it answers ``chunks`` SSE content chunks,
a finish chunk, a usage chunk when ``stream_options.include_usage`` is set, then ``[DONE]``. The
latency and chunk count of one request can be set in the path, before the API path, so that one
process serves several configurations to gateways that only know a base URL:

    POST /l50/c20/v1/chat/completions      50 ms before the answer, 20 content chunks
    POST /v1/chat/completions              the command line's defaults
    GET  /health                           200 (readiness probe)

Every answer has a fresh ``id`` (a gateway may key its spend rows on it) and usage of 10 + ``chunks``
tokens.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import time

import httptools
import orjson

PROMPT_TOKENS = 10
_ids = itertools.count(1)
_PREFIX = re.compile(rb"^/l(\d+)/c(\d+)(/.*)?$")
_HEALTH = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n"
           b'{"status":"ok"}')
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_STREAM_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                b"transfer-encoding: chunked\r\n\r\n")


def _usage(chunks: int) -> dict[str, int]:
    return {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": chunks, "total_tokens": PROMPT_TOKENS + chunks}


def completion(model: str, chunks: int) -> bytes:
    """A whole non-streamed answer, status line to body."""
    body = orjson.dumps({
        "id": f"chatcmpl-bench-{next(_ids)}", "object": "chat.completion", "created": int(time.time()),
        "model": model, "system_fingerprint": None,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(["word"] * chunks)},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": _usage(chunks)})
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


def stream(model: str, chunks: int, include_usage: bool) -> bytes:
    """A whole streamed answer: headers and every SSE event, each event its own HTTP chunk."""
    base = {"id": f"chatcmpl-bench-{next(_ids)}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "system_fingerprint": None}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "logprobs": None, "finish_reason": None}]}]
    events += [{**base, "choices": [{"index": 0, "delta": {"content": "word "}, "logprobs": None,
                                     "finish_reason": None}]} for _ in range(chunks)]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
    if include_usage:
        events.append({**base, "choices": [], "usage": _usage(chunks)})
    parts = [_STREAM_HEAD]
    for data in [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]:
        parts.append(b"%x\r\n%s\r\n" % (len(data), data))
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


class Settings:
    def __init__(self, latency_ms: int, chunks: int) -> None:
        self.latency_ms = latency_ms
        self.chunks = chunks


class StandIn(asyncio.Protocol):
    """One connection: parse requests with httptools, answer each after its latency."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(_BAD)
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.body = b"", []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        latency_ms, chunks, path = self.settings.latency_ms, self.settings.chunks, self.url.split(b"?", 1)[0]
        prefixed = _PREFIX.match(path)
        if prefixed:
            latency_ms, chunks, path = int(prefixed[1]), int(prefixed[2]), prefixed[3] or b"/"
        answer = self.answer(path, b"".join(self.body), chunks)
        if latency_ms:
            asyncio.get_running_loop().call_later(latency_ms / 1000, self.send, answer)
        else:
            self.send(answer)

    def answer(self, path: bytes, raw: bytes, chunks: int) -> bytes:
        if self.parser.get_method() != b"POST":
            return _HEALTH if path in (b"/health", b"/") else _NOT_FOUND
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _BAD
        model = str(body.get("model") or "bench-model")
        if body.get("stream") is True:
            options = body.get("stream_options")
            return stream(model, chunks, isinstance(options, dict) and options.get("include_usage") is True)
        return completion(model, chunks)

    def send(self, answer: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)
            if answer is _BAD:
                self.transport.close()

    def connection_lost(self, exc) -> None:
        self.transport = None


def run(coro) -> None:
    """``asyncio.run`` on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


async def serve(host: str, port: int, settings: Settings) -> None:
    server = await asyncio.get_running_loop().create_server(lambda: StandIn(settings), host, port, backlog=2048)
    print(f"bench stand-in upstream on http://{host}:{port} (latency {settings.latency_ms} ms, "
          f"{settings.chunks} chunks)", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fast stand-in OpenAI-format upstream for benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=int, default=0, help="default latency before each answer")
    parser.add_argument("--chunks", type=int, default=20, help="default content chunks of a streamed answer")
    args = parser.parse_args(argv)
    try:
        run(serve(args.host, args.port, Settings(args.latency_ms, args.chunks)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
