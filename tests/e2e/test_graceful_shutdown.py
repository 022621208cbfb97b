"""SIGTERM and client disconnects mid-stream, on real processes: a stream in flight is finished (or, past
GATEWAY_GRACEFUL_TIMEOUT, cut and recorded as a failure with the tokens streamed so far), the spend
buffer is flushed before exit, the process exits 0, and new connections are refused meanwhile."""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import threading
import time

import dj_database_url
import httpx2
import psycopg
import pytest

from tests.e2e.conftest import MASTER_KEY, launch_gateway, wait_for

pytestmark = pytest.mark.e2e

REPLY = " ".join(f"word{i}" for i in range(12))


def config(upstream) -> str:
    return f"""model_list:
  - model_name: slow
    litellm_params: {{model: openai/slow, api_base: {upstream.base_url}/v1, api_key: os.environ/E2E_UPSTREAM_KEY}}
general_settings:
  master_key: {MASTER_KEY}
"""


def stored_rows(database_url: str) -> list[dict]:
    """Spend rows read straight from the gateway's database (the gateway itself has exited)."""
    query = "SELECT request_id, status, completion_tokens, metadata FROM spend_spendlog"
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute(query).fetchall()
    else:
        parts = dj_database_url.parse(database_url)
        with psycopg.connect(host=parts["HOST"], port=parts["PORT"], user=parts["USER"],
                             password=parts["PASSWORD"] or None, dbname=parts["NAME"]) as conn:
            rows = conn.execute(query).fetchall()
    return [{"request_id": r[0], "status": r[1], "completion_tokens": r[2],
             "metadata": r[3] if isinstance(r[3], dict) else json.loads(r[3])} for r in rows]


