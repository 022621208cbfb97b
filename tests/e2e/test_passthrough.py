"""Pass-through endpoints on a live gateway, forwarding to a stand-in that records what it received."""
from __future__ import annotations

import http.client
import json
import time

import httpx2
import orjson
import pytest

from tests.e2e.conftest import MASTER_KEY, UPSTREAM_KEY, launch_gateway, launch_stand_in, wait_for
from tests.servers.process import free_port

pytestmark = pytest.mark.e2e

DEAD_TARGET_SECRET = "sk-dead-target-secret-never-shown"

CONFIG = """
router_settings:
  timeout: 2            # seconds: the pooled clients' time-out, pass-through targets' too
general_settings:
  master_key: {master_key}
  pass_through_endpoints:
    - path: /v1/rerank
      target: {target}/v1/embeddings?fixed=1
      headers:
        Authorization: "Bearer os.environ/E2E_UPSTREAM_KEY"
        X-Configured: configured-value
      auth: true
    - path: /open/*
      target: {target}/v1
      headers:
        Authorization: "Bearer os.environ/E2E_UPSTREAM_KEY"
      forward_headers: true
    - path: /llm/*
      target: {target}/v1/
      headers:
        Authorization: "Bearer os.environ/E2E_UPSTREAM_KEY"
      auth: true
    - path: /down
      target: http://127.0.0.1:{dead_port}/hidden-target-path
      headers:
        Authorization: "Bearer os.environ/DEAD_TARGET_SECRET"
"""

EMBEDDING_BODY = {"model": "embedder", "input": "rank these documents"}


@pytest.fixture(scope="module")
def target_server(e2e_dir):
    with launch_stand_in(e2e_dir, "passthrough-target") as client:
        yield client


@pytest.fixture(scope="module")
def dead_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def live(e2e_dir, target_server, dead_port):
    config = CONFIG.format(master_key=MASTER_KEY, target=target_server.base_url, dead_port=dead_port)
    with launch_gateway(e2e_dir, config, name="passthrough-gateway",
                        env={"DEAD_TARGET_SECRET": DEAD_TARGET_SECRET}) as gateway:
        yield gateway


@pytest.fixture
def target(target_server):
    """The stand-in target, its recorded requests and injected failures cleared for this test."""
    target_server.reset()
    target_server.clear()
    yield target_server
    target_server.reset()


