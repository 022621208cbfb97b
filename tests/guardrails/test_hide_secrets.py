"""hide_secrets: secrets in request texts become [REDACTED] before the upstream sees them."""
from __future__ import annotations

import logging

import pytest

from guardrails.builtin.hide_secrets import HideSecrets, SecretScanner
from tests.guardrails.conftest import chat, make_call, run

SCANNER = SecretScanner()
GUARDRAIL = HideSecrets(SCANNER)


def redact(text: str) -> str:
    return SCANNER.redact(text)[0]


def test_seed_example_quoted_keyword_assignment():
    assert (redact("Hey, how's it going, API_KEY = 'sk_1234567890abcdef'")
            == "Hey, how's it going, API_KEY = '[REDACTED]'")


def test_seed_example_unquoted_keyword_assignment():
    assert (redact("what is the value of my open ai key? openai_api_key=sk-1234998222")
            == "what is the value of my open ai key? openai_api_key=[REDACTED]")


@pytest.mark.parametrize(("secret", "kind"), [
    ("sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0f", "OpenAI API Key"),
    ("sk-svcacct-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "OpenAI API Key"),
    ("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", "OpenAI API Key"),
    ("sk-ant-api03-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z-Ab7cDe0fAA", "Anthropic API Key"),
    ("gsk_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh", "Groq API Key"),
    ("AKIAIOSFODNN7EXAMPLE", "AWS Access Key"),
    ("ghp_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c", "GitHub Token"),
    ("github_pat_11ABCDEFG0aBcDeFgHiJkL_mNoPqRsTuVwXyZ0123456789abcdefghijKLMNOPQRSTU", "GitHub Token"),
    ("glpat-Ab3dEf6hIj9kLm2nOp5q", "GitLab Token"),
    ("xoxb-123456789012-1234567890123-Ab3dEf6hIj9kLm2nOp5qRs8t", "Slack Token"),
    ("xoxp-123456789012-1234567890123-1234567890123-ab3def6hij9klm2nop5qrs8tuv1wxy4z", "Slack Token"),
    ("AIzaSyAb3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zA", "Google API Key"),
    ("hf_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb", "Hugging Face Token"),
    ("sk_live_Ab3dEf6hIj9kLm2nOp5qRs8tUv", "Stripe Access Key"),
    ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
     "JSON Web Token"),
])
def test_key_formats_are_redacted_whole(secret, kind):
    text, found = SCANNER.redact(f"please use {secret} for the demo")
    assert text == "please use [REDACTED] for the demo"
    assert found == [kind]


def test_aws_secret_access_key_next_to_its_name():
    text, found = SCANNER.redact("aws_secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY thanks")
    assert text == "aws_secret_access_key: [REDACTED] thanks"
    assert found == ["AWS Secret Access Key"]


def test_pem_private_key_is_redacted_across_lines():
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAx4\nQ1x2y3z4\n-----END RSA PRIVATE KEY-----"
    assert redact(f"my key:\n{pem}\nwhat is wrong?") == "my key:\n[REDACTED]\nwhat is wrong?"


def test_password_in_a_url_is_redacted_by_detect_secrets():
    text, found = SCANNER.redact("connect to postgres://admin:s3cretpass@db.internal/app")
    assert text == "connect to postgres://admin:[REDACTED]@db.internal/app"
    assert found == ["Basic Auth Credentials"]


def test_several_keyword_assignments_on_one_line_end_at_separators():
    assert redact("password=hunter22, api_key=abcd1234; done") == "password=[REDACTED], api_key=[REDACTED]; done"


@pytest.mark.parametrize("text", [
    "Hello, how are you today?",
    "my password is something I forget",
    "The secret to success is hard work.",
    "password = get_password()",
    "api_key = '${OPENAI_API_KEY}'",
    "api_key: <your key here>",
    "Please summarise these notes:\n- budget\n- roadmap\n- hiring",
])
def test_text_without_secrets_is_left_alone(text):
    redacted, found = SCANNER.redact(text)
    assert (redacted, found) == (text, [])


def test_every_user_visible_text_of_a_chat_request_is_redacted():
    body = {"model": "m", "messages": [
        {"role": "system", "content": "token ghp_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c"},
        {"role": "user", "content": [
            {"type": "text", "text": "OPENAI_API_KEY=sk-1234567"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]},
    ]}
    run(GUARDRAIL.pre_call(make_call(body)))
    assert body["messages"][0]["content"] == "token [REDACTED]"
    assert body["messages"][1]["content"][0]["text"] == "OPENAI_API_KEY=[REDACTED]"
    assert body["messages"][1]["content"][1] == {"type": "image_url",
                                                 "image_url": {"url": "https://example.com/cat.png"}}


@pytest.mark.parametrize("field", ["prompt", "input"])
def test_prompt_and_input_strings_and_lists_are_redacted(field):
    body = {"model": "m", field: ["secret = 'abcd1234'", "AKIAIOSFODNN7EXAMPLE"]}
    run(GUARDRAIL.pre_call(make_call(body, call_type="completion")))
    assert body[field] == ["secret = '[REDACTED]'", "[REDACTED]"]
    body = {"model": "m", field: "password: hunter22"}
    run(GUARDRAIL.pre_call(make_call(body, call_type="completion")))
    assert body[field] == "password: [REDACTED]"


def test_the_warning_names_the_secret_types_never_the_values(caplog):
    body = chat("what is the value of my open ai key? openai_api_key=sk-1234998222")
    with caplog.at_level(logging.WARNING, logger="gateway.guardrails"):
        run(GUARDRAIL.pre_call(make_call(body)))
    assert [r.getMessage() for r in caplog.records] == [
        "Detected and redacted secrets in message: ['Secret Keyword']"]
    assert "sk-1234998222" not in caplog.text


def test_a_request_without_secrets_logs_nothing_and_keeps_its_strings(caplog):
    body = chat("nothing to see here")
    original = body["messages"][0]["content"]
    with caplog.at_level(logging.WARNING, logger="gateway.guardrails"):
        run(GUARDRAIL.pre_call(make_call(body)))
    assert body["messages"][0]["content"] is original
    assert caplog.records == []
