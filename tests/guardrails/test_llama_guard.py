"""llamaguard_moderations through boto3 against the stand-in SageMaker runtime on 127.0.0.1."""
from __future__ import annotations

import logging

import pytest

from gateway_project.config import ConfigError
from guardrails.base import GuardrailBlocked, GuardrailUnavailable
from guardrails.remote.llama_guard import DEFAULT_CATEGORIES, LlamaGuard, build_prompt, parse_verdict
from tests.guardrails.conftest import chat, make_call, run, stand_in
from tests.servers.fake_sagemaker import UNSAFE_TRIGGER
from tests.servers.process import free_port

pytestmark = pytest.mark.e2e

ENDPOINT = "jumpstart-dft-meta-textgeneration-llama-guard-7b"
CONFIG = """
environment_variables:
  AWS_ACCESS_KEY_ID: test-access-key
  AWS_SECRET_ACCESS_KEY: test-secret-key
  AWS_REGION_NAME: us-west-2
  AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME: {base}
litellm_settings:
  callbacks: ["llamaguard_moderations"]
  llamaguard_model_name: sagemaker/{endpoint}
  guardrail_timeout: 2
{extra}"""


@pytest.fixture(scope="module")
def sagemaker(tmp_path_factory):
    logs = tmp_path_factory.mktemp("sagemaker")
    with stand_in(logs, "tests.servers.fake_sagemaker", "--endpoint", ENDPOINT) as client:
        yield client


@pytest.fixture
def llama_guard(sagemaker, config_from):
    sagemaker.reset()
    sagemaker.clear()

    def make(base: str = sagemaker.base_url, endpoint: str = ENDPOINT, extra: str = "") -> LlamaGuard:
        return LlamaGuard.from_config(config_from(CONFIG.format(base=base, endpoint=endpoint, extra=extra)))

    return make


def test_a_safe_conversation_passes_and_the_endpoint_gets_llama_guards_prompt(llama_guard, sagemaker):
    body = chat("What is the capital of France?")
    body["messages"].insert(0, {"role": "system", "content": "Be brief"})
    run(llama_guard().pre_call(make_call(body)))
    [request] = sagemaker.requests()
    assert request["path"] == f"/endpoints/{ENDPOINT}/invocations"
    assert request["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=test-access-key/")
    assert "/us-west-2/sagemaker/aws4_request" in request["headers"]["authorization"]
    prompt = request["body"]["inputs"]
    assert "User: What is the capital of France?" in prompt
    assert "Be brief" not in prompt
    assert "O1: Violence and Hate." in prompt
    assert request["body"]["parameters"]["max_new_tokens"] == 20


def test_an_unsafe_conversation_is_refused_with_its_categories(llama_guard, caplog):
    with caplog.at_level(logging.INFO, logger="gateway.guardrails"), pytest.raises(GuardrailBlocked) as caught:
        run(llama_guard().pre_call(make_call(chat(f"how do I {UNSAFE_TRIGGER}?"))))
    assert caught.value.status == 400
    assert caught.value.message == ("Violated content safety policy. Guardrail=llamaguard_moderations, "
                                    "categories=O3")
    assert "LlamaGuard: jumpstart-dft-meta-textgeneration-llama-guard-7b verdict - 'unsafe\\nO3'" in caplog.text


def test_custom_categories_replace_the_default_ones(llama_guard, sagemaker, tmp_path):
    (tmp_path / "categories.txt").write_text("O1: Talking about pineapples.\nShould not\n- Mention pineapples.\n")
    run(llama_guard(extra="  llamaguard_unsafe_content_categories: categories.txt\n").pre_call(
        make_call(chat("hello"))))
    prompt = sagemaker.requests()[0]["body"]["inputs"]
    assert "O1: Talking about pineapples." in prompt
    assert "Violence and Hate" not in prompt


def test_an_unknown_endpoint_fails_closed(llama_guard):
    with pytest.raises(GuardrailUnavailable, match=r"SageMaker endpoint missing-endpoint failed \(ValidationError\)"):
        run(llama_guard(endpoint="missing-endpoint").pre_call(make_call(chat("hello"))))


def test_an_unreachable_runtime_fails_open_when_configured(llama_guard, caplog):
    guard = llama_guard(base=f"http://127.0.0.1:{free_port()}", extra="  llamaguard_failure_mode: open\n")
    with caplog.at_level(logging.WARNING, logger="gateway.guardrails"):
        run(guard.pre_call(make_call(chat(f"how do I {UNSAFE_TRIGGER}?"))))
    assert ("Guardrail llamaguard_moderations: SageMaker endpoint jumpstart-dft-meta-textgeneration-llama-guard-7b "
            "failed (EndpointConnectionError)") in caplog.text
    assert "failing open" in caplog.text


def test_the_model_name_must_be_a_sagemaker_endpoint(config_from):
    with pytest.raises(ConfigError, match="'sagemaker/<endpoint name>'"):
        LlamaGuard.from_config(config_from("litellm_settings:\n  llamaguard_model_name: bedrock/llama-guard\n"))


def test_a_missing_categories_file_is_a_config_error(llama_guard):
    with pytest.raises(ConfigError, match="cannot read"):
        llama_guard(extra="  llamaguard_unsafe_content_categories: /nonexistent/categories.txt\n")


def test_the_prompt_has_user_and_agent_turns_and_an_echoed_prompt_is_cut_off():
    prompt = build_prompt(DEFAULT_CATEGORIES.read_text(), [("system", "x"), ("user", "hi"), ("assistant", "hello")])
    assert "<BEGIN CONVERSATION>\n\nUser: hi\n\nAgent: hello\n\n<END CONVERSATION>" in prompt
    assert parse_verdict([{"generated_text": prompt + " safe"}], prompt) == "safe"
    assert parse_verdict({"generation": "unsafe\nO1"}, prompt) == "unsafe\nO1"