@pytest.fixture(scope="module")
def virtual_key(live) -> str:
    return live.new_key(key_alias="pass-through-user")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def raw_request(gateway, method: str, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Send the request-target exactly as written (httpx would normalise dot segments away)."""
    url = httpx2.URL(gateway.base_url)
    connection = http.client.HTTPConnection(url.host, url.port, timeout=10)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# Forwarding --------------------------------------------------------------------------------------


def test_method_query_body_and_configured_headers_reach_the_target(live, target, virtual_key):
    response = live.http.post("/v1/rerank", params={"top_n": "3"}, json=EMBEDDING_BODY, headers=bearer(virtual_key))

    assert response.status_code == 200, response.text
    assert response.json()["object"] == "list"
    [seen] = target.requests()
    assert (seen["method"], seen["path"], seen["query"]) == ("POST", "/v1/embeddings", "fixed=1&top_n=3")
    assert seen["body"] == EMBEDDING_BODY
    assert seen["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert seen["headers"]["x-configured"] == "configured-value"
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["headers"]["host"] == httpx2.URL(target.base_url).netloc.decode()


def test_the_gateway_key_never_reaches_the_target(live, target, virtual_key):
    response = live.http.post("/v1/rerank", json=EMBEDDING_BODY,
                              headers={"x-litellm-api-key": virtual_key, "api-key": virtual_key})

    assert response.status_code == 200, response.text
    [seen] = target.requests()
    assert "x-litellm-api-key" not in seen["headers"] and "api-key" not in seen["headers"]
    assert virtual_key not in json.dumps(seen)


def test_client_headers_stay_behind_unless_forward_headers_is_on(live, target, virtual_key):
    live.http.post("/v1/rerank", json=EMBEDDING_BODY, headers={**bearer(virtual_key), "X-Client": "one"})
    live.http.get("/open/models", headers={"X-Client": "two"})

    closed, forwarded = target.requests()
    assert "x-client" not in closed["headers"]
    assert forwarded["headers"]["x-client"] == "two"


def test_forwarded_headers_leave_out_credentials_cookies_and_hop_by_hop_headers(live, target):
    response = live.http.get("/open/models", headers={
        "Authorization": f"Bearer {MASTER_KEY}", "x-litellm-api-key": MASTER_KEY, "api-key": MASTER_KEY,
        "Cookie": "sessionid=admin-session", "Keep-Alive": "timeout=5", "Proxy-Authorization": "Basic eA==",
        "TE": "trailers", "X-Hop": "named-in-connection", "Connection": "keep-alive, X-Hop", "X-Kept": "yes"})

    assert response.status_code == 200, response.text
    [seen] = target.requests()
    received = seen["headers"]
    assert received["x-kept"] == "yes"
    assert received["authorization"] == f"Bearer {UPSTREAM_KEY}"   # the configured one, not the client's
    for name in ("x-litellm-api-key", "api-key", "cookie", "keep-alive", "proxy-authorization", "te", "x-hop"):
        assert name not in received, name
    assert MASTER_KEY not in json.dumps(seen)


def test_sub_paths_and_their_query_go_under_the_target_base_path(live, target):
    response = live.http.get("/open/models", params={"page": "2", "q": "a b"})

    assert response.status_code == 200
    [seen] = target.requests()
    assert (seen["method"], seen["path"], seen["query"]) == ("GET", "/v1/models", "page=2&q=a+b")


def test_a_body_larger_than_djangos_memory_spool_is_forwarded_whole(live, target):
    body = b"x" * (3 * 1024 * 1024 + 7)   # past FILE_UPLOAD_MAX_MEMORY_SIZE: read back from disk in a thread

    response = live.http.put("/open/upload", content=body, headers={"content-type": "application/octet-stream"})

    assert response.status_code == 404   # the stand-in has no /v1/upload, but it recorded the request
    [seen] = target.requests()
    assert (seen["method"], seen["headers"]["content-length"]) == ("PUT", str(len(body)))
    assert len(seen["body"]) == len(body)


def test_a_chunked_upload_is_forwarded_chunked(live, target):
    def parts():
        yield b'{"model": "stand-in-model", '
        yield b'"input": "streamed upload"}'

    response = live.http.post("/open/embeddings", content=parts(), headers={"content-type": "application/json"})

    assert response.status_code == 200, response.text
    [seen] = target.requests()
    assert seen["body"] == {"model": "stand-in-model", "input": "streamed upload"}
    assert seen["headers"]["transfer-encoding"] == "chunked"


def test_the_target_response_status_headers_and_body_come_back_as_they_are(live, target):
    response = live.http.get("/open/no-such-thing")

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Unknown path /v1/no-such-thing"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-litellm-call-id"]
    assert "sandbox" in response.headers["content-security-policy"]


def test_a_target_error_is_relayed_with_its_own_status_and_body(live, target, virtual_key):
    target.behave(status=503, body={"error": "target overloaded"})

    response = live.http.post("/v1/rerank", json=EMBEDDING_BODY, headers=bearer(virtual_key))

    assert response.status_code == 503
    assert response.json() == {"error": "target overloaded"}
    row = live.spend_row(response.headers["x-litellm-call-id"])
    assert row["status"] == "failure"


# Authentication and spend ------------------------------------------------------------------------


def test_an_auth_endpoint_refuses_a_caller_without_a_key(live, target):
    response = live.http.post("/v1/rerank", json=EMBEDDING_BODY)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "401"
    assert target.requests() == []


def test_an_auth_endpoint_refuses_an_unknown_or_blocked_key(live, target):
    blocked = live.new_key(key_alias="blocked-pass-through-user")
    assert live.admin("POST", "/key/block", json={"key": blocked}).status_code == 200

    unknown = live.http.post("/v1/rerank", json=EMBEDDING_BODY, headers=bearer("sk-not-a-key"))
    refused = wait_for(lambda: (r := live.http.post("/v1/rerank", json=EMBEDDING_BODY, headers=bearer(blocked)))
                       .status_code == 401 and r)

    assert unknown.status_code == 401
    assert "blocked" in refused.json()["error"]["message"]
    assert target.requests() == []


def test_a_call_with_a_virtual_key_leaves_a_spend_row_without_the_target_secret(live, target, virtual_key):
    response = live.http.post("/v1/rerank", json=EMBEDDING_BODY, headers=bearer(virtual_key))

    assert response.status_code == 200
    row = live.spend_row(response.headers["x-litellm-call-id"])
    assert row["call_type"] == "pass_through_endpoint"
    assert row["model_group"] == "/v1/rerank"
    assert row["status"] == "success"
    assert row["spend"] == 0
    assert row["metadata"]["user_api_key_alias"] == "pass-through-user"
    assert UPSTREAM_KEY not in json.dumps(row)


def test_an_open_endpoint_needs_no_key_and_leaves_no_spend_row(live, target):
    response = live.http.get("/open/models")

    assert response.status_code == 200
    assert response.json()["data"][0]["id"] == "stand-in-model"
    assert live.spend_logs(request_id=response.headers["x-litellm-call-id"]) == []


# Streaming ---------------------------------------------------------------------------------------


def test_a_streamed_answer_is_relayed_chunk_by_chunk(live, target, virtual_key):
    target.behave(chunk_delay_ms=150)
    body = {"model": "stand-in-model", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    started = time.monotonic()
    first_at, received = None, b""
    with live.http.stream("POST", "/llm/chat/completions", json=body, headers=bearer(virtual_key)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for chunk in response.iter_raw():
            first_at = first_at or time.monotonic() - started
            received += chunk
    total = time.monotonic() - started

    assert received.endswith(b"data: [DONE]\n\n")
    assert received.count(b"data: ") >= 6
    assert first_at < total - 0.5, (first_at, total)
    row = live.spend_row(response.headers["x-litellm-call-id"])
    assert (row["status"], row["model_group"]) == ("success", "/llm/*")


# Failures ----------------------------------------------------------------------------------------


def test_an_unreachable_target_is_a_502_that_names_neither_address_nor_headers(live, dead_port):
    response = live.http.post("/down", json={"x": 1})

    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "502"
    for secret in (str(dead_port), "hidden-target-path", "127.0.0.1", DEAD_TARGET_SECRET):
        assert secret not in response.text
    log = live.process.log_path.read_text(errors="replace")
    assert DEAD_TARGET_SECRET not in log and UPSTREAM_KEY not in log


def test_a_target_slower_than_the_time_out_is_a_408(live, target):
    target.behave(delay_ms=3000)

    response = live.http.get("/open/models")

    assert response.status_code == 408
    assert response.json()["error"]["type"] == "timeout"
    assert target.base_url not in response.text


TRAVERSALS = [
    "/open/../admin/",
    "/open/..",
    "/open/%2e%2e/admin/",
    "/open/%2E%2e/admin/",
    "/open/.%2E/x",
    "/open/..%2fadmin/",
    "/open/..%2F..%2Fkey/generate",
    "/open/x/..%5c..%5cadmin",
    "/open/%5c%5cevil.example/x",
    "/open/%252e%252e/admin/",
    "/open/%25252e%25252e/admin/",
    "/open/..;/admin/",
    "/open/%EF%BC%8E%EF%BC%8E/admin/",
    "/open//evil.example/x",
    "/open/%2F%2Fevil.example/x",
    "/open/http://evil.example/x",
    "/open/http:%2F%2Fevil.example/x",
    "/open/x%00y",
    "/open/x%0d%0aInjected:%20header",
    "/open/%c0%ae%c0%ae/admin/",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_a_sub_path_that_could_leave_the_target_base_path_is_refused(live, target, path):
    status, body = raw_request(live, "GET", path)

    assert status == 400, body
    error = orjson.loads(body)["error"]
    assert (error["code"], error["param"]) == ("400", "path")
    assert target.requests() == []


def test_a_raw_backslash_in_the_path_never_reaches_the_target(live, target):
    status, _ = raw_request(live, "GET", "/open/..\\..\\admin")

    assert status == 400
    assert target.requests() == []


@pytest.mark.parametrize("method", ["TRACE", "CONNECT"])
def test_methods_that_would_echo_or_tunnel_are_not_forwarded(live, target, method):
    status, body = raw_request(live, method, "/open/models")

    assert status == 405, body
    assert target.requests() == []


def test_an_absolute_form_request_target_cannot_choose_the_host(live, target):
    status, _ = raw_request(live, "GET", "http://evil.example/open/models")

    assert status == 200
    [seen] = target.requests()
    assert seen["path"] == "/v1/models"
    assert seen["headers"]["host"] == httpx2.URL(target.base_url).netloc.decode()
