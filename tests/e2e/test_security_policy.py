"""The seed's security features replayed against a running gateway: route control, IP allow-lists,
size limits, enforced params."""
from __future__ import annotations

import socket

import pytest

from tests.e2e.conftest import MASTER_KEY, launch_gateway, wait_for

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "Hello, Claude"}]


def policy_config(general: str, extra_models: str = "") -> str:
    return f"""model_list:
  - model_name: fake-openai-endpoint
    litellm_params: {{model: fake/fake-openai-endpoint, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: gpt-3.5-turbo
    litellm_params: {{model: fake/gpt-3.5-turbo}}
  - model_name: text-embedding-ada-002
    litellm_params: {{model: fake/text-embedding-ada-002}}
    model_info: {{mode: embedding}}
{extra_models}general_settings:
  master_key: {MASTER_KEY}
{general}"""


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def routes_gateway(e2e_dir):
    general = """  public_routes: ["LiteLLMRoutes.public_routes", "/spend/calculate"]
  admin_only_routes: ["/key/generate"]
  allowed_routes: ["/chat/completions", "/spend/calculate", "LiteLLMRoutes.public_routes", "/key/generate",
                   "/key/info", "/spend/logs", "/v1/chat/completions"]
"""
    with launch_gateway(e2e_dir, policy_config(general), name="routes") as live:
        yield live


def test_public_route_works_without_a_key(routes_gateway):
    response = routes_gateway.http.post("/spend/calculate", json={
        "model": "gpt-4", "messages": [{"role": "user", "content": "Hey, how's it going?"}]})

    assert response.status_code == 200, response.text
    assert "cost" in response.json()


def test_admin_only_route_works_for_the_master_key(routes_gateway):
    assert routes_gateway.http.post("/key/generate", json={}, headers=bearer(MASTER_KEY)).status_code == 200


def test_admin_only_route_refuses_a_non_admin_key_with_the_seed_error(routes_gateway):
    key = routes_gateway.new_key(user_id="seed-internal-user")

    response = routes_gateway.http.post("/key/generate", json={"user_role": "internal_user"}, headers=bearer(key))

    assert response.status_code == 403
    assert response.json() == {"error": {
        "message": "user not allowed to access this route. Route=/key/generate is an admin only route",
        "type": "auth_error", "param": "None", "code": "403"}}


def test_allowed_route_works(routes_gateway):
    response = routes_gateway.http.post("/chat/completions", json={"model": "fake-openai-endpoint",
                                                                  "messages": HELLO}, headers=bearer(MASTER_KEY))

    assert response.status_code == 200


def test_a_route_outside_allowed_routes_is_refused_even_for_the_master_key(routes_gateway):
    response = routes_gateway.http.post("/embeddings", json={"model": "text-embedding-ada-002",
                                                            "input": ["write a litellm poem"]},
                                        headers=bearer(MASTER_KEY))

    assert response.status_code == 403
    assert response.json() == {"error": {"message": "Route /embeddings not allowed", "type": "auth_error",
                                         "param": "None", "code": "403"}}


def test_public_route_groups_expand(routes_gateway):
    assert routes_gateway.http.get("/health/liveliness").status_code == 200


def test_a_key_limited_to_some_routes(routes_gateway):
    key = routes_gateway.new_key(allowed_routes=["/chat/completions"])

    ok = routes_gateway.http.post("/chat/completions", json={"model": "fake-openai-endpoint", "messages": HELLO},
                                  headers=bearer(key))
    refused = routes_gateway.http.get("/key/info", headers=bearer(key))

    assert ok.status_code == 200
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == (
        "Virtual key is not allowed to call this route. Only allowed to call routes: ['/chat/completions']. "
        "Tried to call route: /key/info")


@pytest.fixture(scope="module")
def limits_gateway(e2e_dir):
    general = """  max_request_size_mb: 0.000000001
  max_response_size_mb: 100
  enforced_params: ["user", "metadata.generation_name"]
"""
    with launch_gateway(e2e_dir, policy_config(general), name="limits") as live:
        yield live


def test_request_over_max_size_gets_the_seed_error(limits_gateway):
    body = b'{"model": "fake-openai-endpoint", "messages": [{"role": "user", "content": "Hello, Claude!"}]}'
    response = limits_gateway.http.post("/v1/chat/completions", content=body,
                                        headers={**bearer(MASTER_KEY), "Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json() == {"error": {
        "message": f"Request size is too large. Request size is {len(body) / 1048576} MB. Max size is 1e-09 MB",
        "type": "bad_request_error", "param": "content-length", "code": 400}}


