"""What ``manage.py gateway`` serves with: uvicorn's httptools protocol, with a graceful shutdown that does
not reset a keep-alive connection a client is reusing at that moment, a response's head sent in one write
with its first body part, and a callback an app may register to learn that its client left before the answer
was complete; and uvicorn's server, with a main loop that wakes once a second."""
from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

# The scope key under which this server hands an app ``HeadWithFirstPart.on_disconnect`` (proxy.hotpath uses it).
ON_DISCONNECT = "gateway.on_disconnect"
IDLE_GRACE = 1.0   # seconds an idle keep-alive connection stays open once the worker starts to shut down
JOIN_BYTES = 64 * 1024   # a first body part up to this size is copied behind the head; a larger one is not


class GracefulHttpToolsProtocol(HttpToolsProtocol):
    """When a worker shuts down (SIGTERM, or SIGHUP replacing it by a new one), uvicorn closes each idle
    keep-alive connection at once. A client reusing the connection may have sent its next request already:
    the kernel answers it with a reset, and the client sees "connection reset by peer" for a call that never
    reached the gateway (a POST, which no client library retries on its own). Here an idle connection stays
    open for ``IDLE_GRACE``: a request already on its way is served, answered with ``Connection: close``, and
    the connection closes after it (the client's next request opens a connection to a live worker); one that
    stays idle is closed when the grace ends. A connection busy with a request is left to uvicorn (closed after
    its answer, as before)."""

    draining = False

    def shutdown(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self.draining = True
            self.loop.call_later(IDLE_GRACE, self._close_if_idle)
        else:
            super().shutdown()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.draining:
            self.cycle.keep_alive = False   # answered with Connection: close, then closed

    def _start_asgi_task(self, cycle: RequestResponseCycle, app) -> None:
        # Every request's cycle (pipelined ones too) starts here, before its app runs.
        cycle.__class__ = HeadWithFirstPart
        cycle.scope[ON_DISCONNECT] = cycle.on_disconnect
        super()._start_asgi_task(cycle, app)

    def connection_lost(self, exc: Exception | None) -> None:
        cycle = self.cycle
        super().connection_lost(exc)
        if cycle is not None and cycle.disconnected and isinstance(cycle, HeadWithFirstPart):
            cycle.client_left()

    def _close_if_idle(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()


class HeadWithFirstPart(RequestResponseCycle):
    """uvicorn writes a response's head to the socket as soon as the app starts the response, then each body
    part as it comes: two writes for every answer (two system calls, two segments to the client), where the
    first part always follows at once — the whole body of a buffered answer, a stream's first event. Here the
    head waits for the first body message and leaves in the same write (measured: docs/performance.md "One
    write for the head and the first part"). A response started and then abandoned by its app (an error) sends
    nothing instead of a bare head; uvicorn closes the connection either way."""

    held_head: bytes | None = None
    _left: Callable[[], None] | None = None   # what to do should the client leave before the answer is complete

    def on_disconnect(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Have ``callback`` called if the client disconnects before the answer is complete (at most once);
        returns what cancels that. What an app would otherwise learn by keeping a task waiting on ``receive``
        for an ``http.disconnect`` (Django's handler does, for every request): a task made, run and cancelled
        per request. Reading is resumed as that ``receive`` would, so that the client's going is seen."""
        if self.disconnected:   # gone already (between its request's last byte and now): at once
            callback()
            return _nothing
        self._left = callback
        if not self.response_complete:
            self.flow.resume_reading()

        def forget() -> None:
            self._left = None

        return forget

    def client_left(self) -> None:
        callback, self._left = self._left, None
        if callback is not None:
            callback()

    async def run_asgi(self, app) -> None:
        try:
            await super().run_asgi(app)
        finally:
            # The scope holds this cycle through ``on_disconnect``: dropped, so that a finished cycle is freed as
            # soon as the connection's next request replaces it, not left as a reference cycle for the collector.
            self.scope.pop(ON_DISCONNECT, None)

    async def send(self, message) -> None:
        connection = self.transport
        if message["type"] == "http.response.start" and not self.response_started:
            self.transport = _Held()
            try:
                await super().send(message)
            finally:
                held, self.transport = self.transport, connection
            self.held_head = held.data or None
            return
        head, self.held_head = self.held_head, None
        if head is None:
            return await super().send(message)
        self.transport = _AfterHead(connection, head)
        try:
            await super().send(message)
        finally:
            after_head, self.transport = self.transport, connection
            after_head.flush()   # a part that wrote nothing (a HEAD request's, an empty one): the head alone


class _Held:
    """Takes what uvicorn writes when a response starts: its head."""

    data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return False


class _AfterHead:
    """The connection's transport for the first body message: its first write carries the head too."""

    def __init__(self, transport, head: bytes) -> None:
        self.transport, self.head = transport, head

    def write(self, data: bytes) -> None:
        head, self.head = self.head, b""
        if not head:
            self.transport.write(data)
        elif len(data) <= JOIN_BYTES:
            self.transport.write(head + data)
        else:   # not copied: one system call for both (writev)
            self.transport.writelines((head, data))

    def flush(self) -> None:
        if self.head and not self.transport.is_closing():
            self.write(b"")

    def close(self) -> None:   # the answer is complete and the connection is not kept: head first
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()


class GatewayServer(uvicorn.Server):
    """uvicorn's server, with a main loop that wakes once a second instead of ten times. uvicorn's loop sleeps
    0.1 s between looks at whether a signal asked it to stop, and refreshes the ``Date`` header every tenth
    look: ten wake-ups a second of an idle worker, each a few hundred microseconds of a cold CPU
    (docs/performance.md, "An idle worker wakes once a second"). Here a stop signal wakes the loop itself, so
    the tick is only for the ``Date`` header, whose resolution is a second."""

    tick = 1.0   # seconds between looks: the Date header is refreshed at each

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._wake: asyncio.Future | None = None   # what the main loop waits on until its next look

    async def main_loop(self) -> None:
        loop = asyncio.get_running_loop()
        counter = 0   # uvicorn's on_tick counts tenths of a second: it refreshes the Date header at multiples of 10
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000
            self._wake = wake = loop.create_future()
            if self.should_exit:   # a signal handled since on_tick looked, before there was a wake to settle
                _settle(wake)
            timer = loop.call_later(self.tick, _settle, wake)
            try:
                await wake
            finally:
                timer.cancel()
                self._wake = None

    def handle_exit(self, sig: int, frame) -> None:
        super().handle_exit(sig, frame)
        # A signal handler runs between two steps of the loop: the wake-up goes through the loop's own queue.
        wake = self._wake
        if wake is not None and not wake.get_loop().is_closed():
            wake.get_loop().call_soon_threadsafe(_settle, wake)


def _nothing() -> None:
    pass


def _settle(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def use_gateway_server() -> None:
    """Point uvicorn at ``GatewayServer``: ``uvicorn.run`` builds its server by name, and so does each worker
    process of its multiprocess supervisor (``--workers`` 2 or more), with no setting to choose another."""
    for module in ("uvicorn.main", "uvicorn.supervisors.multiprocess"):
        importlib.import_module(module).Server = GatewayServer


# At import, not only when ``manage.py gateway`` starts: uvicorn's worker processes are spawned afresh and
# import this module when they unpickle their config (its ``http`` protocol class lives here), before they
# build their server; none of the command's own code runs in them first.
use_gateway_server()
