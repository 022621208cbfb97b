"""A bare HTTP/1.1 server whose connection handling a test can see and script: how many TCP connections
it accepted, answers held back, large bodies, server-sent events, connections it closes while idle.
For the upstream client's network layer (proxy/http.py), where a framework would hide exactly that.

    python -m tests.servers.raw_http --port 8912 [--tls-cert cert.pem --tls-key key.pem]

Every request is answered according to its path (any method; a request body is read and counted):
    /health                 200 "ok"
    /connections            JSON {"accepted": N, "open": M, "held": H}: TCP connections accepted so far,
                            open now; /slow answers not sent yet
    /echo                   200, the request body back (any size)
    /bytes/N                200, N bytes of "x"
    /slow/MS                200 "late" after MS milliseconds
    /sse/N                  chunked SSE: N "data: {...}" events, then "data: [DONE]", then the body's
                            end, all in one write
    /sse-late-end/N         the same, but the body's end 300 ms after [DONE]
    /close-after            200 "bye", then the server closes the (keep-alive) connection 50 ms later
"""
from __future__ import annotations

import argparse
import asyncio
import ssl

import orjson

_counts = {"accepted": 0, "open": 0, "held": 0}  # held: /slow answers not sent yet


def _response(status: int, body: bytes, content_type: bytes = b"text/plain") -> bytes:
    return (b"HTTP/1.1 %d OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n" % (status, content_type, len(body))
            + body)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        _counts["accepted"] += 1
        _counts["open"] += 1

    def connection_lost(self, exc) -> None:
        _counts["open"] -= 1
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buffer) < head_end + 4 + length:
                return
            body = self.buffer[head_end + 4:head_end + 4 + length]
            self.buffer = self.buffer[head_end + 4 + length:]
            self.answer(head[0].split(" ")[1], body)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def answer(self, path: str, body: bytes) -> None:
        loop = asyncio.get_running_loop()
        parts = path.strip("/").split("/")
        if parts[0] == "connections":
            self.write(_response(200, orjson.dumps(_counts), b"application/json"))
        elif parts[0] == "echo":
            self.write(_response(200, body, b"application/octet-stream"))
        elif parts[0] == "bytes":
            self.write(_response(200, b"x" * int(parts[1])))
        elif parts[0] == "slow":
            _counts["held"] += 1
            loop.call_later(int(parts[1]) / 1000, self.late, _response(200, b"late"))
        elif parts[0] in ("sse", "sse-late-end"):
            events = [b"data: " + orjson.dumps({"index": i}) + b"\n\n" for i in range(int(parts[1]))]
            events.append(b"data: [DONE]\n\n")
            head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            data = head + b"".join(_chunk(event) for event in events)
            if parts[0] == "sse":
                self.write(data + b"0\r\n\r\n")
            else:
                self.write(data)
                loop.call_later(0.3, self.write, b"0\r\n\r\n")
        elif parts[0] == "close-after":
            self.write(_response(200, b"bye"))
            loop.call_later(0.05, self.close)
        else:
            self.write(_response(200, b"ok"))

    def late(self, data: bytes) -> None:
        _counts["held"] -= 1
        self.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def serve(host: str, port: int, tls: ssl.SSLContext | None) -> None:
    server = await asyncio.get_running_loop().create_server(Connection, host, port, ssl=tls)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    asyncio.run(serve(args.host, args.port, tls))


if __name__ == "__main__":
    main()
