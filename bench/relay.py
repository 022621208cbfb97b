"""The floor: a bare ASGI relay with none of the gateway's features, measured beside it by the bench.

    python -m bench.relay --port 8960 --upstream http://127.0.0.1:8950 --chunks 20

uvicorn (uvloop, httptools) serving one ASGI function: it reads the body, takes the model from it with
orjson (``bench-l<ms>`` names the stand-in's latency, as the gateway's bench config does), and forwards the
same bytes the way the gateway's providers call out (``proxy.http``: ``ClientPool.post`` with a request
prepared once per URL, on the gateway's transport); the answer's bytes go back as they come, streamed or not.
No Django, no key, no budget, no spend log: what any Python ASGI relay on this machine adds, against which
the gateway's own cost can be read (docs/performance.md, "The floor").
"""
from __future__ import annotations

import argparse

import httpx2
import orjson
import uvicorn

from proxy.http import ClientPool, Post

TIMEOUTS = httpx2.Timeout(60).as_dict()


class Relay:
    def __init__(self, upstream: str, chunks: int) -> None:
        self.upstream = upstream.rstrip("/")
        self.chunks = chunks   # the stand-in's stream length, as bench.run configures the gateway's models
        self.pool = ClientPool(timeout=60)
        self.posts: dict[str, Post] = {}   # by latency

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        model = orjson.loads(body).get("model", "")
        latency = model.removeprefix("bench-l") if model.startswith("bench-l") else "0"
        base = f"{self.upstream}/l{latency}/c{self.chunks}/v1"
        post = self.posts.get(latency)
        if post is None:
            post = self.posts[latency] = self.pool.prepare(base, f"{base}/chat/completions",
                                                           {"content-type": "application/json"})
        response = await self.pool.post(base, post, body, TIMEOUTS, stream=True)
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": [(b"content-type", response.header(b"content-type"))]})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.pool.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the stand-in's base URL")
    parser.add_argument("--chunks", type=int, required=True, help="content chunks per stream (the stand-in's /c<n>/)")
    args = parser.parse_args()
    uvicorn.run(Relay(args.upstream, args.chunks), host=args.host, port=args.port, log_level="warning", ws="none",
                server_header=False, lifespan="on")


if __name__ == "__main__":
    main()
