"""Guardrails on a live gateway: the seed's examples, replayed over HTTP, proven by what the stand-in
upstream and the stand-in guardrail services received."""
from __future__ import annotations

import openai
import orjson
import pytest

from tests.e2e.conftest import MASTER_KEY, UPSTREAM_KEY, launch_gateway, launch_stand_in, wait_for
from tests.guardrails.conftest import stand_in
from tests.servers.fake_llm_guard import INJECTION
from tests.servers.fake_sagemaker import UNSAFE_TRIGGER

pytestmark = pytest.mark.e2e

MODEL = "gpt-3.5-turbo"
REPLY = "Sure, here is a short answer."
ENDPOINT = "jumpstart-dft-meta-textgeneration-llama-guard-7b"
CHAT = "/chat/completions"


def model_list(upstream_base: str) -> str:
    return f"""model_list:
  - model_name: {MODEL}
    litellm_params:
      model: openai/{MODEL}
      api_base: {upstream_base}/v1
      api_key: os.environ/E2E_UPSTREAM_KEY
general_settings:
  master_key: {MASTER_KEY}
"""


def main_config(upstream: str, llm_guard: str, sagemaker: str, google: str) -> str:
    return model_list(upstream) + f"""environment_variables:
  LLM_GUARD_API_BASE: {llm_guard}
  LLM_GUARD_API_KEY: {UPSTREAM_KEY}
  AWS_ACCESS_KEY_ID: e2e-access-key
  AWS_SECRET_ACCESS_KEY: e2e-secret-key
  AWS_REGION_NAME: us-east-1
  AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME: {sagemaker}
litellm_settings:
  callbacks: ["hide_secrets", "banned_keywords", "blocked_user_check", "llmguard_moderations"]
  banned_keywords_list: ["hello"]
  blocked_user_list: ["user_id_1", "user_id_2"]
  llm_guard_mode: key-specific
  llm_guard_failure_mode: open
  llamaguard_model_name: sagemaker/{ENDPOINT}
  google_moderation_api_base: {google}
  google_moderation_api_key: os.environ/E2E_UPSTREAM_KEY
  firearms_and_weapons_threshold: 0.4
  guardrail_timeout: 5
"""


@pytest.fixture(scope="module")
def services(e2e_dir):
    with (launch_stand_in(e2e_dir, "guardrails-upstream") as upstream,
          stand_in(e2e_dir, "tests.servers.fake_llm_guard", "--api-key", UPSTREAM_KEY) as llm_guard,
          stand_in(e2e_dir, "tests.servers.fake_sagemaker", "--endpoint", ENDPOINT) as sagemaker,
          stand_in(e2e_dir, "tests.servers.fake_google_moderation", "--api-key", UPSTREAM_KEY) as google):
        yield {"upstream": upstream, "llm_guard": llm_guard, "sagemaker": sagemaker, "google": google}


@pytest.fixture(scope="module")
def gateway(e2e_dir, services):
    config = main_config(*(services[name].base_url for name in ("upstream", "llm_guard", "sagemaker", "google")))
    with launch_gateway(e2e_dir, config, name="guardrails") as live:
        yield live


@pytest.fixture
def upstream(services):
    return services["upstream"]


@pytest.fixture(autouse=True)
def fresh_services(services):
    """No recorded requests, no injected failures; the upstream's reply is free of banned words."""
    for client in services.values():
        client.reset()
        client.clear()
    services["upstream"].behave(reply=REPLY)
    yield


def chat(gateway, content: str, api_key: str = MASTER_KEY, **fields):
    return gateway.http.post(CHAT, headers={"Authorization": f"Bearer {api_key}"},
                             json={"model": MODEL, "messages": [{"role": "user", "content": content}], **fields})


def sent_upstream(upstream) -> list[str]:
    return [request["body"]["messages"][-1]["content"] for request in upstream.requests("/v1/chat/completions")]


def gateway_log(gateway) -> str:
    return gateway.process.log_path.read_text(errors="replace")


def assert_refused(response, status: int, message: str, param: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": {"message": message, "type": "invalid_request_error", "param": param,
                                         "code": str(status)}}


# hide_secrets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "redacted"), [
    ("what is the value of my open ai key? openai_api_key=sk-1234998222",
     "what is the value of my open ai key? openai_api_key=[REDACTED]"),
    ("Hey, how's it going, API_KEY = 'sk_1234567890abcdef'", "Hey, how's it going, API_KEY = '[REDACTED]'"),
])
def test_hide_secrets_redacts_the_seed_examples_before_the_upstream(gateway, upstream, content, redacted):
    response = gateway.sdk().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
    assert response.choices[0].message.content == REPLY
    assert sent_upstream(upstream) == [redacted]


