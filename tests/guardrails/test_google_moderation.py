"""google_text_moderation against the stand-in moderateText API, over real HTTP on 127.0.0.1."""
from __future__ import annotations

import logging

import pytest

from gateway_project.config import ConfigError
from guardrails.base import GuardrailBlocked, GuardrailUnavailable
from guardrails.remote.google_moderation import CATEGORY_SETTINGS, GoogleTextModeration, category_key
from tests.guardrails.conftest import chat, make_call, run, stand_in
from tests.servers.fake_google_moderation import CATEGORIES
from tests.servers.process import free_port

pytestmark = pytest.mark.e2e

API_KEY = "google-api-key"
CONFIG = """
litellm_settings:
  callbacks: ["google_text_moderation"]
  google_moderation_api_base: {base}
  google_moderation_api_key: {key}
{extra}"""


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with stand_in(tmp_path_factory.mktemp("google"), "tests.servers.fake_google_moderation",
                  "--api-key", API_KEY) as client:
        yield client


@pytest.fixture
def moderation(service, config_from):
    service.reset()
    service.clear()

    def make(extra: str = "", base: str = service.base_url, key: str = API_KEY) -> GoogleTextModeration:
        return GoogleTextModeration.from_config(config_from(CONFIG.format(base=base, key=key, extra=extra)))

    return make


def refusal(guardrail: GoogleTextModeration, text: str) -> GuardrailBlocked:
    with pytest.raises(GuardrailBlocked) as caught:
        run(guardrail.pre_call(make_call(chat(text))))
    return caught.value


def test_every_google_category_has_a_threshold_setting():
    assert sorted(category_key(name) for name in CATEGORIES) == sorted(CATEGORY_SETTINGS)
    assert category_key("Death, Harm & Tragedy") == "death_harm_and_tragedy"


def test_the_text_is_sent_as_a_plain_text_document_with_the_api_key(moderation, service):
    run(moderation().pre_call(make_call(chat("Be helpful", "hello there"))))
    [request] = service.requests()
    assert request["path"] == "/v1/documents:moderateText"
    assert request["body"] == {"document": {"type": "PLAIN_TEXT", "content": "Be helpful\nhello there"}}
    assert request["headers"]["x-goog-api-key"] == API_KEY


def test_the_default_threshold_of_0_8_blocks_a_confident_category(moderation):
    error = refusal(moderation(), "you idiot")
    assert error.status == 400
    assert error.message == ("Violated content safety policy. Guardrail=google_text_moderation, category=insult "
                             "(confidence 0.91 >= threshold 0.8)")


def test_below_the_threshold_passes(moderation):
    run(moderation().pre_call(make_call(chat("I bought a hunting rifle"))))


def test_a_lower_global_threshold_blocks_more(moderation):
    error = refusal(moderation("  google_moderation_confidence_threshold: 0.4\n"), "I bought a hunting rifle")
    assert "category=firearms_and_weapons (confidence 0.45 >= threshold 0.4)" in error.message


def test_a_category_threshold_overrides_the_global_one(moderation):
    strict_firearms = moderation("  firearms_and_weapons_threshold: 0.45\n")
    assert "category=firearms_and_weapons" in refusal(strict_firearms, "I bought a hunting rifle").message
    run(strict_firearms.pre_call(make_call(chat("any stock tips?"))))
    lenient_insults = moderation("  insult_confidence_threshold: 0.95\n  toxic_confidence_threshold: 0.95\n")
    run(lenient_insults.pre_call(make_call(chat("you idiot"))))


def test_a_rejected_api_key_fails_closed(moderation, caplog):
    with caplog.at_level(logging.WARNING, logger="gateway.guardrails"), pytest.raises(GuardrailUnavailable) as caught:
        run(moderation(key="wrong-key").pre_call(make_call(chat("hello"))))
    assert caught.value.status == 503
    assert caught.value.message == ("Guardrail google_text_moderation is unavailable: Google moderateText answered "
                                    "HTTP 403. The request was not sent.")
    assert "Guardrail google_text_moderation: Google moderateText answered HTTP 403 (http://127.0.0.1:" in caplog.text
    assert "failing closed, the request is refused" in caplog.text


def test_an_unreachable_service_fails_open_when_configured(moderation, caplog):
    guard = moderation("  guardrail_failure_mode: open\n", base=f"http://127.0.0.1:{free_port()}")
    with caplog.at_level(logging.WARNING, logger="gateway.guardrails"):
        run(guard.pre_call(make_call(chat("you idiot"))))
    assert "Guardrail google_text_moderation: Google moderateText unreachable (ConnectError)" in caplog.text
    assert "failing open, the request continues unchecked" in caplog.text


def test_credentials_are_required(config_from):
    with pytest.raises(ConfigError, match="google_moderation_api_key or GOOGLE_APPLICATION_CREDENTIALS"):
        GoogleTextModeration.from_config(config_from("litellm_settings:\n  callbacks: [\"google_text_moderation\"]\n"))
