"""One pooled ``httpx2.AsyncClient`` per upstream base URL, opened lazily, closed on shutdown.

The clients are httpx2's, with httpcore2's connection pool and HTTP/1.1 implementation; only the network
layer under them is ours: ``AsyncioBackend`` plugs into httpcore2's documented ``network_backend`` hook
and talks to the socket through a plain asyncio protocol instead of anyio's streams. Measured on the
bench (docs/performance.md, "Profile"), that layer was where the upstream client's CPU went:

- httpcore2 asks every idle pooled connection "is the socket readable?" each time it assigns a request
  (twice per request); anyio answers with a ``poll`` system call after building a dict of its socket
  attributes. The protocol here already knows: the event loop has told it about any bytes or EOF
  that arrived, so the answer is two attribute reads.
- anyio opens a cancel scope around every read and write (for the timeout) and yields to the event loop
  before every send; here a read with a timeout arms one timer, a write is ``transport.write``.
- httpcore2 writes a request's head and body separately; they are held and sent in one ``write`` when
  the response is first read (always the next thing httpcore2 does), so a request costs one send.

Timeouts, errors and the pool's behaviour are httpcore2's: the stream raises httpcore2's ``ReadTimeout``,
``ReadError``, ``WriteError``, ``ConnectTimeout``, ``ConnectError``, which httpx2 maps to its own.
"""
from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2

# Request bytes held back until the response is read; above this a write goes out at once.
_HOLD_BYTES = 64 * 1024
# Unread response bytes at which the socket stops being read (flow control), and resumes below half.
_PAUSE_BYTES = 512 * 1024


