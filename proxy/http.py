"""One pooled ``httpx2.AsyncClient`` per upstream base URL, on an HTTP/1.1 transport of our own.

httpx2 stays the client API (requests, responses, timeouts, exceptions); under it, ``UpstreamTransport``
(an ``httpx2.AsyncBaseTransport``) replaces httpcore2: a connection pool per origin, and connections
that are asyncio protocols parsing responses with httptools (llhttp, the C parser uvicorn uses).

Why (docs/performance.md, "The upstream client"): on the bench, httpcore2 under httpx2 — h11's pure-Python
parsing and serialising, anyio locks and cancel scopes around every read and write, the pool's bookkeeping
of request/connection pairs — took about a third of the event loop's samples, the whole upstream client
about half. Here a request is one header join and one ``transport.write``; the response head and body are
parsed in C as the bytes arrive (``data_received``), and the call waits on one future, with one timer for
its timeout. Measured on the bench, old and new interleaved: the gateway's median CPU per request fell by
19–29 % non-streamed (0.4–0.55 ms) and 39–48 % streamed (1.65–1.75 ms); the upstream client went from
about half of the event loop's busy samples to a fifth to a quarter (docs/performance.md).

What it does:

- **Pool per origin** (scheme, host, port) with httpx2's ``Limits``: at most ``max_connections`` open,
  at most ``max_keepalive_connections`` idle, idle ones closed after ``keepalive_expiry`` seconds. A
  connection goes back to the pool only when its response was read to the end and both sides allow
  keep-alive (not ``Connection: close``, not HTTP/1.0 without keep-alive, not a read-until-close body,
  no stray bytes after the response, the whole request sent). A connection the upstream closed, or sent
  bytes on, while idle is dropped the moment the event loop reports it, so it is never handed out. When
  every connection is busy a call waits, up to the pool timeout (``httpx2.PoolTimeout``); a released
  connection goes straight to the first waiter.
- **Requests**: the head (and a body given as bytes) in one write; a streamed body (an async iterable,
  e.g. pass-through uploads) chunk by chunk, waiting while the socket's buffer is full (back-pressure),
  framed as chunks when httpx2 chose ``Transfer-Encoding: chunked``. Refused before anything is sent
  (``httpx2.LocalProtocolError``): CR, LF or NUL in a header (no header injection), a body that does not
  match its Content-Length (the upstream would read the difference as another request).
- **Responses**: status, reason, headers (raw bytes, order and repeats kept), bodies by Content-Length,
  chunked or until the connection closes; no body for HEAD, 1xx, 204 and 304; interim 1xx responses
  skipped. The body is an ``httpx2.AsyncByteStream`` handing out what has arrived as it arrives (SSE is
  relayed chunk by chunk); reading pauses while more than ``_PAUSE_BYTES`` are unread.
- **Timeouts** from the request's ``extensions["timeout"]``: connect (TCP and TLS handshake), write (per
  wait for the socket to drain), read (per wait for bytes), pool. Failures are httpx2's exceptions:
  ``ConnectError``/``ConnectTimeout``, ``WriteError``/``WriteTimeout``, ``ReadError``/``ReadTimeout``,
  ``RemoteProtocolError`` for a malformed response or one cut short.
- **TLS** through ``loop.create_connection(ssl=...)``, SNI and certificate check against the URL's host,
  one SSL context shared by every client of a ``ClientPool`` (about 0.8 MB saved per extra upstream).
- A response closed before its end, or a call cancelled, closes its connection (never pooled half-read);
  ``aclose()`` closes every connection.

Not supported (not needed by the gateway): HTTP/2, proxies, protocol upgrades (a 101 is a protocol error).
"""
from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any, NamedTuple

import httptools
import httpx2

# A request body up to this size goes out in the same write as the head.
_HOLD_BYTES = 64 * 1024
# Unread response bytes at which the socket stops being read (flow control); reading resumes when the
# reader has taken them.
_PAUSE_BYTES = 512 * 1024
_DEFAULT_PORTS = {b"http": 80, b"https": 443}

_TIMED_OUT = object()  # a waiter's result when its timer fired
_SLOT = object()  # a pool waiter's result: a connection slot is free, open a new connection


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(_TIMED_OUT)


