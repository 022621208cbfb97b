"""The upstream client's network layer (proxy/http.py: httpx2 and httpcore2's pool on an asyncio protocol),
over real sockets against a bare HTTP/1.1 server (tests/servers/raw_http.py) that counts connections:
reuse, server-closed idle connections, timeouts, refused connections, large bodies both ways,
cancellation, streams that end with [DONE], and TLS."""
from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import sys
from pathlib import Path

import httpx2
import orjson
import pytest

from gateway_project.config.schema import LitellmParams
from gateway_project.errors import UpstreamError
from proxy.http import ClientPool, UpstreamTransport
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
                events = [orjson.loads(data) async for data in chat.sse_data(response)]
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
            assert [orjson.loads(data) async for data in chat.sse_data(response)] == [{"index": i} for i in range(3)]
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
