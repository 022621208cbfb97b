"""What proxy/server.py serves with. The HTTP protocol at the socket: a response's head leaves in the same write
as its first body part. Driven through uvicorn's own protocol with a transport that records each write (a write
boundary is not visible to a client over TCP); the live server is covered by every e2e test. The server's main
loop: one look a second, and a stop signal that wakes it (tests/e2e/test_production_command.py counts a live
worker's wake-ups)."""
from __future__ import annotations

import asyncio
import gc
import signal
import sys
import weakref

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from proxy.hotpath import ON_DISCONNECT
from proxy.server import JOIN_BYTES, ON_DISCONNECT as SERVERS_KEY, GatewayServer, GracefulHttpToolsProtocol


class Transport:
    """What the protocol writes, one entry per system call it would make."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def writelines(self, parts) -> None:   # uvloop: one writev
        self.write(b"".join(parts))

    def get_extra_info(self, name: str, default=None):
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 4000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def connect(app) -> tuple[GracefulHttpToolsProtocol, Transport]:
    """A connection to ``app`` served by the protocol (on the running loop), and what it writes."""
    config = Config(app=app, lifespan="off", ws="none", http=GracefulHttpToolsProtocol, log_level="critical")
    config.load()
    protocol = GracefulHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


def serve(app, request: bytes) -> Transport:
    async def scenario() -> Transport:
        protocol, transport = connect(app)
        protocol.data_received(request)
        await asyncio.wait_for(asyncio.gather(*protocol.tasks), timeout=5)
        return transport

    return asyncio.run(scenario())


GET = b"GET / HTTP/1.1\r\nHost: gateway\r\n\r\n"


def answering(*bodies: bytes, headers=((b"content-type", b"text/plain"),)):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        for index, body in enumerate(bodies):
            await send({"type": "http.response.body", "body": body, "more_body": index < len(bodies) - 1})
    return app


def test_a_buffered_answer_is_one_write():
    transport = serve(answering(b"hello", headers=[(b"content-length", b"5")]), GET)

    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\nhello")


def test_a_stream_s_head_leaves_with_its_first_event_and_each_later_part_on_its_own():
    transport = serve(answering(b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"), GET)

    assert len(transport.writes) == 3
    assert b"transfer-encoding: chunked" in transport.writes[0]
    assert transport.writes[0].endswith(b"\r\n\r\n9\r\ndata: 1\n\n\r\n")
    assert transport.writes[1:] == [b"9\r\ndata: 2\n\n\r\n", b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"]


def test_a_large_first_part_is_not_copied_behind_the_head_but_still_one_call():
    body = b"x" * (JOIN_BYTES + 1)
    transport = serve(answering(body, headers=[(b"content-length", str(len(body)).encode())]), GET)

    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"\r\n\r\n" + body)


def test_a_head_request_gets_its_head_alone():
    transport = serve(answering(b"", headers=[(b"content-length", b"5")]), b"HEAD / HTTP/1.1\r\nHost: gateway\r\n\r\n")

    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and transport.writes[0].endswith(b"\r\n\r\n")


def test_on_a_connection_that_closes_after_the_answer_the_head_is_written_before_the_close():
    request = b"GET / HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n"
    transport = serve(answering(b"bye", headers=[(b"content-length", b"3")]), request)

    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"\r\n\r\nbye")
    assert transport.closed


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_answer_its_app_abandons_after_the_start_sends_nothing_and_closes():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("the app broke")

    transport = serve(app, GET)

    assert transport.writes == [] and transport.closed


def test_a_100_continue_is_not_held_back():
    async def app(scope, receive, send):
        message = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok" if message["body"] == b"hi" else b"no"})

    async def scenario() -> tuple[list[bytes], Transport]:
        protocol, transport = connect(app)
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: gateway\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        for _ in range(20):   # the app asks for the body: the interim answer goes out at once
            await asyncio.sleep(0)
            if transport.writes:
                break
        interim = list(transport.writes)
        protocol.data_received(b"hi")
        await asyncio.wait_for(asyncio.gather(*protocol.tasks), timeout=5)
        return interim, transport

    interim, transport = asyncio.run(scenario())

    assert interim == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    assert transport.writes[1].endswith(b"\r\n\r\nok") and len(transport.writes) == 2


# --- A client that leaves ---------------------------------------------------------------------------------

def test_the_connection_calls_an_app_back_when_its_client_leaves_before_the_answer_is_complete():
    """In place of a task per request waiting on ``receive`` for ``http.disconnect`` (proxy/hotpath.py)."""
    called: list[str] = []

    async def app(scope, receive, send):
        scope[ON_DISCONNECT](lambda: called.append("left"))
        await asyncio.sleep(3600)   # the answer is still being made

    async def scenario() -> None:
        protocol, _ = connect(app)
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: gateway\r\nContent-Length: 2\r\n\r\n{}")
        await asyncio.sleep(0.01)
        assert called == []
        protocol.connection_lost(None)
        assert called == ["left"]
        protocol.connection_lost(None)   # once at most
        assert called == ["left"]
        for task in protocol.tasks:
            task.cancel()

    asyncio.run(scenario())


def test_the_hot_path_looks_for_the_callback_under_the_servers_own_key():
    assert ON_DISCONNECT == SERVERS_KEY


def test_a_client_gone_before_the_app_registers_is_called_back_at_once():
    called: list[str] = []

    async def app(scope, receive, send):
        await asyncio.sleep(0.05)   # the client leaves meanwhile
        forget = scope[ON_DISCONNECT](lambda: called.append("left"))
        forget()

    async def scenario() -> None:
        protocol, _ = connect(app)
        protocol.data_received(GET)
        await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        await asyncio.wait_for(asyncio.gather(*protocol.tasks), timeout=5)

    asyncio.run(scenario())

    assert called == ["left"]


def test_a_finished_request_s_cycle_is_freed_when_the_next_replaces_it_not_left_to_the_collector():
    """The scope holds the cycle through its ``on_disconnect``: without dropping that at the end, each request
    would leave a reference cycle (cycle, scope, bound method) for the cyclic collector."""
    async def scenario() -> bool:
        protocol, _ = connect(answering(b"ok"))
        protocol.data_received(GET)
        while protocol.tasks:
            await asyncio.sleep(0)
        first = weakref.ref(protocol.cycle)
        protocol.data_received(GET)   # the next request on the connection: its cycle replaces the first
        while protocol.tasks:
            await asyncio.sleep(0)
        return first() is None

    gc.disable()
    try:
        freed = asyncio.run(scenario())
    finally:
        gc.enable()

    assert freed


def test_nothing_is_called_back_once_the_answer_is_complete_or_after_the_app_forgot_its_callback():
    called: list[str] = []

    async def answered(scope, receive, send):
        scope[ON_DISCONNECT](lambda: called.append("answered"))
        await answering(b"ok")(scope, receive, send)

    async def forgetting(scope, receive, send):
        forget = scope[ON_DISCONNECT](lambda: called.append("forgotten"))
        forget()
        await asyncio.sleep(3600)

    async def scenario() -> None:
        for app in (answered, forgetting):
            protocol, _ = connect(app)
            protocol.data_received(GET)
            await asyncio.sleep(0.01)
            protocol.connection_lost(None)
            for task in protocol.tasks:
                task.cancel()

    asyncio.run(scenario())

    assert called == []


# --- The server's main loop ------------------------------------------------------------------------------

def gateway_server(tick: float, kind: type[GatewayServer] = GatewayServer) -> GatewayServer:
    server = kind(Config(app=None, lifespan="off", ws="none", log_level="critical"))
    server.tick = tick
    return server


def test_a_stop_signal_ends_the_main_loop_at_once_not_at_its_next_tick():
    async def scenario() -> None:
        server = gateway_server(tick=3600)
        loop_task = asyncio.create_task(server.main_loop())
        await asyncio.sleep(0.05)   # the loop is waiting for its next tick, an hour away
        assert not loop_task.done()
        server.handle_exit(signal.SIGTERM, None)
        await asyncio.wait_for(loop_task, timeout=5)
        assert server.should_exit

    asyncio.run(scenario())


def test_a_stop_signal_handled_just_after_a_look_is_not_left_waiting_for_the_next_tick():
    class SignalledAfterLooking(GatewayServer):
        async def on_tick(self, counter: int) -> bool:
            stop = await super().on_tick(counter)
            self.handle_exit(signal.SIGTERM, None)   # as if the signal came right after the look
            return stop

    async def scenario() -> None:
        server = gateway_server(tick=3600, kind=SignalledAfterLooking)
        await asyncio.wait_for(server.main_loop(), timeout=5)

    asyncio.run(scenario())


def test_each_tick_refreshes_the_date_header():
    async def scenario() -> None:
        server = gateway_server(tick=0.01)
        loop_task = asyncio.create_task(server.main_loop())
        async def refreshed() -> None:
            while not server.server_state.default_headers:
                await asyncio.sleep(0.005)

        for _ in range(3):   # cleared, then set again by the next tick
            await asyncio.wait_for(refreshed(), timeout=5)
            assert server.server_state.default_headers[0][0] == b"date"
            server.server_state.default_headers = []
        server.should_exit = True
        await asyncio.wait_for(loop_task, timeout=5)

    asyncio.run(scenario())


def test_uvicorn_builds_the_gateway_server_for_one_worker_and_for_each_of_several():
    # Importing proxy.server did it (a spawned worker imports it before building its server).
    assert sys.modules["uvicorn.main"].Server is GatewayServer
    assert sys.modules["uvicorn.supervisors.multiprocess"].Server is GatewayServer