def test_hide_secrets_logs_the_secret_types_not_the_values(gateway):
    assert chat(gateway, "my token is ghp_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c, openai_api_key=sk-1234998222"
                ).status_code == 200
    wait_for(lambda: "Detected and redacted secrets in message: ['GitHub Token', 'Secret Keyword']"
             in gateway_log(gateway))
    assert "sk-1234998222" not in gateway_log(gateway)
    assert "ghp_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c" not in gateway_log(gateway)


def test_a_key_with_hide_secrets_false_sends_the_secret_as_is(gateway, upstream):
    response = gateway.admin("POST", "/key/generate", json={"permissions": {"hide_secrets": False}})
    assert response.json()["permissions"] == {"hide_secrets": False}
    key = response.json()["key"]
    content = "does my openai key look well formatted OpenAI_API_KEY=sk-1234777"
    assert chat(gateway, content, api_key=key).status_code == 200
    assert sent_upstream(upstream) == [content]


def test_key_update_switches_hide_secrets_off(gateway, upstream):
    key = gateway.new_key()
    content = "my password: hunter22"
    assert chat(gateway, content, api_key=key).status_code == 200
    update = gateway.admin("POST", "/key/update", json={"key": key, "permissions": {"hide_secrets": False}})
    assert update.status_code == 200, update.text
    assert chat(gateway, content, api_key=key).status_code == 200
    assert sent_upstream(upstream) == ["my password: [REDACTED]", content]


# banned keywords and blocked users ------------------------------------------------------------


def test_a_banned_keyword_is_refused_before_the_upstream(gateway, upstream):
    assert_refused(chat(gateway, "Hello world!"), 400, "Keyword banned. Keyword=hello")
    assert upstream.requests() == []


def test_a_banned_keyword_in_the_answer_is_refused(gateway, upstream):
    upstream.behave(reply="Well, hello there")
    assert_refused(chat(gateway, "greet me"), 400, "Keyword banned. Keyword=hello")


def test_a_banned_keyword_split_over_stream_chunks_ends_the_stream_with_the_error(gateway, upstream):
    upstream.behave(reply="Well, hello there")
    with gateway.http.stream("POST", CHAT, headers={"Authorization": f"Bearer {MASTER_KEY}"},
                             json={"model": MODEL, "stream": True,
                                   "messages": [{"role": "user", "content": "greet me"}]}) as response:
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert response.status_code == 200
    deltas = [orjson.loads(event)["choices"][0]["delta"].get("content") for event in events[:-1]]
    assert "hello " not in deltas   # the chunk holding the word never reaches the client
    assert orjson.loads(events[-1]) == {"error": {"message": "Keyword banned. Keyword=hello",
                                                  "type": "invalid_request_error", "param": None, "code": "400"}}


def test_a_user_on_the_blocked_list_is_refused_with_the_exact_message(gateway, upstream):
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.sdk().chat.completions.create(model=MODEL, user="user_id_1",
                                              messages=[{"role": "user", "content": "what llm are you"}])
    assert caught.value.status_code == 400
    assert caught.value.body["message"] == "User blocked from making LLM API Calls. User=user_id_1"
    assert caught.value.body["type"] == "invalid_request_error"
    assert caught.value.body["param"] == "user"
    assert upstream.requests() == []
    assert chat(gateway, "what llm are you", user="user_id_3").status_code == 200


def test_a_customer_blocked_through_the_api_is_refused(gateway, upstream):
    blocked = gateway.admin("POST", "/customer/block", json={"user_ids": ["customer-opted-out"]})
    assert blocked.status_code == 200, blocked.text
    assert_refused(chat(gateway, "hi", user="customer-opted-out"), 400,
                   "User blocked from making LLM API Calls. User=customer-opted-out", param="user")
    assert upstream.requests() == []


# LLM Guard (key-specific here; the other modes below) -------------------------------------------


def test_llm_guard_key_specific_checks_only_keys_with_the_permission(gateway, services):
    llm_guard = services["llm_guard"]
    checked = gateway.new_key(permissions={"enable_llm_guard_check": True})
    unchecked = gateway.new_key()
    assert chat(gateway, "What do you know?", api_key=checked).status_code == 200
    assert chat(gateway, "What do you know about cats?", api_key=unchecked).status_code == 200
    assert [r["body"]["prompt"] for r in llm_guard.requests("/analyze/prompt")] == ["What do you know?"]
    wait_for(lambda: 'LLM Guard: Received response - {"sanitized_prompt":"What do you know?","is_valid":true'
             in gateway_log(gateway))


def test_llm_guard_refuses_an_invalid_prompt(gateway, upstream):
    key = gateway.new_key(permissions={"enable_llm_guard_check": True})
    assert_refused(chat(gateway, f"Please {INJECTION}.", api_key=key), 400,
                   "Violated content safety policy. Guardrail=llmguard_moderations, scanners=['PromptInjection']")
    assert upstream.requests() == []


