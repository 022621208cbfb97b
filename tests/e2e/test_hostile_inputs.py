"""Hostile inputs, each refused with the right status and error JSON; the upstream sees nothing and
the gateway keeps serving. (docs/security.md lists what is covered here and elsewhere.)"""
import pytest

from tests.e2e.conftest import MASTER_KEY

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"}


def still_serving(gateway):
    return gateway.http.get("/health/liveliness").status_code == 200


@pytest.mark.parametrize("name, body, status, param", [
    ("deeply nested JSON", b"[" * 100_000 + b"]" * 100_000, 400, "request_body"),
    ("NaN is not JSON", b'{"model": "gpt-3.5-turbo", "messages": NaN}', 400, "request_body"),
    ("form-encoded body", b"model=gpt-3.5-turbo&messages=hi", 400, "request_body"),
    ("binary garbage", bytes(range(256)), 400, "request_body"),
    ("model with a NUL byte", b'{"model": "gpt-3.5-turbo\\u0000", "messages": [{"role": "user", "content": "x"}]}',
     400, "model"),
    ("messages as an object", b'{"model": "gpt-3.5-turbo", "messages": {"role": "user"}}', 400, "messages"),
])
def test_hostile_bodies_are_400(gateway, stand_in, name, body, status, param):
    response = gateway.http.post("/chat/completions", content=body, headers=AUTH)

    assert response.status_code == status, name
    assert response.json()["error"]["param"] == param
    assert stand_in.requests() == []
    assert still_serving(gateway)


def test_a_key_in_the_query_string_is_not_accepted(gateway, stand_in):
    response = gateway.http.post(f"/chat/completions?api_key={MASTER_KEY}&key={MASTER_KEY}",
                                 json={"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "x"}]})

    assert response.status_code == 401
    assert stand_in.requests() == []


def test_oversized_headers_are_refused_before_the_application(gateway, stand_in):
    response = gateway.http.post("/chat/completions", headers={**AUTH, "X-Padding": "a" * 200_000},
                                 json={"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "x"}]})

    assert response.status_code in (400, 413, 431)
    assert stand_in.requests() == []
    assert still_serving(gateway)


def test_an_oversized_key_header_is_just_an_unknown_key(gateway):
    response = gateway.http.get("/v1/models", headers={"Authorization": "Bearer sk-" + "x" * 8000})

    assert response.status_code == 401
    assert "x" * 100 not in response.text


def test_a_management_call_with_a_non_object_body_creates_nothing(gateway):
    before = gateway.admin("GET", "/key/list").json()["total_count"]

    response = gateway.admin("POST", "/key/generate", content=b'["not", "an", "object"]',
                             headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert gateway.admin("GET", "/key/list").json()["total_count"] == before


def test_the_ledger_keeps_writing_after_hostile_text_in_a_request(gateway):
    key = gateway.new_key()
    hostile = gateway.http.post("/chat/completions", headers={"Authorization": f"Bearer {key}"}, json={
        "model": "fake-openai-endpoint", "user": "evil\u0000user",
        "metadata": {"tags": ["t\u0000"], "spend_logs_metadata": {"\u0000": "\u0000"}},
        "messages": [{"role": "user", "content": "hi"}]})
    normal = gateway.http.post("/chat/completions", headers={"Authorization": f"Bearer {key}"},
                               json={"model": "fake-openai-endpoint", "messages": [{"role": "user", "content": "hi"}]})

    assert hostile.status_code == 200 and normal.status_code == 200
    assert gateway.spend_row(hostile.json()["id"])["end_user"] == "eviluser"
    assert gateway.spend_row(normal.json()["id"])["status"] == "success"