def test_a_chunked_request_over_max_size_is_refused(limits_gateway):
    def chunks():
        yield b'{"model": "fake-openai-endpoint", '
        yield b'"messages": [{"role": "user", "content": "Hello"}]}'

    response = limits_gateway.http.post("/v1/chat/completions", content=chunks(),
                                        headers={**bearer(MASTER_KEY), "Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("Request size is too large.")


@pytest.fixture(scope="module")
def params_gateway(e2e_dir):
    general = '  enforced_params: ["user", "metadata.generation_name"]\n'
    with launch_gateway(e2e_dir, policy_config(general), name="params") as live:
        yield live


@pytest.fixture(scope="module")
def response_limit_gateway(e2e_dir):
    # 0.0003 MB is 314 bytes: smaller than a chat completion, larger than a few stream events.
    with launch_gateway(e2e_dir, policy_config("  max_response_size_mb: 0.0003\n"), name="responses") as live:
        yield live


def chat(gateway, body, key=MASTER_KEY):
    return gateway.http.post("/chat/completions", json=body, headers=bearer(key))


def test_enforced_param_user_missing(params_gateway):
    response = chat(params_gateway, {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]})

    assert response.status_code == 401
    assert response.json() == {"error": {
        "message": "Authentication Error, BadRequest please pass param=user in request body. This is a required param",
        "type": "auth_error", "param": "None", "code": 401}}


def test_enforced_nested_param_missing(params_gateway):
    response = chat(params_gateway, {"model": "gpt-3.5-turbo", "user": "gm",
                                     "messages": [{"role": "user", "content": "hi"}], "metadata": {}})

    assert response.status_code == 401
    assert response.json()["error"]["message"] == (
        "Authentication Error, BadRequest please pass param=[metadata][generation_name] in request body. "
        "This is a required param")


def test_enforced_params_present_passes(params_gateway):
    response = chat(params_gateway, {"model": "gpt-3.5-turbo", "user": "gm",
                                     "messages": [{"role": "user", "content": "hi"}],
                                     "metadata": {"generation_name": "prod-app"}})

    assert response.status_code == 200
    assert response.json()["object"] == "chat.completion"


def test_enforced_params_set_on_a_key(params_gateway):
    key = params_gateway.new_key(enforced_params=["metadata.trace_id"])

    response = chat(params_gateway, {"model": "gpt-3.5-turbo", "user": "gm", "messages": [
        {"role": "user", "content": "hi"}], "metadata": {"generation_name": "x"}}, key=key)

    assert response.status_code == 401
    assert "param=[metadata][trace_id]" in response.json()["error"]["message"]


def test_a_response_over_max_size_is_refused_but_still_charged(response_limit_gateway):
    key = response_limit_gateway.new_key()

    response = chat(response_limit_gateway, {"model": "fake-openai-endpoint", "messages": HELLO}, key=key)

    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("Response size is too large. Response size is ")
    rows = wait_for(lambda: response_limit_gateway.spend_logs(api_key=key))
    assert rows[0]["status"] == "failure" and rows[0]["spend"] > 0


def test_a_streamed_response_over_max_size_ends_with_an_error_event(response_limit_gateway):
    response = response_limit_gateway.http.post("/chat/completions", headers=bearer(MASTER_KEY), json={
        "model": "fake-openai-endpoint", "stream": True, "messages": HELLO})

    assert response.status_code == 200
    assert "Response size is too large" in response.text.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def ip_gateway(e2e_dir):
    general = """  allowed_ips: ["127.0.0.1", "10.1.0.0/16"]
  use_x_forwarded_for: true
  trusted_proxies: ["127.0.0.1"]
"""
    with launch_gateway(e2e_dir, policy_config(general), name="ips") as live:
        yield live


def test_a_listed_ip_is_let_in(ip_gateway):
    assert ip_gateway.http.get("/v1/models", headers=bearer(MASTER_KEY)).status_code == 200


def test_x_forwarded_for_from_a_trusted_proxy_decides_the_client_ip(ip_gateway):
    refused = ip_gateway.http.get("/v1/models", headers={**bearer(MASTER_KEY), "X-Forwarded-For": "203.0.113.9"})
    allowed = ip_gateway.http.get("/v1/models", headers={**bearer(MASTER_KEY), "X-Forwarded-For": "10.1.2.3"})

    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "Access forbidden: IP address 203.0.113.9 not allowed."
    assert allowed.status_code == 200


def test_the_requester_ip_is_stored_on_the_spend_log(ip_gateway):
    response = ip_gateway.http.post("/chat/completions", headers={**bearer(MASTER_KEY), "X-Forwarded-For": "10.1.9.9"},
                                    json={"model": "fake-openai-endpoint", "messages": HELLO})

    row = ip_gateway.spend_row(response.json()["id"])
    assert row["requester_ip_address"] == "10.1.9.9"
    assert row["metadata"]["requester_ip_address"] == "10.1.9.9"


def test_a_key_with_its_own_allowed_ips(ip_gateway):
    key = ip_gateway.new_key(allowed_ips=["10.1.5.0/24"])

    inside = ip_gateway.http.get("/v1/models", headers={**bearer(key), "X-Forwarded-For": "10.1.5.7"})
    outside = ip_gateway.http.get("/v1/models", headers={**bearer(key), "X-Forwarded-For": "10.1.6.7"})

    assert inside.status_code == 200
    assert outside.status_code == 403


def test_a_spoofed_x_forwarded_for_from_an_untrusted_peer_is_ignored(e2e_dir):
    """Only 127.0.0.2 is trusted here: the test client (127.0.0.1) cannot pick its own address."""
    general = """  allowed_ips: ["127.0.0.1"]
  use_x_forwarded_for: true
  trusted_proxies: ["127.0.0.2"]
"""
    with launch_gateway(e2e_dir, policy_config(general), name="untrusted") as live:
        response = live.http.get("/v1/models", headers={**bearer(MASTER_KEY), "X-Forwarded-For": "10.9.9.9"})
        assert response.status_code == 200  # judged by the real peer, 127.0.0.1, which is listed
        row_response = live.http.post("/chat/completions", headers={**bearer(MASTER_KEY), "X-Forwarded-For": "6.6.6.6"},
                                      json={"model": "fake-openai-endpoint", "messages": HELLO})
        assert live.spend_row(row_response.json()["id"])["requester_ip_address"] == "127.0.0.1"
