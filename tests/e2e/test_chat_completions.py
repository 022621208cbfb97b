"""Chat completions through the live gateway with the official openai SDK."""
import pytest

from tests.e2e.conftest import UPSTREAM_KEY, wait_for

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "user", "content": "this is a test request, write a short poem"}]


def test_master_key_chat_completion_through_the_sdk(gateway, stand_in):
    response = gateway.sdk().chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES)

    assert response.choices[0].message.content == "Hello from the stand-in upstream."
    assert response.model == "gpt-3.5-turbo"
    assert response.usage.prompt_tokens == 9 and response.usage.completion_tokens == 5


def test_the_upstream_gets_its_own_model_name_and_key_and_never_gateway_metadata(gateway, stand_in):
    gateway.sdk().chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES, user="end-user-1",
                                          extra_body={"metadata": {"tags": ["t"], "spend_logs_metadata": {"a": 1}}})

    [seen] = stand_in.requests()
    assert seen["body"]["model"] == "gpt-3.5-turbo"
    assert seen["body"]["messages"] == MESSAGES
    assert seen["body"]["user"] == "end-user-1"
    assert "metadata" not in seen["body"]
    assert seen["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_a_virtual_key_calls_the_proxy(gateway, stand_in):
    key = gateway.new_key(models=["gpt-3.5-turbo"])

    response = gateway.sdk(key).chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES)

    assert response.choices[0].finish_reason == "stop"


def test_the_built_in_fake_model_answers_without_any_upstream(gateway, stand_in):
    response = gateway.sdk().chat.completions.create(model="fake-openai-endpoint", messages=MESSAGES)

    assert response.choices[0].message.content
    assert stand_in.requests() == []


def test_response_headers_name_the_call_and_its_cost(gateway, stand_in):
    raw = gateway.sdk().chat.completions.with_raw_response.create(model="priced-model", messages=MESSAGES)

    assert raw.headers["x-litellm-model-group"] == "priced-model"
    assert raw.headers["x-litellm-call-id"]
    # 9 prompt tokens × 0.0001 + 5 completion tokens × 0.0002
    assert float(raw.headers["x-litellm-response-cost"]) == pytest.approx(0.0019)


def test_a_successful_call_writes_one_spend_row_with_cost_and_usage(gateway, stand_in):
    key = gateway.new_key(key_alias="spend-row-key")

    response = gateway.sdk(key).chat.completions.create(model="priced-model", messages=MESSAGES, user="cust-42")

    row = gateway.spend_row(response.id)
    assert row["status"] == "success" and row["call_type"] == "acompletion"
    assert row["model_group"] == "priced-model" and row["model"] == "house-model"
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (9, 5, 14)
    assert row["spend"] == pytest.approx(0.0019)
    assert row["end_user"] == "cust-42"
    assert row["metadata"]["user_api_key_alias"] == "spend-row-key"
    assert row["requester_ip_address"] == "127.0.0.1"


def test_a_model_without_a_known_price_is_flagged_not_silently_free(gateway, stand_in):
    response = gateway.sdk().chat.completions.create(model="unpriced-model", messages=MESSAGES)

    row = gateway.spend_row(response.id)
    assert row["metadata"]["cost_unknown"] is True
    assert row["spend"] is None


def test_spend_is_added_to_the_key(gateway, stand_in):
    key = gateway.new_key()
    client = gateway.sdk(key)

    for _ in range(2):
        client.chat.completions.create(model="priced-model", messages=MESSAGES)

    def key_spend():
        return gateway.admin("GET", "/key/info", params={"key": key}).json()["info"]["spend"]

    wait_for(lambda: key_spend() > 0.0037)
    assert key_spend() == pytest.approx(0.0038)


def test_models_lists_only_what_the_key_may_call(gateway):
    key = gateway.new_key(models=["gpt-3.5-turbo", "fake-openai-endpoint"])

    ids = [m.id for m in gateway.sdk(key).models.list()]

    assert ids == ["gpt-3.5-turbo", "fake-openai-endpoint"]


def test_master_key_lists_every_model(gateway):
    ids = [m.id for m in gateway.sdk().models.list()]

    assert ids == ["gpt-3.5-turbo", "priced-model", "unpriced-model", "dead-model", "fake-openai-endpoint",
                   "azure-gpt", "claude"]


def test_health_endpoints_answer_without_a_key(gateway):
    assert gateway.http.get("/health/liveliness").json() == "I'm alive!"
    assert gateway.http.get("/health/readiness").json() == {"status": "healthy", "db": "connected",
                                                             "spend_stream": "disabled"}
