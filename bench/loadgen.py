"""An asyncio HTTP/1.1 load generator, keep-alive: closed loop (one connection per concurrent client, each
sending its next request when the last is answered) or open loop (``--rate``: requests arrive at random,
a Poisson process of that many per second, whatever the answers do).

    python -m bench.loadgen --url http://127.0.0.1:4000/chat/completions --body-file b.json \
        [--body-file stream.json ...] (--concurrency 10 | --rate 1000) (--duration 10 | --requests 100000) \
        [--header 'authorization: Bearer sk-…'] [--progress-every 5000]

Open loop, each request goes out on an idle connection (``--concurrency`` of them opened beforehand; a new
one when none is idle) at its arrival time, and its latency counts from that time; the summary adds the
mean number of requests in flight.

Prints one JSON summary line at the end (``{"requests": …, "latency_ms": {…}, "ttfb_ms": {…}}``) and,
with ``--progress-every``, ``{"progress": N}`` lines on the way (the soak samples memory on them).
Several body files are used in turn, request by request. ``ttfb`` is the time to the first byte of
the response body: for a stream, its first event. Used where wrk cannot be (time to first byte, a
fixed request count) and by ``bench --smoke``, so that the harness works without wrk. Responses are
parsed with httptools and never decoded, to keep the generator's own CPU low.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from urllib.parse import urlsplit

import httptools


class Exchange:
    """What one request/response timed: status, first body byte, end (perf_counter seconds)."""

    __slots__ = ("started", "first_byte", "status", "done")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.started = time.perf_counter()
        self.first_byte = 0.0
        self.status = 0
        self.done = loop.create_future()


class Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.current: Exchange | None = None
        self.keep_alive = True

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, raw: bytes, loop: asyncio.AbstractEventLoop) -> Exchange:
        self.current = exchange = Exchange(loop)
        self.transport.write(raw)
        return exchange

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def on_body(self, body: bytes) -> None:
        if self.current is not None and not self.current.first_byte:
            self.current.first_byte = time.perf_counter()

    def on_message_complete(self) -> None:
        exchange, self.current = self.current, None
        if exchange is not None and not exchange.done.done():
            exchange.status = self.parser.get_status_code()
            self.keep_alive = self.parser.should_keep_alive()
            exchange.done.set_result(time.perf_counter())

    def connection_lost(self, exc) -> None:
        self.transport = None
        self._fail(exc or ConnectionResetError("the server closed the connection"))

    def _fail(self, exc: BaseException) -> None:
        exchange, self.current = self.current, None
        if exchange is not None and not exchange.done.done():
            exchange.done.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        url = urlsplit(args.url)
        self.host, self.port = url.hostname, url.port or 80
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        headers = "".join(f"{h.strip()}\r\n" for h in args.header)
        self.requests: list[bytes] = []
        for name in args.body_file:
            with open(name, "rb") as handle:
                body = handle.read()
            self.requests.append((f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
                                  f"content-type: application/json\r\n{headers}content-length: {len(body)}\r\n\r\n"
                                  ).encode() + body)
        self.concurrency, self.progress_every = args.concurrency, args.progress_every
        self.rate = args.rate
        self.limit = args.requests
        self.deadline = time.perf_counter() + args.duration if args.duration else None
        self.issued = self.completed = self.errors = 0
        self.statuses: dict[int, int] = {}
        self.latencies: list[float] = []
        self.ttfbs: list[float] = []

    def next_request(self) -> bytes | None:
        if self.limit is not None and self.issued >= self.limit:
            return None
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return None
        raw = self.requests[self.issued % len(self.requests)]
        self.issued += 1
        return raw

    async def usable(self, conn: Connection | None) -> Connection:
        """``conn`` when it can carry another request; else a new connection (``conn`` closed)."""
        if conn is not None and conn.transport is not None and conn.keep_alive:
            return conn
        if conn is not None and conn.transport is not None:
            conn.transport.close()
        _, conn = await asyncio.get_running_loop().create_connection(Connection, self.host, self.port)
        return conn

    async def client(self) -> None:
        loop = asyncio.get_running_loop()
        conn: Connection | None = None
        while (raw := self.next_request()) is not None:
            try:
                conn = await self.usable(conn)
                exchange = conn.send(raw, loop)
                ended = await exchange.done
            except (OSError, httptools.HttpParserError):
                self.errors += 1
                conn = None
                await asyncio.sleep(0.01)  # a refused connection must not spin
                continue
            self.record(exchange, ended, exchange.started)
            if self.progress_every and self.completed % self.progress_every == 0:
                print(json.dumps({"progress": self.completed}), flush=True)
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    def record(self, exchange: Exchange, ended: float, since: float) -> None:
        self.statuses[exchange.status] = self.statuses.get(exchange.status, 0) + 1
        if 200 <= exchange.status < 300:
            self.latencies.append(ended - since)
            self.ttfbs.append((exchange.first_byte or ended) - since)
        else:
            self.errors += 1
        self.completed += 1

    async def arrivals(self) -> None:
        """Open loop: requests at the times of a Poisson process (seeded: every run the same arrivals)."""
        loop = asyncio.get_running_loop()
        gaps, calls = random.Random(7), set()
        # --concurrency connections opened beforehand: the first arrivals do not time a connect.
        idle = [conn for _, conn in await asyncio.gather(*(loop.create_connection(Connection, self.host, self.port)
                                                           for _ in range(self.concurrency)))]
        due = time.perf_counter()

        async def call(raw: bytes, arrived: float) -> None:
            try:
                conn = await self.usable(idle.pop() if idle else None)
                exchange = conn.send(raw, loop)
                ended = await exchange.done
            except (OSError, httptools.HttpParserError):
                self.errors += 1
                return
            self.record(exchange, ended, arrived)
            idle.append(conn)

        while (raw := self.next_request()) is not None:
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            task = asyncio.create_task(call(raw, due))
            calls.add(task)
            task.add_done_callback(calls.discard)
            due += gaps.expovariate(self.rate)
        await asyncio.gather(*calls)
        for conn in idle:
            if conn.transport is not None:
                conn.transport.close()

    async def run(self) -> dict:
        started = time.perf_counter()
        if self.rate:
            await self.arrivals()
        else:
            await asyncio.gather(*(self.client() for _ in range(self.concurrency)))
        elapsed = time.perf_counter() - started
        ok = len(self.latencies)
        result = {"requests": self.completed, "ok": ok, "errors": self.errors, "statuses": self.statuses,
                  "duration_s": elapsed, "rps": ok / elapsed if elapsed else 0.0,
                  "latency_ms": summarise(self.latencies), "ttfb_ms": summarise(self.ttfbs)}
        if self.rate:   # Little's law: the mean number of requests in flight
            result["mean_in_flight"] = sum(self.latencies) / elapsed if elapsed else 0.0
        return result


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    index = min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


def summarise(seconds: list[float]) -> dict[str, float] | None:
    if not seconds:
        return None
    ordered = sorted(seconds)
    return {"p50": percentile(ordered, 50) * 1000, "p90": percentile(ordered, 90) * 1000,
            "p99": percentile(ordered, 99) * 1000, "mean": statistics.fmean(ordered) * 1000,
            "max": ordered[-1] * 1000}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="asyncio HTTP load generator, closed or open loop (JSON summary).")
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", action="append", required=True, help="JSON body; repeat to alternate")
    parser.add_argument("--header", action="append", default=[], help="'name: value'; repeatable")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="closed loop: clients, one connection each; open loop: connections opened beforehand")
    parser.add_argument("--rate", type=float, help="open loop: Poisson arrivals, requests per second")
    parser.add_argument("--duration", type=float, help="seconds to run")
    parser.add_argument("--requests", type=int, help="requests to send in all")
    parser.add_argument("--progress-every", type=int, default=0)
    args = parser.parse_args(argv)
    if (args.duration is None) == (args.requests is None):
        parser.error("give exactly one of --duration and --requests")
    from bench.upstream import run
    result: dict = {}

    async def go() -> None:
        result.update(await Load(args).run())

    run(go())
    print(json.dumps(result), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