class SharedTLS:
    """One SSL context, built on first use, shared by the transports that are given this holder."""

    def __init__(self, verify: ssl.SSLContext | bool = True) -> None:
        self._verify = verify
        self._context: ssl.SSLContext | None = verify if isinstance(verify, ssl.SSLContext) else None

    def context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = httpx2.create_ssl_context(verify=self._verify, trust_env=False)
        return self._context


# The request head ----------------------------------------------------------------------------------


def _request_head(request: httpx2.Request) -> tuple[bytes, bool, bool, int | None]:
    """(head bytes, body chunked?, Connection: close asked?, Content-Length) for ``request``."""
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    chunked = close = False
    length = None
    for name, value in request.headers.raw:
        lines.append(name + b": " + value)
        size = len(name)
        if size == 17 or size == 14 or size == 10:
            lowered = name.lower()
            if lowered == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lowered == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif lowered == b"connection":
                close = b"close" in value.lower()
    lines.append(b"\r\n")
    head = b"\r\n".join(lines)
    # Exactly the line breaks we put there: a CR or LF inside a header would start a header (or a
    # request) of its own.
    breaks = len(lines)
    if head.count(b"\n") != breaks or head.count(b"\r") != breaks or b"\0" in head:
        raise httpx2.LocalProtocolError("a request header holds a line break or a NUL byte")
    return head, chunked, close, length


async def _whole_body(request: httpx2.Request, chunked: bool, length: int | None) -> bytes:
    """A body given as bytes, framed for the wire."""
    try:
        body = request.content
    except httpx2.RequestNotRead:
        body = b"".join([part async for part in request.stream])
    if chunked:
        return (_chunk(body) if body else b"") + b"0\r\n\r\n"
    if length != len(body) and (length is not None or body):
        # The upstream would read the difference as the next request.
        raise httpx2.LocalProtocolError("the request body does not match its Content-Length")
    return body


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Post:
    """POSTs of bytes to one URL with one set of headers (a deployment's calls), prepared once: the origin,
    and the request head but its Content-Length, made and checked as ``_request_head`` makes and checks
    every request's head. A call then costs two byte joins instead of an ``httpx2.Request``."""

    __slots__ = ("origin", "_start")

    def __init__(self, url: httpx2.URL, headers: httpx2.Headers) -> None:
        self.origin = (url.raw_scheme, url.raw_host, url.port)
        head, chunked, close, _ = _request_head(httpx2.Request("POST", url, headers=headers, content=b""))
        if chunked or close:
            raise httpx2.LocalProtocolError("a prepared POST is sent with a Content-Length, on a kept-alive "
                                            "connection")
        lines = [line for line in head[:-4].split(b"\r\n") if not line.lower().startswith(b"content-length:")]
        self._start = b"\r\n".join(lines) + b"\r\nContent-Length: "

    def head(self, length: int) -> bytes:
        return self._start + str(length).encode() + b"\r\n\r\n"


