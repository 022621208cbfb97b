"""The rest of the OpenAI surface through the live gateway: completions, embeddings, Azure-style
paths, /model/info and /health."""
import openai
import pytest

from tests.e2e.conftest import MASTER_KEY, UPSTREAM_KEY

pytestmark = pytest.mark.e2e


def test_text_completions_through_the_sdk(gateway, stand_in):
    response = gateway.sdk().completions.create(model="gpt-3.5-turbo", prompt="Say hello")

    assert response.object == "text_completion"
    assert response.choices[0].text
    assert response.model == "gpt-3.5-turbo"
    [seen] = stand_in.requests()
    assert seen["path"] == "/v1/completions" and seen["body"]["prompt"] == "Say hello"


def test_embeddings_through_the_sdk_and_their_spend_row(gateway, stand_in):
    response = gateway.sdk().embeddings.create(model="priced-model", input=["write a litellm poem", "another"])

    assert len(response.data) == 2 and len(response.data[0].embedding) > 0
    [seen] = stand_in.requests()
    assert seen["path"] == "/v1/embeddings"
    raw = gateway.sdk().embeddings.with_raw_response.create(model="priced-model", input="one more")
    row = gateway.spend_row(raw.headers["x-litellm-call-id"])  # embeddings have no response id
    assert row["call_type"] == "aembedding" and row["model_group"] == "priced-model"
    assert row["prompt_tokens"] == 2 and row["completion_tokens"] == 0


def test_the_fake_model_serves_every_endpoint(gateway):
    client = gateway.sdk()

    assert client.embeddings.create(model="fake-openai-endpoint", input="hi").data[0].embedding
    assert client.completions.create(model="fake-openai-endpoint", prompt="hi").choices[0].text


def test_bad_embedding_input_is_400(gateway):
    response = gateway.admin("POST", "/embeddings", json={"model": "priced-model"})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input"


def test_azure_deployment_through_the_gateway(gateway, azure_stand_in):
    response = gateway.sdk().chat.completions.create(model="azure-gpt", messages=[{"role": "user", "content": "hi"}])

    assert response.model == "azure-gpt"
    [seen] = azure_stand_in.requests()
    assert seen["path"] == "/openai/deployments/my-gpt4o-deployment/chat/completions"
    assert "api-version=2024-10-21" in seen["query"]
    assert seen["headers"]["api-key"] == UPSTREAM_KEY


def test_the_azure_sdk_can_call_the_gateway_on_its_deployment_paths(gateway, stand_in):
    client = openai.AzureOpenAI(azure_endpoint=gateway.base_url, api_key=MASTER_KEY, api_version="2024-10-21",
                                max_retries=0)

    response = client.chat.completions.create(model="gpt-3.5-turbo", messages=[{"role": "user", "content": "hi"}])

    assert response.choices[0].message.content == "Hello from the stand-in upstream."
    assert stand_in.requests()[0]["body"]["model"] == "gpt-3.5-turbo"


def test_model_info_shows_prices_and_limits_but_never_upstream_keys(gateway):
    response = gateway.admin("GET", "/model/info")

    assert response.status_code == 200
    assert UPSTREAM_KEY not in response.text
    entries = {d["model_name"]: d for d in response.json()["data"]}
    priced = entries["priced-model"]
    assert priced["model_info"]["input_cost_per_token"] == 0.0001
    assert priced["model_info"]["litellm_provider"] == "openai"
    assert "api_key" not in priced["litellm_params"]


def test_model_info_hides_upstream_addresses_from_non_admin_keys(gateway):
    key = gateway.new_key(models=["priced-model"])

    data = gateway.http.get("/model/info", headers={"Authorization": f"Bearer {key}"}).json()["data"]

    assert [d["model_name"] for d in data] == ["priced-model"]
    assert "api_base" not in data[0]["litellm_params"]


def test_health_probes_every_deployment(gateway, stand_in):
    body = gateway.admin("GET", "/health").json()

    unhealthy = {e["model"] for e in body["unhealthy_endpoints"]}
    healthy = {e["model"] for e in body["healthy_endpoints"]}
    assert unhealthy == {"dead-model"}
    assert {"gpt-3.5-turbo", "fake-openai-endpoint", "azure-gpt"} <= healthy
    assert body["healthy_count"] == len(body["healthy_endpoints"])


def test_health_is_for_proxy_admins(gateway):
    key = gateway.new_key()

    assert gateway.http.get("/health", headers={"Authorization": f"Bearer {key}"}).status_code == 403


def test_spend_calculate_prices_a_completion_response_with_the_deployment_price(gateway):
    response = gateway.admin("POST", "/spend/calculate", json={"completion_response": {
        "model": "priced-model", "usage": {"prompt_tokens": 8, "completion_tokens": 0, "total_tokens": 8}}})

    assert response.status_code == 200
    assert response.json()["cost"] == pytest.approx(0.0008)  # the contract's observed example


def test_spend_calculate_estimates_a_request_without_sending_it(gateway, stand_in):
    response = gateway.admin("POST", "/spend/calculate", json={
        "model": "priced-model", "messages": [{"role": "user", "content": "Hey, how's it going?"}]})

    body = response.json()
    assert body["prompt_tokens"] > 0 and body["cost"] == pytest.approx(body["prompt_tokens"] * 0.0001)
    assert stand_in.requests() == []


def test_spend_calculate_says_unknown_for_an_unpriced_model(gateway):
    response = gateway.admin("POST", "/spend/calculate", json={"completion_response": {
        "model": "unpriced-model", "usage": {"prompt_tokens": 8, "completion_tokens": 2}}})

    assert response.json()["cost"] is None


def test_spend_calculate_needs_a_key(gateway):
    assert gateway.http.post("/spend/calculate", json={"model": "priced-model", "messages": []}).status_code == 401