def test_llm_guard_down_fails_open_as_configured_and_says_so(gateway, services, upstream):
    services["llm_guard"].behave(close_connection=True)
    key = gateway.new_key(permissions={"enable_llm_guard_check": True})
    assert chat(gateway, f"Please {INJECTION}.", api_key=key).status_code == 200
    assert len(upstream.requests()) == 1
    wait_for(lambda: "Guardrail llmguard_moderations: LLM Guard unreachable (RemoteProtocolError)"
             in gateway_log(gateway))
    assert "failing open, the request continues unchecked" in gateway_log(gateway)


# LlamaGuard and Google text moderation, switched on per key ---------------------------------------


def test_llama_guard_refuses_an_unsafe_conversation(gateway, services, upstream):
    key = gateway.new_key(guardrails=["llamaguard_moderations"])
    assert_refused(chat(gateway, f"how do I {UNSAFE_TRIGGER}?", api_key=key), 400,
                   "Violated content safety policy. Guardrail=llamaguard_moderations, categories=O3")
    assert upstream.requests() == []
    assert chat(gateway, "how do I open a bank account?", api_key=key).status_code == 200
    assert [r["path"] for r in services["sagemaker"].requests()] == [f"/endpoints/{ENDPOINT}/invocations"] * 2


def test_google_moderation_blocks_at_the_global_threshold(gateway, services, upstream):
    key = gateway.new_key(guardrails=["google_text_moderation"])
    assert_refused(chat(gateway, "you idiot", api_key=key), 400,
                   "Violated content safety policy. Guardrail=google_text_moderation, category=insult "
                   "(confidence 0.91 >= threshold 0.8)")
    assert chat(gateway, "any stock tips?", api_key=key).status_code == 200
    assert len(services["google"].requests()) == 2
    assert sent_upstream(upstream) == ["any stock tips?"]


def test_google_moderation_honours_a_category_threshold(gateway):
    key = gateway.new_key(guardrails=["google_text_moderation"])
    assert_refused(chat(gateway, "I bought a hunting rifle", api_key=key), 400,
                   "Violated content safety policy. Guardrail=google_text_moderation, category=firearms_and_weapons "
                   "(confidence 0.45 >= threshold 0.4)")


def test_google_moderation_down_fails_closed_by_default_and_says_so(gateway, services, upstream):
    services["google"].behave(status=503)
    key = gateway.new_key(guardrails=["google_text_moderation"])
    response = chat(gateway, "any stock tips?", api_key=key)
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "guardrail_unavailable"
    assert response.json()["error"]["message"] == (
        "Guardrail google_text_moderation is unavailable: Google moderateText answered HTTP 503. "
        "The request was not sent.")
    assert upstream.requests() == []
    wait_for(lambda: "failing closed, the request is refused" in gateway_log(gateway))


def test_a_request_can_ask_for_a_guardrail(gateway, services):
    assert_refused(chat(gateway, "you idiot", metadata={"guardrails": ["google_text_moderation"]}), 400,
                   "Violated content safety policy. Guardrail=google_text_moderation, category=insult "
                   "(confidence 0.91 >= threshold 0.8)")


# LLM Guard's other modes, each on a gateway of its own (LLM_GUARD_API_BASE from the environment) --


@pytest.fixture(scope="module", params=["all", "request-specific"])
def mode_gateway(request, e2e_dir, services):
    config = model_list(services["upstream"].base_url) + f"""litellm_settings:
  callbacks: ["llmguard_moderations"]
  llm_guard_mode: {request.param}
"""
    env = {"LLM_GUARD_API_BASE": services["llm_guard"].base_url, "LLM_GUARD_API_KEY": UPSTREAM_KEY}
    with launch_gateway(e2e_dir, config, name=f"guardrails-{request.param}", env=env) as live:
        yield request.param, live


def test_llm_guard_mode_all_and_request_specific(mode_gateway, services):
    mode, gateway = mode_gateway
    client = gateway.sdk()
    messages = [{"role": "user", "content": "this is a test request, write a short poem"}]
    client.chat.completions.create(model=MODEL, messages=messages)
    client.chat.completions.create(model=MODEL, messages=messages,
                                   extra_body={"metadata": {"permissions": {"enable_llm_guard_check": True}}})
    checked = len(services["llm_guard"].requests("/analyze/prompt"))
    assert checked == {"all": 2, "request-specific": 1}[mode]


def test_the_spend_log_names_the_guardrails_a_request_ran(gateway, upstream):
    response = chat(gateway, "nothing secret here")

    row = gateway.spend_row(response.json()["id"])
    assert "hide_secrets" in row["metadata"]["applied_guardrails"]
