"""The upstream client's transport (proxy/http.py: httpx2 over our own pool and httptools-parsed HTTP/1.1
connections), over real sockets: a bare HTTP/1.1 server in a process of its own (tests/servers/raw_http.py)
that counts connections — reuse, server-closed idle connections, timeouts, refused connections, large
bodies both ways, cancellation, streams that end with [DONE], TLS — and scripted servers in the test's own
event loop that send exact bytes: responses split byte by byte, Connection: close, HTTP/1.0, HEAD/204/304,
1xx, bodies until close, malformed responses, pool limits and keep-alive expiry, streamed request bodies."""
from __future__ import annotations

import asyncio
import contextlib
import datetime
import gzip
import hashlib
import ipaddress
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import orjson
import pytest

from gateway_project.config.schema import LitellmParams
from gateway_project.errors import UpstreamError
from proxy.http import ClientPool, Post, StreamedAnswer, UpstreamTransport, _request_head
from proxy.providers.base import FinalBurst
from proxy.providers.openai_compatible import OpenAICompatible
from tests.servers.process import ServerProcess, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _start(tmp_path_factory: pytest.TempPathFactory, *extra: str):
    port = free_port()
    server = ServerProcess([sys.executable, "-m", "tests.servers.raw_http", "--port", str(port), *extra],
                           log_dir=tmp_path_factory.mktemp("raw_http"), name="raw_http", cwd=ROOT)
    return server, port


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory):
    server, port = _start(tmp_path_factory)
    with server:
        server.wait_until_ready(f"http://127.0.0.1:{port}/health", timeout=15)
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def tls_upstream(tmp_path_factory: pytest.TempPathFactory):
    """(base URL, PEM of its self-signed certificate for 127.0.0.1)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory = tmp_path_factory.mktemp("tls")
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / "cert.pem").write_bytes(cert_pem)
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    server, port = _start(tmp_path_factory, "--tls-cert", str(directory / "cert.pem"),
                          "--tls-key", str(directory / "key.pem"))
    with server:
        server.wait_until_ready(port, timeout=15)
        yield f"https://127.0.0.1:{port}", cert_pem.decode()


async def accepted(client: httpx2.AsyncClient, base: str) -> int:
    """Connections the server accepted so far (asked over ``client``'s pool, which it may open one for)."""
    return (await client.get(f"{base}/connections")).json()["accepted"]


def run(main):
    return asyncio.run(main())


def provider(pool: ClientPool, base: str, timeout: float = 5) -> OpenAICompatible:
    return OpenAICompatible(LitellmParams(model="openai/raw", api_base=base), model_group="raw", clients=pool,
                            default_timeout=timeout)


def test_sequential_requests_share_one_connection(upstream: str) -> None:
    async def main():
        pool = ClientPool(timeout=5)
        client = pool.get(upstream)
        try:
            before = await accepted(client, upstream)
            for n in range(20):
                response = await client.post(f"{upstream}/echo", content=b"request %d" % n)
                assert response.status_code == 200 and response.content == b"request %d" % n
            assert await accepted(client, upstream) == before
        finally:
            await pool.aclose()

    run(main)


def test_concurrent_requests_get_a_connection_each_and_keep_them(upstream: str) -> None:
    async def main():
        pool = ClientPool(timeout=5)
        client = pool.get(upstream)
        try:
            before = await accepted(client, upstream)
            for _ in range(3):
                answers = await asyncio.gather(*(client.get(f"{upstream}/slow/50") for _ in range(10)))
                assert [a.content for a in answers] == [b"late"] * 10
            # The first round opened (at most) ten, the later rounds reused them.
            assert before < await accepted(client, upstream) <= before + 10
        finally:
            await pool.aclose()

    run(main)


def test_a_stream_ending_with_done_gives_its_connection_back(upstream: str) -> None:
    async def main():
        pool = ClientPool(timeout=5)
        client, chat = pool.get(upstream), provider(pool, upstream)
        try:
            before = await accepted(client, upstream)
            for _ in range(5):
                response = await chat.send(f"{upstream}/sse/4", {"stream": True}, 5, stream=True)
                events = [orjson.loads(data) async for burst in chat.sse_bursts(response) for data in burst]
                assert events == [{"index": i} for i in range(4)]
            assert await accepted(client, upstream) == before
        finally:
            await pool.aclose()

    run(main)


def test_a_stream_whose_end_is_late_is_not_waited_for(upstream: str) -> None:
    """[DONE] came, the body's end did not: the relay finishes at once, and the connection is closed
    (not returned half-read) — the next call opens a new one."""
    async def main():
        pool = ClientPool(timeout=5)
        client, chat = pool.get(upstream), provider(pool, upstream)
        try:
            before = await accepted(client, upstream)
            response = await chat.send(f"{upstream}/sse-late-end/3", {"stream": True}, 5, stream=True)
            events = [orjson.loads(data) async for burst in chat.sse_bursts(response) for data in burst]
            assert events == [{"index": i} for i in range(3)]
            assert response.is_closed
            assert (await client.get(f"{upstream}/health")).content == b"ok"
            assert await accepted(client, upstream) == before + 1
        finally:
            await pool.aclose()

    run(main)


def test_an_idle_connection_the_upstream_closed_is_not_reused(upstream: str) -> None:
    async def main():
        pool, watcher = ClientPool(timeout=5), httpx2.AsyncClient(trust_env=False)
        client = pool.get(upstream)
        try:
            assert (await client.get(f"{upstream}/close-after")).content == b"bye"
            # Until the server has closed it: only the watcher's own connection is left open.
            for _ in range(500):
                if (await watcher.get(f"{upstream}/connections")).json()["open"] == 1:
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the server did not close the connection")
            for _ in range(3):
                assert (await client.post(f"{upstream}/echo", content=b"again")).content == b"again"
        finally:
            await watcher.aclose()
            await pool.aclose()

    run(main)


def test_a_slow_upstream_times_out_and_the_next_call_works(upstream: str) -> None:
    async def main():
        pool = ClientPool(timeout=5)
        try:
            with pytest.raises(UpstreamError) as raised:
                await provider(pool, upstream).post_json(f"{upstream}/slow/3000", {}, timeout=0.2)
            assert raised.value.status == 408
            with pytest.raises(httpx2.ReadTimeout):
                await pool.get(upstream).get(f"{upstream}/slow/3000", timeout=0.2)
            assert (await pool.get(upstream).get(f"{upstream}/health")).content == b"ok"
        finally:
            await pool.aclose()

    run(main)


def test_a_refused_connection_is_a_connect_error() -> None:
    base = f"http://127.0.0.1:{free_port()}"

    async def main():
        pool = ClientPool(timeout=5)
        try:
            with pytest.raises(httpx2.ConnectError):
                await pool.get(base).get(f"{base}/health")
            with pytest.raises(UpstreamError) as raised:
                await provider(pool, base).post_json(f"{base}/chat/completions", {})
            assert raised.value.status == 502
        finally:
            await pool.aclose()

    run(main)


def test_large_bodies_both_ways(upstream: str) -> None:
    big = bytes(range(256)) * 16 * 1024  # 4 MiB: several pauses of reading and writing

    async def main():
        pool = ClientPool(timeout=10)
        client = pool.get(upstream)
        try:
            assert (await client.post(f"{upstream}/echo", content=big)).content == big
            async with client.stream("GET", f"{upstream}/bytes/{len(big)}") as response:
                total = 0
                async for chunk in response.aiter_raw():
                    total += len(chunk)
                    await asyncio.sleep(0)  # a slow reader: the socket is paused and resumed
            assert total == len(big)
            assert (await client.get(f"{upstream}/health")).content == b"ok"
        finally:
            await pool.aclose()

    run(main)


def test_leaving_a_response_early_or_cancelling_a_call_closes_its_connection(upstream: str) -> None:
    async def main():
        pool, watcher = ClientPool(timeout=10), httpx2.AsyncClient(trust_env=False)
        client = pool.get(upstream)

        async def held() -> int:
            return (await watcher.get(f"{upstream}/connections")).json()["held"]

        try:
            await held()  # the watcher's own connection, opened before counting
            before = await accepted(client, upstream)
            async with client.stream("GET", f"{upstream}/bytes/4000000") as response:
                async for _ in response.aiter_raw():
                    break
            after_first = await accepted(client, upstream)
            assert after_first == before + 1  # the half-read connection was closed, not pooled
            waiting = await held()
            call = asyncio.create_task(client.get(f"{upstream}/slow/3000"))
            for _ in range(500):  # until the server has the call
                if await held() > waiting:
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the call never reached the server")
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            # The cancelled call's connection (the pooled one) was closed too: the next calls open a new one.
            for _ in range(3):
                assert (await client.post(f"{upstream}/echo", content=b"fine")).content == b"fine"
            assert await accepted(client, upstream) == after_first + 1
        finally:
            await watcher.aclose()
            await pool.aclose()

    run(main)


def test_tls_upstream(tls_upstream: tuple[str, str]) -> None:
    base, cert_pem = tls_upstream
    trusted = ssl.create_default_context(cadata=cert_pem)

    async def main():
        limits = httpx2.Limits(max_connections=10, max_keepalive_connections=10, keepalive_expiry=30)
        async with httpx2.AsyncClient(transport=UpstreamTransport(limits=limits, verify=trusted),
                                      trust_env=False) as client:
            before = await accepted(client, base)
            for n in range(5):
                assert (await client.post(f"{base}/echo", content=b"secret %d" % n)).content == b"secret %d" % n
            assert await accepted(client, base) == before
        # Not trusted: the handshake fails, as a connect error.
        async with httpx2.AsyncClient(transport=UpstreamTransport(limits=limits), trust_env=False) as client:
            with pytest.raises(httpx2.ConnectError):
                await client.get(f"{base}/health")

    run(main)


# Scripted servers: real sockets on 127.0.0.1 in the test's own event loop, answering with exact bytes ---


@dataclass
class Seen:
    """What a scripted server saw: one entry per connection, the requests on it, and which the client closed."""

    connections: list[list[tuple[bytes, bytes]]] = field(default_factory=list)
    closed_by_client: list[int] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # set whenever the client closes one

    @property
    def requests(self) -> list[tuple[bytes, bytes]]:
        return [request for connection in self.connections for request in connection]


Answer = Callable[[asyncio.StreamWriter, bytes, bytes], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """(head, body) of the next request, None at EOF; Content-Length and chunked bodies."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    if fields.get(b"transfer-encoding") == b"chunked":
        body = bytearray()
        while size := int((await reader.readline()).strip(), 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readexactly(2)
        return head, bytes(body)
    return head, await reader.readexactly(int(fields.get(b"content-length", b"0")))


def path_of(head: bytes) -> str:
    return head.split(b" ", 2)[1].decode()


@contextlib.asynccontextmanager
async def scripted(answers: dict[str, bytes | Answer]) -> AsyncIterator[tuple[str, Seen]]:
    """A server answering each request by its path: fixed bytes, or a coroutine given (writer, head, body)."""
    seen = Seen()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = len(seen.connections)
        seen.connections.append([])
        try:
            while (request := await read_request(reader)) is not None:
                seen.connections[number].append(request)
                answer = answers[path_of(request[0])]
                if isinstance(answer, bytes):
                    writer.write(answer)
                else:
                    await answer(writer, *request)
            seen.closed_by_client.append(number)
            seen.closed.set()
        except (ConnectionError, asyncio.IncompleteReadError):
            seen.closed_by_client.append(number)
            seen.closed.set()
        finally:
            writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0, limit=2**20)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", seen
    finally:
        server.close()


async def until(condition: Callable[[], bool], seen: Seen) -> None:
    async with asyncio.timeout(5):
        while not condition():
            seen.closed.clear()
            await seen.closed.wait()


def client_with(limits: httpx2.Limits | None = None, timeout: float | httpx2.Timeout = 5) -> httpx2.AsyncClient:
    limits = limits or httpx2.Limits(max_connections=10, max_keepalive_connections=10, keepalive_expiry=30)
    return httpx2.AsyncClient(transport=UpstreamTransport(limits=limits), timeout=timeout, trust_env=False)


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
LENGTH_RESPONSE = (b"HTTP/1.1 201 Fine Thanks\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\nX-Multi: one\r\n"
                   b"Set-Cookie: b=2\r\nContent-Length: 11\r\n\r\nhello world")
CHUNKED_RESPONSE = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Trace: t\r\n\r\n"
                    b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: ignored\r\n\r\n")


def byte_by_byte(data: bytes) -> Answer:
    async def answer(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        for index in range(len(data)):
            writer.write(data[index:index + 1])
            await writer.drain()
            await asyncio.sleep(0.0005)  # each byte its own packet, in practice
    return answer


def test_responses_parsed_whole_or_split_byte_by_byte_on_one_connection() -> None:
    async def main():
        answers = {"/length": LENGTH_RESPONSE, "/chunked": CHUNKED_RESPONSE,
                   "/length-split": byte_by_byte(LENGTH_RESPONSE), "/chunked-split": byte_by_byte(CHUNKED_RESPONSE)}
        async with scripted(answers) as (base, seen), client_with() as client:
            for suffix in ("", "-split"):
                response = await client.get(f"{base}/length{suffix}")
                assert (response.status_code, response.reason_phrase, response.http_version) == \
                    (201, "Fine Thanks", "HTTP/1.1")
                assert response.headers.raw == [(b"Content-Type", b"text/plain"), (b"Set-Cookie", b"a=1"),
                                                (b"X-Multi", b"one"), (b"Set-Cookie", b"b=2"),
                                                (b"Content-Length", b"11")]
                assert response.content == b"hello world"
                response = await client.get(f"{base}/chunked{suffix}")
                assert response.status_code == 200 and response.headers["x-trace"] == "t"
                assert response.content == b"hello world"
            assert len(seen.connections) == 1 and len(seen.requests) == 4

    run(main)


def test_connection_close_and_http_1_0_are_not_reused() -> None:
    async def main():
        # The server leaves these connections open: the client must not reuse them anyway.
        answers = {"/close": b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
                   "/http10": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
                   "/http10-keep": b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
                   "/ok": OK}
        async with scripted(answers) as (base, seen), client_with() as client:
            for path in ("/close", "/http10", "/http10-keep", "/ok", "/ok"):
                assert (await client.get(base + path)).content == b"ok"
            response = await client.get(f"{base}/ok", headers={"connection": "close"})  # asked by the caller
            assert response.content == b"ok"
            assert (await client.get(f"{base}/ok")).content == b"ok"
            await until(lambda: {0, 1, 2} <= set(seen.closed_by_client), seen)
            # close, 1.0: one each; 1.0 with keep-alive, the next two /ok and the caller's close share one.
            assert [len(requests) for requests in seen.connections] == [1, 1, 4, 1]
            assert (await client.get(f"{base}/http10")).http_version == "HTTP/1.0"

    run(main)


def test_head_204_and_304_have_no_body_and_the_connection_goes_on() -> None:
    async def main():
        answers = {"/head": b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
                   "/no-content": b"HTTP/1.1 204 No Content\r\n\r\n",
                   "/not-modified": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n",
                   "/ok": OK}
        async with scripted(answers) as (base, seen), client_with() as client:
            response = await client.head(f"{base}/head")
            assert response.status_code == 200 and response.headers["content-length"] == "1000"
            assert response.http_version == "HTTP/1.1"
            assert response.content == b""
            assert (await client.get(f"{base}/ok")).content == b"ok"  # not taken for the HEAD's body
            assert (await client.get(f"{base}/no-content")).content == b""
            assert (await client.get(f"{base}/not-modified")).content == b""
            assert (await client.get(f"{base}/ok")).content == b"ok"
            assert len(seen.connections) == 1

    run(main)


def test_interim_1xx_responses_are_skipped() -> None:
    async def main():
        interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"
        answers = {"/hints": interim + OK, "/hints-split": byte_by_byte(interim + OK)}
        async with scripted(answers) as (base, seen), client_with() as client:
            for path in ("/hints", "/hints-split", "/hints"):
                response = await client.post(base + path, content=b"{}")
                assert response.status_code == 200 and response.content == b"ok"
                assert "link" not in response.headers
            assert len(seen.connections) == 1

    run(main)


def test_a_body_delimited_by_the_connections_end() -> None:
    async def until_close(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of this, ")
        await writer.drain()
        writer.write(b"until the end")
        writer.close()

    async def main():
        async with scripted({"/until-close": until_close, "/ok": OK}) as (base, seen), client_with() as client:
            assert (await client.get(f"{base}/until-close")).content == b"all of this, until the end"
            assert (await client.get(f"{base}/ok")).content == b"ok"
            assert len(seen.connections) == 2

    run(main)


def test_malformed_or_cut_short_responses_are_protocol_errors(upstream: str) -> None:
    async def cut_short(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        await writer.drain()
        writer.close()

    async def hang_up(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        writer.close()

    async def main():
        answers = {"/bad-status": b"HTTP/1.1 abc OK\r\ncontent-length: 2\r\n\r\nok",
                   "/not-http": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
                   "/bad-length": b"HTTP/1.1 200 OK\r\ncontent-length: 2x\r\n\r\nok",
                   "/bad-chunk": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
                   "/cut-short": cut_short, "/hang-up": hang_up, "/ok": OK}
        pool = ClientPool(timeout=5)
        async with scripted(answers) as (base, seen):
            client = pool.get(base)
            try:
                for path in ("/bad-status", "/not-http", "/bad-length", "/bad-chunk", "/cut-short", "/hang-up"):
                    with pytest.raises(httpx2.RemoteProtocolError):
                        await client.get(base + path)
                    # Through a provider: the gateway's 502 (its error JSON), with nothing of the upstream in it.
                    with pytest.raises(UpstreamError) as raised:
                        await provider(pool, base).post_json(base + path, {})
                    assert raised.value.status == 502 and base not in str(raised.value)
                assert (await client.get(f"{base}/ok")).content == b"ok"  # on a new connection
                assert len(seen.connections) == 13
            finally:
                await pool.aclose()

    run(main)


def test_pool_limit_waits_for_a_free_connection_or_times_out() -> None:
    release = None

    async def held(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        await release.wait()
        writer.write(OK)

    async def main():
        nonlocal release
        release = asyncio.Event()
        limits = httpx2.Limits(max_connections=2, max_keepalive_connections=2, keepalive_expiry=30)
        async with scripted({"/held": held, "/ok": OK}) as (base, seen), client_with(limits) as client:
            busy = [asyncio.create_task(client.get(f"{base}/held")) for _ in range(2)]
            async with asyncio.timeout(5):
                while len(seen.requests) < 2:
                    await asyncio.sleep(0.01)
            with pytest.raises(httpx2.PoolTimeout):
                await client.get(f"{base}/ok", timeout=httpx2.Timeout(5, pool=0.05))
            # A call waiting for the pool gets the first connection given back.
            waiting = asyncio.create_task(client.get(f"{base}/ok", timeout=httpx2.Timeout(5, pool=5)))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            release.set()
            assert [(await call).content for call in busy] == [b"ok", b"ok"]
            assert (await waiting).content == b"ok"
            assert len(seen.connections) == 2
            # A cancelled waiter leaves no trace: the pool still serves.
            release.clear()
            busy = [asyncio.create_task(client.get(f"{base}/held")) for _ in range(2)]
            waiting = asyncio.create_task(client.get(f"{base}/ok"))
            await asyncio.sleep(0.05)
            waiting.cancel()
            release.set()
            await asyncio.gather(*busy)
            assert (await client.get(f"{base}/ok")).content == b"ok"
            assert len(seen.connections) == 2

    run(main)


def test_keepalive_expiry_and_max_idle_connections_close_connections() -> None:
    async def main():
        slow = {"/ok": OK, "/slow": lambda writer, head, body: _later(writer, OK)}
        limits = httpx2.Limits(max_connections=10, max_keepalive_connections=1, keepalive_expiry=0.1)
        async with scripted(slow) as (base, seen), client_with(limits) as client:
            answers = await asyncio.gather(*(client.get(f"{base}/slow") for _ in range(3)))
            assert [a.content for a in answers] == [b"ok"] * 3
            # Three were open; one is kept idle, the client closed the other two.
            await until(lambda: len(seen.closed_by_client) == 2, seen)
            # The kept one expires after 0.1 s idle: closed by the client, the next call opens a new one.
            await until(lambda: len(seen.closed_by_client) == 3, seen)
            assert (await client.get(f"{base}/ok")).content == b"ok"
            assert len(seen.connections) == 4

    run(main)


async def _later(writer: asyncio.StreamWriter, data: bytes) -> None:
    await asyncio.sleep(0.05)
    writer.write(data)


def test_an_idle_connection_the_upstream_writes_on_is_dropped() -> None:
    async def then_junk(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        writer.write(OK)
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstray")

    async def main():
        async with scripted({"/junk": then_junk, "/ok": OK}) as (base, seen), client_with() as client:
            assert (await client.get(f"{base}/junk")).content == b"ok"
            await until(lambda: seen.closed_by_client == [0], seen)
            assert (await client.get(f"{base}/ok")).content == b"ok"  # not the stray answer
            assert len(seen.connections) == 2

    run(main)


def test_streamed_request_bodies_chunked_or_with_a_length() -> None:
    big = bytes(range(256)) * 16 * 1024  # 4 MiB in 64 KiB parts: the socket's buffer fills (back-pressure)

    async def digest(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        framing = b"chunked" if b"chunked" in head.lower() else b"length"
        answer = framing + b" " + hashlib.sha256(body).hexdigest().encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(answer), answer))

    async def parts(data: bytes = big) -> AsyncIterator[bytes]:
        for start in range(0, len(data), 65536):
            yield data[start:start + 65536]
            await asyncio.sleep(0)

    async def main():
        expected = hashlib.sha256(big).hexdigest().encode()
        async with scripted({"/digest": digest}) as (base, seen), client_with(timeout=20) as client:
            assert (await client.post(f"{base}/digest", content=parts())).content == b"chunked " + expected
            response = await client.post(f"{base}/digest", content=parts(), headers={"content-length": str(len(big))})
            assert response.content == b"length " + expected
            assert (await client.post(f"{base}/digest", content=big)).content == b"length " + expected
            # A body that does not match its Content-Length is refused (the upstream would read the
            # difference as another request).
            with pytest.raises(httpx2.LocalProtocolError):
                await client.post(f"{base}/digest", content=b"x" * 100, headers={"content-length": "10"})
            with pytest.raises(httpx2.LocalProtocolError):  # streamed: more than announced, never sent on
                await client.post(f"{base}/digest", content=parts(b"x" * 100), headers={"content-length": "10"})
            await until(lambda: seen.closed_by_client == [0], seen)  # the refused one was closed
            assert (await client.post(f"{base}/digest", content=b"")).content.startswith(b"length ")
            assert len(seen.connections) == 2

    run(main)


def test_a_header_with_a_line_break_is_refused() -> None:
    async def main():
        async with scripted({"/ok": OK}) as (base, seen), client_with() as client:
            for value in ("1\r\nInjected: yes", "1\nInjected: yes", "1\rx"):
                with pytest.raises(httpx2.LocalProtocolError):
                    await client.get(f"{base}/ok", headers={"x-value": value})
            assert (await client.get(f"{base}/ok")).content == b"ok"
            assert all(b"Injected" not in head for head, _ in seen.requests)

    run(main)


def test_stream_chunks_are_relayed_as_they_arrive() -> None:
    """The second event is only sent once the client has the first: a client that buffered the body
    would wait forever (the test's timeout fails it)."""
    got_first = None

    async def events(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                     + _chunk(b'data: {"index": 0}\n\n'))
        await got_first.wait()
        writer.write(_chunk(b'data: {"index": 1}\n\n') + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")

    async def main():
        nonlocal got_first
        got_first = asyncio.Event()
        pool = ClientPool(timeout=5)
        async with scripted({"/chat/completions": events}) as (base, seen):
            chat = provider(pool, base)
            try:
                async with asyncio.timeout(5):
                    for _ in range(2):
                        got_first.clear()
                        response = await chat.send(f"{base}/chat/completions", {"stream": True}, 5, stream=True)
                        bursts = []
                        async for burst in chat.sse_bursts(response):
                            bursts.append([orjson.loads(data)["index"] for data in burst])
                            got_first.set()
                        assert bursts == [[0], [1]]  # written apart: read apart
                assert len(seen.connections) == 1
            finally:
                await pool.aclose()

    run(main)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse_response(*events: bytes) -> bytes:
    """A whole streamed answer, to be sent in one write."""
    return (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            + b"".join(_chunk(event) for event in events) + b"0\r\n\r\n")


def _chat_chunk(index: int) -> bytes:
    return b'data: {"choices": [{"index": 0, "delta": {"content": "%d"}}]}\n\n' % index


def _bursts(answer: bytes) -> list[list[dict] | UpstreamError]:
    """The bursts of chunks chat_stream yields for a streamed answer, and the error that ended it if any."""
    async def main():
        pool = ClientPool(timeout=5)
        bursts: list = []
        async with scripted({"/chat/completions": answer}) as (base, _):
            try:
                async for burst in provider(pool, base).chat_stream({"stream": True}):
                    bursts.append(burst)
            except UpstreamError as error:
                bursts.append(error)
            finally:
                await pool.aclose()
        return bursts

    return run(main)


def test_stream_events_written_together_come_as_one_burst_of_chunks() -> None:
    """After the stream's first chunk, which comes alone (the time to the first token does not wait for the
    rest of its read to be decoded)."""
    bursts = _bursts(_sse_response(*(_chat_chunk(n) for n in range(25)), b"data: [DONE]\n\n"))

    assert [[chunk["choices"][0]["delta"]["content"] for chunk in burst] for burst in bursts] == [
        ["0"], [str(n) for n in range(1, 25)]]


def test_the_burst_whose_read_brought_done_is_marked_final_and_only_that_one() -> None:
    """The relay then sends its events with [DONE], in one write (proxy/pipeline/upstream.py)."""
    together = _bursts(_sse_response(*(_chat_chunk(n) for n in range(3)), b"data: [DONE]\n\n"))
    no_done = _bursts(_sse_response(*(_chat_chunk(n) for n in range(3))))

    assert [isinstance(burst, FinalBurst) for burst in together] == [False, True]
    assert not any(isinstance(burst, FinalBurst) for burst in no_done)


def test_a_gzip_encoded_stream_is_decoded_before_its_lines_are_read() -> None:
    events = b"".join(_chat_chunk(n) for n in range(3)) + b"data: [DONE]\n\n"
    packed = gzip.compress(events)
    answer = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\n"
              b"content-length: %d\r\n\r\n" % len(packed)) + packed

    bursts = _bursts(answer)

    assert [[chunk["choices"][0]["delta"]["content"] for chunk in burst] for burst in bursts] == [["0"], ["1", "2"]]


def test_a_malformed_chunk_mid_burst_comes_after_the_chunks_before_it() -> None:
    """As when they were relayed one by one: the client gets the chunks before the bad one, then the error."""
    bursts = _bursts(_sse_response(_chat_chunk(0), _chat_chunk(1), b"data: {not json\n\n", _chat_chunk(2),
                                   b"data: [DONE]\n\n"))

    [first, second, error] = bursts
    assert [chunk["choices"][0]["delta"]["content"] for chunk in first + second] == ["0", "1"]
    assert isinstance(error, UpstreamError) and error.status == 502 and "malformed" in error.message


def test_a_body_that_stalls_times_out_and_its_connection_is_closed() -> None:
    async def stall(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart")

    async def main():
        async with scripted({"/stall": stall, "/ok": OK}) as (base, seen), client_with(timeout=0.1) as client:
            async with client.stream("GET", f"{base}/stall") as response:
                with pytest.raises(httpx2.ReadTimeout):
                    await response.aread()
            await until(lambda: seen.closed_by_client == [0], seen)
            assert (await client.get(f"{base}/ok")).content == b"ok"

    run(main)


def test_a_response_read_to_its_end_but_closed_unread_keeps_its_connection_and_aclose_closes_all() -> None:
    async def main():
        async with scripted({"/ok": OK}) as (base, seen):
            client = client_with()
            async with client.stream("GET", f"{base}/ok") as response:
                await asyncio.sleep(0.05)  # the whole response has arrived, nobody reads it
            assert response.is_closed
            answers = await asyncio.gather(*(client.get(f"{base}/ok") for _ in range(3)))
            assert [a.content for a in answers] == [b"ok"] * 3
            assert len(seen.connections) == 3
            await client.aclose()
            await until(lambda: len(seen.closed_by_client) == 3, seen)

    run(main)


def test_one_ssl_context_for_every_upstream_of_a_pool(tls_upstream: tuple[str, str]) -> None:
    """ClientPool builds one SSL context, on the first https call, for all its clients; with the
    default trust store a self-signed upstream fails the handshake as a connect error."""
    base, _ = tls_upstream

    async def main():
        pool = ClientPool(timeout=5)
        try:
            for url in (base, base + "/"):  # two clients
                with pytest.raises(httpx2.ConnectError):
                    await pool.get(url).get(f"{base}/health")
            contexts = {id(transport.tls.context()) for _, transport in pool._clients.values()}
            assert len(pool._clients) == 2 and len(contexts) == 1
        finally:
            await pool.aclose()

    run(main)


def test_a_body_the_upstream_does_not_take_is_a_write_timeout() -> None:
    async def main():
        stalled = []

        async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            stalled.append(writer)
            await asyncio.sleep(30)

        server = await asyncio.start_server(never_reads, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            async with client_with(timeout=httpx2.Timeout(5, write=0.2)) as client:
                with pytest.raises(httpx2.WriteTimeout):  # more than the socket buffers hold
                    await client.post(f"{base}/upload", content=b"x" * (64 * 1024 * 1024))
        finally:
            for writer in stalled:
                writer.close()
            server.close()

    run(main)


def _post(base: str, path: str, headers: dict[str, str] | None = None) -> Post:
    return Post(httpx2.URL(f"{base}{path}"), httpx2.Headers(headers or {}))


TIMEOUTS = httpx2.Timeout(5).as_dict()


def test_a_prepared_post_sends_its_head_and_body_as_httpx2_would() -> None:
    """``ClientPool.post`` (how providers call out): the head prepared once, its Content-Length per call."""
    async def main():
        async with scripted({"/v1/chat": OK}) as (base, seen):
            pool = ClientPool(timeout=5)
            try:
                post = _post(base, "/v1/chat", {"content-type": "application/json", "authorization": "Bearer k"})
                for body in (b'{"a": 1}', b'{"bb": 22}'):
                    answer = await pool.post(base, post, body, TIMEOUTS)
                    assert (answer.status_code, answer.content) == (200, b"ok")
                reference = httpx2.Request("POST", f"{base}/v1/chat", content=b'{"a": 1}', headers={
                    "content-type": "application/json", "authorization": "Bearer k"})
            finally:
                await pool.aclose()
        first, second = seen.requests
        assert len(seen.connections) == 1   # read whole, the connection went back to the pool
        assert first == (_request_head(reference)[0], b'{"a": 1}')
        assert second[0].endswith(b"\r\nContent-Length: 10\r\n\r\n") and second[1] == b'{"bb": 22}'

    run(main)


def test_a_prepared_posts_answer_is_read_whole_however_it_arrives() -> None:
    """With its head (taken at once), byte by byte or in chunks (read as it comes): the same answer, and the
    connection back in the pool each time."""
    async def main():
        answers = {"/length": LENGTH_RESPONSE, "/chunked": CHUNKED_RESPONSE, "/length-split": byte_by_byte(LENGTH_RESPONSE),
                   "/chunked-split": byte_by_byte(CHUNKED_RESPONSE), "/empty": b"HTTP/1.1 204 No Content\r\n\r\n"}
        async with scripted(answers) as (base, seen):
            pool = ClientPool(timeout=5)
            try:
                for path in ("/length", "/length-split", "/chunked", "/chunked-split", "/length"):
                    answer = await pool.post(base, _post(base, path), b"{}", TIMEOUTS)
                    assert answer.content == b"hello world", path
                assert (await pool.post(base, _post(base, "/empty"), b"{}", TIMEOUTS)).content == b""
            finally:
                await pool.aclose()
        assert len(seen.connections) == 1 and len(seen.requests) == 6

    run(main)


def test_a_prepared_post_refuses_a_header_with_a_line_break() -> None:
    with pytest.raises(httpx2.LocalProtocolError):
        _post("http://127.0.0.1:9", "/v1", {"authorization": "Bearer k\r\nX-Injected: 1"})


def test_an_answer_read_whole_has_its_content_encoding_undone() -> None:
    text = b'{"id": "chatcmpl-1"}' * 50
    packed = gzip.compress(text)
    answer_bytes = (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed)) + packed

    async def main():
        async with scripted({"/gz": answer_bytes}) as (base, _):
            pool = ClientPool(timeout=5)
            try:
                answer = await pool.post(base, _post(base, "/gz"), b"{}", TIMEOUTS)
            finally:
                await pool.aclose()
        assert answer.content == text

    run(main)


def test_the_pools_post_keeps_no_cookies_from_one_call_to_the_next() -> None:
    """No cookie jar on the providers' way out: a cookie that one caller's call was answered with is not
    stored in the client every caller of that upstream shares, where httpx2's own ``send`` would keep it
    in the client's jar for any later request the client builds."""
    async def main():
        async with scripted({"/set": LENGTH_RESPONSE, "/next": OK}) as (base, seen):
            pool = ClientPool(timeout=5)
            try:
                client = pool.get(base)
                first = await pool.post(base, _post(base, "/set"), b"", TIMEOUTS)
                assert (first.status_code, first.content) == (201, b"hello world")
                assert [value for name, value in first.headers if name.lower() == b"set-cookie"] == [b"a=1", b"b=2"]
                assert (await client.get(f"{base}/next")).content == b"ok"
                await client.send(httpx2.Request("GET", f"{base}/set"))   # httpx2's way, for contrast
                await client.get(f"{base}/next")
            finally:
                await pool.aclose()
        cookies = [[line for line in head.lower().split(b"\r\n") if line.startswith(b"cookie:")]
                   for head, _ in seen.requests]
        assert cookies == [[], [], [], [b"cookie: a=1; b=2"]]

    run(main)


def test_the_pools_post_streams_a_body_as_it_arrives() -> None:
    async def main():
        async with scripted({"/chunked": CHUNKED_RESPONSE}) as (base, seen):
            pool = ClientPool(timeout=5)
            try:
                post = _post(base, "/chunked")
                response = await pool.post(base, post, b"{}", TIMEOUTS, stream=True)
                # Not an httpx2.Response: the status, the raw headers and the body as it arrives.
                assert isinstance(response, StreamedAnswer) and response.status_code == 200
                assert response.header(b"x-trace") == b"t" and response.header(b"x-none", b"-") == b"-"
                assert b"".join([part async for part in response.aiter_raw()]) == b"hello world"
                await response.aclose()
                assert response.is_closed
                again = await pool.post(base, post, b"{}", TIMEOUTS)
                assert again.content == b"hello world"
            finally:
                await pool.aclose()
        assert len(seen.connections) == 1   # read to its end, the connection went back to the pool

    run(main)
