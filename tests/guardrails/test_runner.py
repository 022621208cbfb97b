"""Which guardrails run for a call (global, key, team, request) and in which order."""
from __future__ import annotations

import logging

import pytest

from gateway_project.config import ConfigError
from gateway_project.errors import GatewayError, PermissionDeniedError
from guardrails.runner import GuardrailSet, guardrails_for
from tests.guardrails.conftest import chat, key_record, make_call, run, team_record

CONFIG = """
environment_variables:
  LLM_GUARD_API_BASE: http://127.0.0.1:9/
litellm_settings:
  callbacks: {callbacks}
  banned_keywords_list: ["forbidden"]
  blocked_user_list: ["opted-out"]
  llm_guard_mode: {mode}
"""


@pytest.fixture
def guardrail_set(config_from):
    def make(callbacks: str = '["hide_secrets", "banned_keywords", "blocked_user_check"]', mode: str = "all"):
        return GuardrailSet(config_from(CONFIG.format(callbacks=callbacks, mode=mode)))

    return make


def selected(guardrails: GuardrailSet, body: dict, **call) -> list[str]:
    return [guardrail.name for guardrail in guardrails.select(make_call(body, **call))]


def test_callbacks_switch_guardrails_on_for_everyone_cheap_local_ones_first(guardrail_set):
    guardrails = guardrail_set('["llmguard_moderations", "hide_secrets", "prometheus", "banned_keywords"]')
    assert guardrails.default_on == ("banned_keywords", "hide_secrets", "llmguard_moderations")
    assert selected(guardrails, chat("hi")) == ["banned_keywords", "hide_secrets", "llmguard_moderations"]


def test_no_guardrail_callbacks_leave_the_set_idle(guardrail_set):
    guardrails = guardrail_set('["prometheus"]')
    assert guardrails.idle
    assert selected(guardrails, chat("hi")) == []


def test_a_key_permission_false_switches_a_guardrail_off_for_that_key(guardrail_set):
    guardrails = guardrail_set()
    key = key_record(permissions={"hide_secrets": False})
    assert selected(guardrails, chat("hi"), key=key) == ["blocked_user_check", "banned_keywords"]


def test_key_and_team_guardrail_lists_add_guardrails(guardrail_set):
    guardrails = guardrail_set('["hide_secrets"]')
    assert selected(guardrails, chat("hi"), key=key_record(guardrails=("banned_keywords",))) == [
        "banned_keywords", "hide_secrets"]
    assert selected(guardrails, chat("hi"), key=key_record(metadata={"guardrails": ["blocked_user_check"]})) == [
        "blocked_user_check", "hide_secrets"]
    assert selected(guardrails, chat("hi"), team=team_record(metadata={"guardrails": ["banned_keywords"]})) == [
        "banned_keywords", "hide_secrets"]


def test_a_request_adds_guardrails_by_list_or_mapping(guardrail_set):
    guardrails = guardrail_set('[]')
    assert selected(guardrails, chat("hi", guardrails=["hide_secrets"])) == ["hide_secrets"]
    assert selected(guardrails, chat("hi", metadata={"guardrails": {"banned_keywords": True}})) == ["banned_keywords"]


def test_switching_a_guardrail_off_per_request_needs_the_permission(guardrail_set):
    guardrails = guardrail_set()
    body = chat("hi", metadata={"guardrails": {"hide_secrets": False}})
    with pytest.raises(PermissionDeniedError, match="permissions.modify_guardrails"):
        guardrails.select(make_call(body, key=key_record()))
    allowed = key_record(permissions={"modify_guardrails": True})
    assert selected(guardrails, body, key=allowed) == ["blocked_user_check", "banned_keywords"]
    assert selected(guardrails, body, admin=True) == ["blocked_user_check", "banned_keywords"]


@pytest.mark.parametrize(("mode", "key_permissions", "request_permissions", "runs"), [
    ("all", {}, {}, True),
    ("key-specific", {}, {}, False),
    ("key-specific", {"enable_llm_guard_check": True}, {}, True),
    ("key-specific", {}, {"enable_llm_guard_check": True}, False),
    ("request-specific", {}, {}, False),
    ("request-specific", {}, {"enable_llm_guard_check": True}, True),
    ("request-specific", {"enable_llm_guard_check": True}, {}, False),
])
def test_llm_guard_mode_decides_for_whom_it_runs(guardrail_set, mode, key_permissions, request_permissions, runs):
    guardrails = guardrail_set('["llmguard_moderations"]', mode=mode)
    body = chat("hi", metadata={"permissions": request_permissions})
    assert selected(guardrails, body, key=key_record(permissions=key_permissions)) == (
        ["llmguard_moderations"] if runs else [])


def test_a_key_naming_llm_guard_gets_it_whatever_the_mode(guardrail_set):
    guardrails = guardrail_set('["llmguard_moderations"]', mode="key-specific")
    assert selected(guardrails, chat("hi"), key=key_record(guardrails=("llmguard_moderations",))) == [
        "llmguard_moderations"]


def test_unknown_names_are_ignored_with_one_warning(guardrail_set, caplog):
    guardrails = guardrail_set('[]')
    with caplog.at_level(logging.WARNING, logger="gateway.guardrails"):
        assert selected(guardrails, chat("hi", guardrails=["aporia"])) == []
        assert selected(guardrails, chat("hi", guardrails=["aporia"])) == []
    assert len([r for r in caplog.records if "'aporia'" in r.getMessage()]) == 1


def test_a_guardrail_on_for_everyone_that_cannot_be_built_is_a_config_error(config_from):
    config = config_from("litellm_settings:\n  callbacks: [\"llamaguard_moderations\"]\n")
    with pytest.raises(ConfigError, match="llamaguard_model_name must be 'sagemaker/<endpoint name>'"):
        GuardrailSet(config)


def test_a_guardrail_named_by_a_key_that_cannot_be_built_fails_the_request_without_details(config_from):
    guardrails = GuardrailSet(config_from("litellm_settings:\n  callbacks: []\n"))
    with pytest.raises(GatewayError) as caught:
        guardrails.select(make_call(chat("hi"), key=key_record(guardrails=("banned_keywords",))))
    assert caught.value.status == 500
    assert caught.value.message == "Guardrail banned_keywords is not configured on this gateway"


def test_the_set_is_built_once_per_config(config_from):
    config = config_from("litellm_settings:\n  callbacks: [\"hide_secrets\"]\n")
    assert guardrails_for(config) is guardrails_for(config)
    assert guardrails_for(config_from("litellm_settings:\n  callbacks: []\n")) is not guardrails_for(config)


def test_guardrails_run_in_order_and_the_first_refusal_wins(guardrail_set):
    guardrails = guardrail_set()
    body = chat("my api_key = 'abcd1234' is forbidden", user="opted-out")
    call = make_call(body)
    with pytest.raises(GatewayError, match="User blocked"):
        run(guardrails.pre_call(call, guardrails.select(call)))
    body = chat("my api_key = 'abcd1234' is fine")
    call = make_call(body)
    run(guardrails.pre_call(call, guardrails.select(call)))
    assert body["messages"][0]["content"] == "my api_key = '[REDACTED]' is fine"


def test_a_request_naming_a_guardrail_without_settings_is_a_bad_request(config_from):
    guardrails = GuardrailSet(config_from("litellm_settings:\n  callbacks: []\n"))
    with pytest.raises(GatewayError) as caught:
        guardrails.select(make_call(chat("hi", guardrails=["banned_keywords"])))
    assert (caught.value.status, caught.value.type) == (400, "invalid_request_error")