class StreamingClient(threading.Thread):
    """Streams one chat completion in the background, noting each event as it arrives."""

    def __init__(self, base_url: str, stop_after: int | None = None, model: str = "slow") -> None:
        super().__init__(daemon=True)
        self.base_url, self.stop_after, self.model = base_url, stop_after, model
        self.events: list[str] = []
        self.error: BaseException | None = None
        self.first = threading.Event()

    def run(self) -> None:
        try:
            body = {"model": self.model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            with httpx2.Client(timeout=30, trust_env=False) as http, http.stream(
                    "POST", f"{self.base_url}/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                    json=body) as response:
                assert response.status_code == 200
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(line[6:])
                        self.first.set()
                        if self.stop_after is not None and len(self.events) >= self.stop_after:
                            return  # the client goes away mid-stream
        except BaseException as exc:  # noqa: BLE001  (inspected by the test)
            self.error = exc
        finally:
            self.first.set()

    @property
    def text(self) -> str:
        return "".join((json.loads(e)["choices"] or [{}])[0].get("delta", {}).get("content") or ""
                       for e in self.events if e != "[DONE]" and "choices" in json.loads(e))


def refuses_connections(base_url: str) -> bool:
    try:
        httpx2.get(f"{base_url}/health/liveliness", timeout=1, trust_env=False)
    except httpx2.TransportError:
        return True
    return False


def sigterm_mid_stream(gw, client: StreamingClient) -> threading.Thread:
    client.start()
    assert client.first.wait(10) and client.error is None
    stopper = threading.Thread(target=gw.process.stop, kwargs={"timeout": 30}, daemon=True)
    stopper.start()  # SIGTERM, then waits for the exit
    return stopper


def test_sigterm_lets_a_stream_finish_flushes_its_spend_and_exits_0(e2e_dir, stand_in):
    stand_in.behave(chunk_delay_ms=150, reply=REPLY)
    # No periodic flush: the row can only reach the database through the flush at shutdown.
    env = {"GATEWAY_SPEND_FLUSH_INTERVAL": "600", "GATEWAY_GRACEFUL_TIMEOUT": "20"}
    with launch_gateway(e2e_dir, config(stand_in), name="graceful", env=env) as gw:
        database_url = gw.process.env["DATABASE_URL"]
        client = StreamingClient(gw.base_url)
        stopper = sigterm_mid_stream(gw, client)
        wait_for(lambda: refuses_connections(gw.base_url))  # stopped accepting, the stream still runs
        assert client.is_alive()
        client.join(20)
        stopper.join(30)
        assert client.error is None
        assert client.events[-1] == "[DONE]" and client.text == REPLY
        assert gw.process.returncode == 0
        rows = stored_rows(database_url)
    assert len(rows) == 1
    assert rows[0]["status"] == "success" and rows[0]["completion_tokens"] > 0


def test_sigterm_past_the_graceful_timeout_records_the_partial_stream(e2e_dir, stand_in):
    stand_in.behave(chunk_delay_ms=500, reply=REPLY)  # ~7 s of stream, 1 s of grace
    env = {"GATEWAY_SPEND_FLUSH_INTERVAL": "600", "GATEWAY_GRACEFUL_TIMEOUT": "1"}
    with launch_gateway(e2e_dir, config(stand_in), name="graceful-cut", env=env) as gw:
        database_url = gw.process.env["DATABASE_URL"]
        client = StreamingClient(gw.base_url)
        stopper = sigterm_mid_stream(gw, client)
        stopper.join(30)
        client.join(10)
        assert gw.process.returncode == 0
        assert "[DONE]" not in client.events and client.text  # cut short after some content
        rows = stored_rows(database_url)
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "failure" and row["completion_tokens"] > 0
    assert row["metadata"]["usage_estimated"] is True
    assert row["metadata"]["error_information"]["error_code"] == "499"


def test_a_client_that_disconnects_mid_stream_is_recorded_with_the_tokens_streamed(gateway, stand_in):
    stand_in.behave(chunk_delay_ms=200, reply=REPLY)
    client = StreamingClient(gateway.base_url, stop_after=3, model="gpt-3.5-turbo")
    client.run()  # in this thread
    assert client.error is None and len(client.events) == 3
    request_id = json.loads(client.events[0])["id"]
    row = wait_for(lambda: gateway.spend_logs(request_id=request_id))[0]
    assert row["status"] == "failure" and row["completion_tokens"] > 0
    assert row["metadata"]["error_information"]["error_code"] == "499"


def test_a_client_that_leaves_while_the_upstream_thinks_cancels_its_call_at_once(gateway, stand_in):
    """The connection itself tells the call that its client left (proxy/server.py): the call is cancelled and
    recorded then, not when the upstream answers."""
    stand_in.behave(delay_ms=6000)
    key = gateway.new_key(key_alias="leaves-early")
    body = json.dumps({"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]}).encode()
    address = httpx2.URL(gateway.base_url)
    with socket.create_connection((address.host, address.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                     + f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        stand_in.wait_for_requests(1)   # the call is waiting for the upstream
    left = time.monotonic()
    row = wait_for(lambda: gateway.spend_logs(api_key=key), timeout=4)[0]
    assert time.monotonic() - left < 4   # well before the upstream's answer, 6 s after the request
    assert row["status"] == "failure"
    assert row["metadata"]["error_information"]["error_code"] == "499"


def test_sigterm_past_the_graceful_timeout_records_an_unanswered_request_as_failed(e2e_dir, stand_in):
    stand_in.behave(delay_ms=8000)
    env = {"GATEWAY_SPEND_FLUSH_INTERVAL": "600", "GATEWAY_GRACEFUL_TIMEOUT": "1"}
    with launch_gateway(e2e_dir, config(stand_in), name="graceful-plain", env=env) as gw:
        database_url = gw.process.env["DATABASE_URL"]
        outcome = []
        client = threading.Thread(target=lambda: outcome.append(_plain_call(gw.base_url)), daemon=True)
        client.start()
        stand_in.wait_for_requests(1)
        assert gw.process.stop(timeout=30) == 0
        client.join(10)
        assert outcome == [503]  # an answer saying so, not a bare 500
        rows = stored_rows(database_url)
    assert [(r["status"], r["metadata"]["error_information"]["error_code"]) for r in rows] == [("failure", "499")]


def _plain_call(base_url: str, timeout: float = 30) -> int | str:
    try:
        return httpx2.post(f"{base_url}/chat/completions", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                           json={"model": "slow", "messages": [{"role": "user", "content": "hi"}]},
                           timeout=timeout, trust_env=False).status_code
    except httpx2.TransportError:
        return "no answer"


def _exchange(sock, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on ``sock`` and its answer (a content-length body), read as a client would."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        part = sock.recv(65536)
        assert part, f"the connection was closed before an answer (got {data!r})"
        data += part
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        part = sock.recv(65536)
        assert part, "the connection was closed in the middle of an answer"
        body += part
    return int(lines[0].split()[1]), headers, body


def test_a_request_on_an_idle_keep_alive_connection_as_the_worker_stops_is_served_not_reset(e2e_dir, stand_in):
    """A client reusing a keep-alive connection just as the worker starts to shut down (SIGTERM, or a SIGHUP
    reload replacing it) had its request reset: uvicorn closed idle connections at once. The request is
    served now, with Connection: close (proxy/server.py)."""
    import socket

    stand_in.behave(delay_ms=0)
    body = json.dumps({"model": "slow", "messages": [{"role": "user", "content": "hi"}]}).encode()
    with launch_gateway(e2e_dir, config(stand_in), name="graceful-idle") as gw:
        host, port = gw.base_url.removeprefix("http://").split(":")
        request = (f"POST /chat/completions HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {MASTER_KEY}\r\n"
                   f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            status, headers, _ = _exchange(sock, request)
            assert status == 200 and headers.get("connection") != "close"   # kept alive, now idle
            os.kill(gw.process.pid, signal.SIGTERM)
            wait_for(lambda: "Shutting down" in gw.process.log_path.read_text())

            status, headers, answer = _exchange(sock, request)   # the next call, on the same connection

            assert status == 200 and json.loads(answer)["choices"]
            assert headers["connection"] == "close"
            assert sock.recv(1) == b""   # and then closed by the gateway
        wait_for(lambda: gw.process.returncode is not None, timeout=30)
        assert gw.process.returncode == 0


@pytest.mark.deployment
def test_sighup_reloads_the_config_replacing_workers_one_by_one(e2e_dir, stand_in):
    stand_in.behave(delay_ms=50)
    with launch_gateway(e2e_dir, config(stand_in), name="reload", workers=2) as gw:
        def models() -> set[str]:
            response = gw.admin("GET", "/v1/models")
            assert response.status_code == 200, response.text
            return {m["id"] for m in response.json()["data"]}

        assert models() == {"slow"}
        stop, statuses = threading.Event(), []

        def load() -> None:
            with httpx2.Client(base_url=gw.base_url, timeout=30, trust_env=False) as http:
                while not stop.is_set():
                    try:
                        statuses.append(http.post("/chat/completions",
                                                  headers={"Authorization": f"Bearer {MASTER_KEY}"},
                                                  json={"model": "slow", "messages": [{"role": "user",
                                                                                       "content": "hi"}]}
                                                  ).status_code)
                    except httpx2.TransportError as exc:   # e.g. a reset: counted, not a silently dead thread
                        statuses.append(repr(exc))

        clients = [threading.Thread(target=load, daemon=True) for _ in range(3)]
        for client in clients:
            client.start()
        (e2e_dir / "reload.yaml").write_text(config(stand_in).replace("model_list:\n", f"""model_list:
  - model_name: added
    litellm_params: {{model: openai/added, api_base: {stand_in.base_url}/v1, api_key: os.environ/E2E_UPSTREAM_KEY}}
""", 1))
        os.kill(gw.process.pid, signal.SIGHUP)
        # both old workers replaced (each new one serving before its old one is stopped), under load
        wait_for(lambda: gw.process.log_path.read_text().count("Application shutdown complete") >= 2, timeout=60)
        stop.set()
        for client in clients:
            client.join(30)
        assert statuses and set(statuses) == {200}
        assert all(models() == {"slow", "added"} for _ in range(6))
        assert gw.process.stop(timeout=30) == 0


def test_a_client_that_gives_up_before_the_answer_is_recorded_as_failed(gateway, stand_in):
    stand_in.behave(delay_ms=1500)
    key = gateway.new_key(key_alias="gives-up")
    with pytest.raises(httpx2.TimeoutException):
        httpx2.post(f"{gateway.base_url}/chat/completions", headers={"Authorization": f"Bearer {key}"},
                    json={"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]},
                    timeout=0.5, trust_env=False)
    row = wait_for(lambda: [r for r in gateway.spend_logs() if r["metadata"].get("user_api_key_alias") == "gives-up"])
    assert len(row) == 1 and row[0]["status"] == "failure"
    assert row[0]["metadata"]["error_information"]["error_code"] == "499"