class AsyncioStream(asyncio.Protocol, httpcore2.AsyncNetworkStream):
    """One TCP (or TLS) connection as an httpcore2 network stream, on an asyncio protocol."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._chunks: list[bytes] = []  # received, not yet read
        self._buffered = 0
        self._pending: list[bytes] = []  # written, not yet sent (see write)
        self._pending_bytes = 0
        self._eof = False
        self._lost = False
        self._error: BaseException | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._waiter: asyncio.Future | None = None  # a read waiting for data
        self._drain: asyncio.Future | None = None  # a write waiting for the transport's buffer to drain

    # asyncio.Protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _PAUSE_BYTES and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = self._eof = True
        self._error = exc
        self._wake()
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # httpcore2.AsyncNetworkStream ------------------------------------------------------------------

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._pending:
            try:
                await self._flush(timeout)
            except httpcore2.WriteError:
                pass  # as httpcore2 does for a failed write: read what the upstream said, if anything
        if not self._chunks:
            if self._eof:
                if self._error is not None:
                    raise httpcore2.ReadError(str(self._error) or type(self._error).__name__)
                return b""
            await self._wait(timeout)
            if not self._chunks:  # EOF or a reset while waiting
                if self._error is not None:
                    raise httpcore2.ReadError(str(self._error) or type(self._error).__name__)
                return b""
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if len(data) > max_bytes:
            self._chunks = [data[max_bytes:]]
            data = data[:max_bytes]
        else:
            self._chunks = []
        self._buffered -= len(data)
        if self._reading_paused and self._buffered <= _PAUSE_BYTES // 2 and not self._lost:
            self._reading_paused = False
            self._transport.resume_reading()
        return data

    async def _wait(self, timeout: float | None) -> None:
        waiter = self._waiter = self._loop.create_future()
        if timeout is None:
            await waiter
            return
        timer = self._loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
        if waiter.result() is _TIMED_OUT:
            raise httpcore2.ReadTimeout(f"no data from the upstream within {timeout:g}s")

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._lost or self._transport is None or self._transport.is_closing():
            raise httpcore2.WriteError("the connection is closed")
        # httpcore2 reads the response right after writing a request: hold small writes (the head, a
        # body) and send them together from read(). Large bodies go out as they come, with back-pressure.
        self._pending.append(buffer)
        self._pending_bytes += len(buffer)
        if self._pending_bytes > _HOLD_BYTES:
            await self._flush(timeout)

    async def _flush(self, timeout: float | None) -> None:
        pending = self._pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        self._pending, self._pending_bytes = [], 0
        if self._lost:
            raise httpcore2.WriteError("the connection is closed")
        self._transport.write(data)
        if self._writing_paused and not self._lost:
            drain = self._drain = self._loop.create_future()
            timer = self._loop.call_later(timeout, _expire, drain) if timeout is not None else None
            try:
                await drain
            finally:
                if timer is not None:
                    timer.cancel()
            if drain.result() is _TIMED_OUT:
                raise httpcore2.WriteTimeout(f"could not send to the upstream within {timeout:g}s")
        if self._lost and self._error is not None:
            raise httpcore2.WriteError(str(self._error) or type(self._error).__name__)

    async def aclose(self) -> None:
        self._pending = []
        if self._transport is not None and not self._lost:
            self._transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore2.AsyncNetworkStream:
        try:
            transport = await self._loop.start_tls(self._transport, self, ssl_context, server_hostname=server_hostname,
                                                   ssl_handshake_timeout=timeout)
        except (TimeoutError, asyncio.TimeoutError):
            await self.aclose()
            raise httpcore2.ConnectTimeout("the TLS handshake timed out") from None
        except (OSError, ssl.SSLError) as exc:
            await self.aclose()
            raise httpcore2.ConnectError(str(exc)) from exc
        self._transport = transport
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # Bytes or EOF on an idle connection: the upstream closed it (or broke the protocol).
            return self._eof or bool(self._chunks)
        transport = self._transport
        if transport is None:
            return None
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        return None


_TIMED_OUT = object()


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(_TIMED_OUT)


class AsyncioBackend(httpcore2.AsyncNetworkBackend):
    """httpcore2's network backend on the running asyncio loop (uvloop in the server)."""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, stream = await loop.create_connection(lambda: AsyncioStream(loop), host, port,
                                                         local_addr=(local_address, 0) if local_address else None)
        except TimeoutError:
            raise httpcore2.ConnectTimeout(f"could not connect within {timeout:g}s") from None
        except OSError as exc:
            raise httpcore2.ConnectError(str(exc) or type(exc).__name__) from exc
        for option in socket_options or ():  # asyncio already sets TCP_NODELAY
            stream.get_extra_info("socket").setsockopt(*option)
        return stream

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, stream = await loop.create_unix_connection(lambda: AsyncioStream(loop), path)
        except TimeoutError:
            raise httpcore2.ConnectTimeout(f"could not connect within {timeout:g}s") from None
        except OSError as exc:
            raise httpcore2.ConnectError(str(exc) or type(exc).__name__) from exc
        return stream

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class UpstreamTransport(httpx2.AsyncHTTPTransport):
    """httpx2's transport and httpcore2's pool (HTTP/1.1), on ``AsyncioBackend``."""

    def __init__(self, *, limits: httpx2.Limits, verify: ssl.SSLContext | bool = True) -> None:
        # Not super().__init__(): it would build a second pool (and SSL context) only to drop it. The
        # inherited methods use nothing but the pool.
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections, max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry, http1=True, http2=False, network_backend=AsyncioBackend())


class ClientPool:
    def __init__(self, *, timeout: float, max_connections: int = 1000) -> None:
        self._timeout = timeout
        # Idle connections kept per upstream: enough for a worker's concurrent calls to one upstream,
        # each pooled connection costs a little on every request (the pool walks them).
        self._limits = httpx2.Limits(max_connections=max_connections, max_keepalive_connections=200,
                                     keepalive_expiry=30)
        # Keyed by event loop too: a client's connections belong to the loop that opened them
        # (one loop per server process; tests may run several).
        self._clients: dict[tuple[int, str], httpx2.AsyncClient] = {}

    def get(self, base_url: str) -> httpx2.AsyncClient:
        key = (id(asyncio.get_running_loop()), base_url)
        client = self._clients.get(key)
        if client is None:
            client = httpx2.AsyncClient(base_url=base_url, timeout=self._timeout, follow_redirects=False,
                                        trust_env=False, transport=UpstreamTransport(limits=self._limits))
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        loop_id = id(asyncio.get_running_loop())
        for key in [k for k in self._clients if k[0] == loop_id]:
            await self._clients.pop(key).aclose()