class Answer(NamedTuple):
    """A response read whole: status, headers (raw, in order), body (content-encoding undone)."""

    status_code: int
    headers: list[tuple[bytes, bytes]]
    content: bytes

    def as_response(self) -> httpx2.Response:
        """As an ``httpx2.Response`` (for error handling written for one), its body as it was read."""
        return httpx2.Response(self.status_code, content=self.content, headers=[
            (name, value) for name, value in self.headers
            if name.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")])


class StreamedAnswer:
    """A response whose body is read as it arrives (a stream), as the providers and the bench relay read one:
    status, headers (raw, in order), the body's parts (``stream``, ``aiter_raw``) and ``aclose``. Made in place
    of an ``httpx2.Response``, whose headers object and bookkeeping a stream's first event would wait for (~40
    µs of a cold call: docs/performance.md, "A stream's first event, sooner"); ``as_response`` gives one for
    code written for it (an error answer's handling). Only for a body as it is on the wire: a response with a
    content-encoding to undo comes as an ``httpx2.Response``."""

    __slots__ = ("status_code", "headers", "stream", "is_closed")

    def __init__(self, status_code: int, headers: list[tuple[bytes, bytes]], stream: _Body) -> None:
        self.status_code, self.headers, self.stream = status_code, headers, stream
        self.is_closed = False

    def header(self, name: bytes, default: bytes = b"") -> bytes:
        """The first value of the header ``name`` (lower-case), else ``default``."""
        return next((value for key, value in self.headers if key.lower() == name), default)

    def aiter_raw(self):
        return aiter(self.stream)

    async def aclose(self) -> None:
        self.is_closed = True
        await self.stream.aclose()

    def as_response(self) -> httpx2.Response:
        """As an ``httpx2.Response`` reading the same body (not yet read)."""
        return httpx2.Response(self.status_code, headers=self.headers, stream=self.stream)


# One connection ------------------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: an asyncio protocol feeding httptools' response parser, serving one
    request at a time for the call that holds it."""

    def __init__(self, origin: _Origin) -> None:
        self.origin = origin
        self._loop = origin.loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.idle = False  # in the origin's idle list
        self.idle_since = 0.0
        self.counted = False  # holds one of the origin's connection slots
        self.closed = False
        self._eof = False
        self._lost_error: BaseException | None = None
        self._waiter: asyncio.Future | None = None  # the call waiting for an event on this connection
        self._writing_paused = False
        self._reading_paused = False
        # The exchange in progress.
        self._busy = False  # a request is out and its final response is not complete
        self._head_only = False  # HEAD: the response has no body whatever its headers say
        self._sent = False  # the whole request went out
        self._status = 0
        self._version = b"HTTP/1.1"
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_done = False  # the final (non-1xx) response head has arrived
        self._complete = False  # ... and its body
        self._reusable = False  # keep-alive allowed by both sides, nothing stray received
        self._body: list[bytes] = []
        self._buffered = 0
        self._failure: tuple[type[Exception], str] | None = None  # what a reader raises
        self._close_after = False  # not reusable whatever the response says (Connection: close asked, ...)

    # asyncio.Protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self._busy:  # nothing was asked: an upstream talking out of turn is not reused
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx2.RemoteProtocolError, "the upstream switched protocols (not supported)")
        except httptools.HttpParserError as exc:
            self._fail(httpx2.RemoteProtocolError, f"malformed response from the upstream: {exc}")
        if self._buffered > _PAUSE_BYTES and not self._reading_paused and not self.closed:
            self._reading_paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._ended()
        return False  # asyncio closes the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._lost_error = exc
        self._ended()
        self._forget()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake()

    # httptools' callbacks -------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete or not self._busy:  # a second response to one request
            self._reusable = False
            self._fail(httpx2.RemoteProtocolError, "the upstream sent more than one response")
        self._reason = b""
        self._headers = []

    def on_status(self, status: bytes) -> None:
        self._reason += status  # may come in pieces

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # interim (100 Continue, 103 Early Hints): the final response follows
            return
        self._status = status
        self._head_done = True
        version = self._parser.get_http_version()
        self._version = b"HTTP/1.1" if version == "1.1" else b"HTTP/" + version.encode()
        if self._head_only:
            # The parser cannot be told the request was HEAD: the response ends here, and a fresh parser
            # takes the next one (anything this one still parses marks the connection as not reusable).
            self._complete = True
            self._reusable = self._parser.should_keep_alive()
            self._parser = httptools.HttpResponseParser(self)

    def on_body(self, body: bytes) -> None:
        if self._complete:
            self._reusable = False
            return
        self._body.append(body)
        self._buffered += len(body)

    def on_message_complete(self) -> None:
        if not self._head_done or self._complete:  # the end of a 1xx, or of a HEAD response
            return
        self._complete = True
        self._reusable = self._parser.should_keep_alive()

    # Events ----------------------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, kind: type[Exception], message: str) -> None:
        if self._failure is None:
            self._failure = (kind, message)
        self._reusable = False

    def _ended(self) -> None:
        """The upstream closed its side (or the connection is gone)."""
        if self._busy and not self._complete:
            if self._head_done and self._until_close():
                self._complete = True  # a body delimited by the connection's end: it ended
                self._reusable = False
            elif self._lost_error is not None and not isinstance(self._lost_error, ssl.SSLError):
                self._fail(httpx2.ReadError, str(self._lost_error) or type(self._lost_error).__name__)
            elif self._head_done:
                self._fail(httpx2.RemoteProtocolError, "the upstream closed the connection before the "
                                                       "response was complete")
            else:
                self._fail(httpx2.RemoteProtocolError, "the upstream closed the connection without "
                                                       "sending a response")
        self._reusable = False
        if self.idle:
            self.close()
        self._wake()

    def _until_close(self) -> bool:
        """The response's body is delimited by the connection's end (no length, not chunked)."""
        if self._status in (204, 304):
            return False
        return not any(name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self._headers)

    async def _wait(self, timeout: float | None, timeout_error: type[Exception], message: str) -> None:
        """Until the next event on this connection (bytes, EOF, socket writable), or ``timeout``."""
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
            raise timeout_error(message % timeout)

    # The exchange ----------------------------------------------------------------------------------

    async def exchange(self, head_only: bool, stream: Any, head: bytes, body: bytes | None, chunked: bool,
                       length: int | None, close: bool, timeouts: dict[str, float | None]) -> None:
        """Send a request (its ``head`` built, its ``body`` if given as bytes, else ``stream``) and wait for
        the final response's head (``_status``, ``_headers``); the body follows (``_Body``). ``head_only``:
        a HEAD request, whose response has no body. On any exception the caller closes the connection."""
        self._busy, self._head_only, self._sent, self._close_after = True, head_only, False, close
        self._head_done = self._complete = self._reusable = False
        self._reason, self._headers, self._failure = b"", [], None
        write_timeout = timeouts.get("write")
        transport = self._transport
        if body is not None:
            if len(body) <= _HOLD_BYTES:
                transport.write(head + body)
            else:
                transport.writelines((head, body))
            await self._drain(write_timeout)
            self._sent = not self.closed
        else:
            transport.write(head)
            await self._send_stream(stream, chunked, length, write_timeout)
        read_timeout = timeouts.get("read")
        while not self._head_done:
            if self._failure is not None:
                kind, message = self._failure
                if not self._sent and kind is not httpx2.RemoteProtocolError:
                    kind = httpx2.WriteError  # the connection broke while the request went out
                raise kind(message)
            if self._eof:
                raise httpx2.RemoteProtocolError("the upstream closed the connection without sending a response")
            await self._wait(read_timeout, httpx2.ReadTimeout, "no response from the upstream within %gs")
        if not self._sent:
            self._close_after = True

    def response(self, timeouts: dict[str, float | None]) -> httpx2.Response:
        """The response whose head ``exchange`` waited for, its body to be read as it arrives."""
        return httpx2.Response(self._status, headers=self._headers, stream=_Body(self, timeouts.get("read")),
                               extensions={"http_version": self._version, "reason_phrase": self._reason})

    async def _drain(self, timeout: float | None) -> None:
        """Until the socket takes more bytes, the upstream answers, or the connection is gone."""
        while self._writing_paused and not self.closed and not self._head_done and not self._eof:
            await self._wait(timeout, httpx2.WriteTimeout, "could not send to the upstream within %gs")

    async def _send_stream(self, stream: Any, chunked: bool, length: int | None, timeout: float | None) -> None:
        """A body from an async iterable: chunk-framed, or exactly ``length`` bytes (a body that does not
        match its Content-Length, or has neither, is refused: the upstream would read the difference as
        the next request)."""
        transport = self._transport
        left = 0 if length is None else length
        async for data in stream:
            if self.closed or self._eof or self._head_done:
                # The upstream answered (or hung up) before taking the whole body: stop sending; the
                # connection cannot carry another request.
                return
            if data:
                if chunked:
                    transport.write(_chunk(data))
                else:
                    left -= len(data)
                    if left < 0:
                        raise httpx2.LocalProtocolError("the request body is longer than its Content-Length")
                    transport.write(data)
                await self._drain(timeout)
        if chunked:
            if not self.closed:
                transport.write(b"0\r\n\r\n")
        elif left:
            raise httpx2.LocalProtocolError("the request body is shorter than its Content-Length")
        self._sent = not self.closed and not self._eof

    # Life cycle -------------------------------------------------------------------------------------

    def take_body(self) -> bytes:
        """What has arrived of the body and not been read (resumes reading if it was paused)."""
        chunks, self._body, self._buffered = self._body, [], 0
        if self._reading_paused and not self.closed:
            self._reading_paused = False
            self._transport.resume_reading()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def finish(self) -> None:
        """The response was read to its end: back to the pool if it can carry another request."""
        self._busy = False
        if self._reusable and not self._close_after and not self.closed and not self._eof:
            self.origin.release(self)
        else:
            self.close()

    def usable(self) -> bool:
        return not self.closed and not self._eof

    def close(self) -> None:
        if self.closed:
            return
        if self._busy and not self._complete:  # a call still reading it (the client is closing)
            self._fail(httpx2.ReadError, "the connection was closed")
        self.closed = True
        if self._transport is not None:
            self._transport.close()
        self._forget()
        self._wake()

    def abort(self) -> None:
        """Close at once, dropping anything not yet sent (a half-done exchange)."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()
        self.close()

    def _forget(self) -> None:
        self.closed = True
        if self.counted:
            self.counted = False
            self.origin.forget(self)


class _Body(httpx2.AsyncByteStream):
    """A response's body, handed out as it arrives; the connection goes back to the pool at its end."""

    def __init__(self, connection: _Connection, timeout: float | None) -> None:
        self._connection: _Connection | None = connection
        self._timeout = timeout

    async def __aiter__(self):
        connection = self._connection
        if connection is None:
            return
        try:
            while True:
                if connection._body:
                    data = connection.take_body()
                    if connection._complete:
                        self._finish()
                    yield data
                    if self._connection is None:
                        return
                elif connection._complete:
                    self._finish()
                    return
                elif connection._failure is not None:
                    kind, message = connection._failure
                    raise kind(message)
                elif connection._eof:
                    raise httpx2.RemoteProtocolError("the upstream closed the connection before the response "
                                                     "was complete")
                else:
                    await connection._wait(self._timeout, httpx2.ReadTimeout,
                                           "the upstream sent nothing for %gs")
        except BaseException:
            # Left early (a consumer stopping, a cancellation, an error): never pooled half-read.
            self._abandon()
            raise

    async def aclose(self) -> None:
        connection = self._connection
        if connection is None:
            return
        if connection._complete:  # all of it arrived, unread: the connection is still good
            connection.take_body()
            self._finish()
        else:
            self._abandon()

    def _finish(self) -> None:
        """Read to its end: the connection goes back to the pool (or is closed), no longer this body's."""
        connection, self._connection = self._connection, None
        connection.finish()

    def _abandon(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.abort()


# The pool --------------------------------------------------------------------------------------------


class _Origin:
    """The connections to one origin: at most ``max_connections``, idle ones reused newest first."""

    def __init__(self, transport: UpstreamTransport, scheme: bytes, host: str, port: int) -> None:
        self.loop = asyncio.get_running_loop()
        self._transport = transport
        self._host, self._port = host, port
        self._tls = scheme == b"https"
        limits = transport.limits
        self._max = limits.max_connections or 2**31
        self._max_idle = limits.max_keepalive_connections if limits.max_keepalive_connections is not None else 2**31
        self._expiry = limits.keepalive_expiry
        self.idle: list[_Connection] = []  # oldest first
        self.connections: set[_Connection] = set()  # every counted one, busy or idle
        self.count = 0  # connections open or being opened
        self._waiters: deque[asyncio.Future] = deque()
        self._sweeper: asyncio.TimerHandle | None = None

    async def acquire(self, timeouts: dict[str, float | None]) -> _Connection:
        idle = self.idle
        if idle:
            now = self.loop.time()
            while idle:
                connection = idle.pop()
                connection.idle = False
                if self._expiry is None or now - connection.idle_since < self._expiry:
                    return connection
                connection.close()
        if self.count < self._max:
            self.count += 1
            return await self._open(timeouts.get("connect"))
        return await self._wait(timeouts)

    async def _wait(self, timeouts: dict[str, float | None]) -> _Connection:
        timeout = timeouts.get("pool")
        waiter = self.loop.create_future()
        self._waiters.append(waiter)
        timer = self.loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            got = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed something just as we were cancelled
                self._give_back(waiter.result())
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if got is _TIMED_OUT:
            raise httpx2.PoolTimeout(f"no connection to the upstream free within {timeout:g}s")
        if got is _SLOT:
            return await self._open(timeouts.get("connect"))
        if not got.usable():  # the upstream closed it while it was on its way here
            got.close()
            return await self.acquire(timeouts)
        return got

    def _give_back(self, got: Any) -> None:
        if got is _SLOT:
            self.count -= 1
            self._hand_slot()
        elif isinstance(got, _Connection):
            self.release(got)

    async def _open(self, timeout: float | None) -> _Connection:
        """A new connection; the caller has counted it."""
        if self._transport.closed:
            self.count -= 1
            raise httpx2.ConnectError("the client is closed")
        tls = self._transport.tls.context() if self._tls else None
        try:
            async with asyncio.timeout(timeout):
                _, connection = await self.loop.create_connection(
                    lambda: _Connection(self), self._host, self._port, ssl=tls,
                    server_hostname=self._host if tls is not None else None)
        except BaseException as exc:
            self.count -= 1
            self._hand_slot()
            if isinstance(exc, TimeoutError):
                raise httpx2.ConnectTimeout(f"could not connect to the upstream within {timeout:g}s") from None
            if isinstance(exc, (OSError, ValueError)):
                raise httpx2.ConnectError(str(exc) or type(exc).__name__) from exc
            raise
        if connection.closed:  # lost during the handshake's last step
            self.count -= 1
            self._hand_slot()
            raise httpx2.ConnectError("the upstream closed the connection")
        connection.counted = True
        self.connections.add(connection)
        return connection

    def release(self, connection: _Connection) -> None:
        """A connection that can carry another request: to the first waiting call, or the idle list."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if len(self.idle) >= self._max_idle or self._transport.closed:
            connection.close()
            return
        connection.idle, connection.idle_since = True, self.loop.time()
        self.idle.append(connection)
        if self._sweeper is None and self._expiry is not None:
            self._sweeper = self.loop.call_later(self._expiry, self._sweep)

    def forget(self, connection: _Connection) -> None:
        """A counted connection closed: off the idle list; its slot to the first waiting call."""
        if connection.idle:
            connection.idle = False
            self.idle.remove(connection)
        self.connections.discard(connection)
        self.count -= 1
        self._hand_slot()

    def _hand_slot(self) -> None:
        while self._waiters and self.count < self._max:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.count += 1
                waiter.set_result(_SLOT)
                return

    def _sweep(self) -> None:
        """Close the connections idle for longer than the keep-alive expiry."""
        self._sweeper = None
        now = self.loop.time()
        while self.idle and now - self.idle[0].idle_since >= self._expiry:
            self.idle[0].close()
        if self.idle:
            self._sweeper = self.loop.call_at(self.idle[0].idle_since + self._expiry, self._sweep)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connection in list(self.connections):
            if connection.idle:
                connection.close()
            else:
                connection.abort()  # mid-exchange: its reader gets a ReadError


# The transport ---------------------------------------------------------------------------------------


class UpstreamTransport(httpx2.AsyncBaseTransport):
    """httpx2's transport API over ``_Origin`` pools of ``_Connection``s (HTTP/1.1 only)."""

    def __init__(self, *, limits: httpx2.Limits, verify: ssl.SSLContext | bool = True,
                 tls: SharedTLS | None = None) -> None:
        self.limits = limits
        self.tls = tls or SharedTLS(verify)
        self.closed = False
        self._origins: dict[tuple[bytes, bytes, int | None], _Origin] = {}

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        origin = self._origin_of((url.raw_scheme, url.raw_host, url.port))
        timeouts = request.extensions.get("timeout") or {}
        head, chunked, close, length = _request_head(request)  # refused before a connection is taken
        body = await _whole_body(request, chunked, length) if isinstance(request.stream, httpx2.ByteStream) else None
        connection = await self._sent(origin, timeouts, request.method == "HEAD", request.stream, head, body,
                                      chunked, length, close)
        return connection.response(timeouts)

    async def post(self, post: Post, body: bytes, timeouts: dict[str, float | None],
                   stream: bool) -> httpx2.Response | Answer | StreamedAnswer:
        """``post``'s request with ``body``: the response as it arrives (``stream``: a ``StreamedAnswer``, or
        an ``httpx2.Response`` when its content-encoding is to be undone), else read whole (an ``Answer``)."""
        connection = await self._sent(self._origin_of(post.origin), timeouts, False, None, post.head(len(body)),
                                      body, False, len(body), False)
        encoded = any(name.lower() == b"content-encoding" for name, _ in connection._headers)
        status, headers = connection._status, connection._headers
        if stream:
            if encoded:   # httpx2's decoders, as the response is read
                return connection.response(timeouts)
            return StreamedAnswer(status, headers, _Body(connection, timeouts.get("read")))
        if encoded:   # gzip and the like: httpx2's decoders
            response = connection.response(timeouts)
            await response.aread()
            return Answer(status, headers, response.content)
        if connection._complete:   # the whole answer came with its head (the usual case): nothing to wait for
            content = connection.take_body() if connection._body else b""
            connection.finish()
            return Answer(status, headers, content)
        return Answer(status, headers, b"".join([part async for part in _Body(connection, timeouts.get("read"))]))

    async def _sent(self, origin: _Origin, timeouts: dict[str, float | None], *request: Any) -> _Connection:
        """A connection of ``origin`` on which ``request`` (``_Connection.exchange``'s arguments before the
        timeouts) went out and its response's head came back; closed if anything went wrong on the way."""
        connection = await origin.acquire(timeouts)
        try:
            await connection.exchange(*request, timeouts)
        except BaseException:
            connection.abort()
            raise
        return connection

    def _origin_of(self, key: tuple[bytes, bytes, int | None]) -> _Origin:
        origin = self._origins.get(key)
        return origin if origin is not None else self._origin(*key)

    def _origin(self, scheme: bytes, host: bytes, port: int | None) -> _Origin:
        if scheme not in _DEFAULT_PORTS:
            raise httpx2.UnsupportedProtocol(f"unsupported URL scheme {scheme.decode('ascii', 'replace')!r}")
        if self.closed:
            raise httpx2.ConnectError("the client is closed")
        origin = _Origin(self, scheme, host.decode("ascii"), port or _DEFAULT_PORTS[scheme])
        self._origins[(scheme, host, port)] = origin
        return origin

    async def aclose(self) -> None:
        self.closed = True
        for origin in self._origins.values():
            origin.close()
        self._origins.clear()


class ClientPool:
    """One ``httpx2.AsyncClient`` per upstream base URL (and event loop), opened on first use."""

    def __init__(self, *, timeout: float, max_connections: int = 1000) -> None:
        self._timeout = timeout
        # Idle connections kept per upstream: enough for a worker's concurrent calls to one upstream.
        self._limits = httpx2.Limits(max_connections=max_connections, max_keepalive_connections=200,
                                     keepalive_expiry=30)
        self._tls = SharedTLS()  # one SSL context for every upstream, built on the first https call
        # Keyed by event loop too: a client's connections belong to the loop that opened them
        # (one loop per server process; tests may run several).
        self._clients: dict[tuple[int, str], tuple[httpx2.AsyncClient, UpstreamTransport]] = {}

    def get(self, base_url: str) -> httpx2.AsyncClient:
        return self._client(base_url)[0]

    def _client(self, base_url: str) -> tuple[httpx2.AsyncClient, UpstreamTransport]:
        key = (id(asyncio.get_running_loop()), base_url)
        pair = self._clients.get(key)
        if pair is None:
            transport = UpstreamTransport(limits=self._limits, tls=self._tls)
            client = httpx2.AsyncClient(base_url=base_url, timeout=self._timeout, follow_redirects=False,
                                        trust_env=False, transport=transport)
            pair = self._clients[key] = (client, transport)
        return pair

    def prepare(self, base_url: str, url: str, headers: dict[str, str]) -> Post:
        """POSTs to ``url`` (under ``base_url``) with ``headers`` over the client's own defaults, prepared once."""
        return Post(httpx2.URL(url), httpx2.Headers({**self.get(base_url).headers, **headers}))

    async def post(self, base_url: str, post: Post, body: bytes, timeouts: dict[str, float | None], *,
                   stream: bool = False) -> httpx2.Response | Answer | StreamedAnswer:
        """``post`` (prepared for a URL under ``base_url``) with ``body``, on that base URL's connections:
        the response as it arrives when ``stream`` (``UpstreamTransport.post`` says as what), else an
        ``Answer`` read whole. No ``httpx2.Request`` is built, nor, unless a content-encoding is to be undone,
        an ``httpx2.Response``: what a provider's call needs and nothing else (docs/performance.md, "The
        upstream client")."""
        return await self._client(base_url)[1].post(post, body, timeouts, stream)

    async def aclose(self) -> None:
        loop_id = id(asyncio.get_running_loop())
        for key in [k for k in self._clients if k[0] == loop_id]:
            await self._clients.pop(key)[0].aclose()
