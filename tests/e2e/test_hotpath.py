"""The hot-path dispatch (proxy/hotpath.py) on a live gateway: the proxy's routes, served without Django's
middleware stack, keep what that stack gave them, and their database reads survive a dropped connection."""
from __future__ import annotations

import os

import dj_database_url
import psycopg
import pytest

from tests.e2e.conftest import MASTER_KEY, _fresh_database_url, launch_gateway

pytestmark = pytest.mark.e2e

MASTER = {"Authorization": f"Bearer {MASTER_KEY}"}
HELLO = [{"role": "user", "content": "hello"}]
SECURITY_HEADERS = ("x-content-type-options", "x-frame-options", "referrer-policy", "cross-origin-opener-policy")


def test_answers_and_streams_carry_the_security_headers_of_djangos_routes(gateway, stand_in):
    django_route = gateway.http.get("/health/liveliness")
    answer = gateway.http.post("/v1/chat/completions", headers=MASTER, json={"model": "gpt-3.5-turbo",
                                                                              "messages": HELLO})
    stream = gateway.http.post("/chat/completions", headers=MASTER, json={"model": "gpt-3.5-turbo",
                                                                           "messages": HELLO, "stream": True})

    assert answer.status_code == 200 and stream.status_code == 200
    assert stream.text.rstrip().endswith("data: [DONE]")
    expected = {name: django_route.headers[name] for name in SECURITY_HEADERS}
    assert expected["x-content-type-options"] == "nosniff"
    assert {name: answer.headers.get(name) for name in SECURITY_HEADERS} == expected
    assert {name: stream.headers.get(name) for name in SECURITY_HEADERS} == expected


def test_an_error_on_a_hot_route_is_the_contracts_json(gateway):
    response = gateway.http.post("/embeddings", headers={"Authorization": "Bearer sk-no-such-key"},
                                 json={"model": "text-embedding-ada-002", "input": "hi"})

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()["error"]) >= {"message", "type", "param", "code"}
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_buffered_answer_says_its_length_and_a_stream_comes_chunked(gateway):
    """As LiteLLM's answers: a JSON body with its content-length, not chunked; a stream as it comes."""
    answer = gateway.http.post("/v1/chat/completions", headers=MASTER, json={"model": "gpt-3.5-turbo",
                                                                              "messages": HELLO})
    error = gateway.http.post("/v1/chat/completions", headers=MASTER, json={"model": "no-such-model",
                                                                             "messages": HELLO})
    stream = gateway.http.post("/chat/completions", headers=MASTER, json={"model": "gpt-3.5-turbo",
                                                                           "messages": HELLO, "stream": True})

    for response in (answer, error):
        assert response.headers["content-length"] == str(len(response.content))
        assert "transfer-encoding" not in response.headers
    assert answer.status_code == 200 and error.status_code == 400
    assert stream.headers["transfer-encoding"] == "chunked" and "content-length" not in stream.headers


def test_a_wrong_method_on_a_hot_route_is_405(gateway):
    assert gateway.http.get("/chat/completions", headers=MASTER).status_code == 405


def _terminate_connections(database_url: str) -> int:
    parts = dj_database_url.parse(os.environ["DATABASE_URL"])
    with psycopg.connect(host=parts["HOST"] or "127.0.0.1", port=parts["PORT"] or 5432,
                         user=parts["USER"] or "postgres", dbname="postgres", autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                            [database_url.rsplit("/", 1)[1]]).fetchall()
    return len(rows)


@pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"),
                    reason="drops the gateway's PostgreSQL connections")
def test_a_key_is_read_on_a_new_connection_after_the_database_dropped_the_old_one(e2e_dir, upstream):
    config = f"""model_list:
  - model_name: gpt-3.5-turbo
    litellm_params: {{model: openai/gpt-3.5-turbo, api_base: {upstream.base_url}/v1, api_key: os.environ/E2E_UPSTREAM_KEY}}
general_settings:
  master_key: {MASTER_KEY}
"""
    database_url, drop = _fresh_database_url(e2e_dir)
    try:
        with launch_gateway(e2e_dir, config, name="hotpath-db", database_url=database_url) as gw:
            def chat(key: str) -> int:
                return gw.http.post("/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                    json={"model": "gpt-3.5-turbo", "messages": HELLO}).status_code

            assert chat(gw.new_key()) == 200   # the hot path's reads now hold a connection
            assert _terminate_connections(database_url) >= 1
            second = gw.new_key()              # a key the gateway has not read yet

            assert chat(second) == 200
    finally:
        drop()
