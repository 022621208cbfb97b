"""banned_keywords: requests, answers and streamed chunks holding a banned word are refused."""
from __future__ import annotations

import pytest

from gateway_project.config import ConfigError
from guardrails.base import GuardrailBlocked
from guardrails.builtin.banned_keywords import BannedKeywords
from tests.guardrails.conftest import chat, make_call, run

CONFIG = """
litellm_settings:
  callbacks: ["banned_keywords"]
  banned_keywords_list: {words}
"""


def chunk(content: str, index: int = 0) -> dict:
    return {"choices": [{"index": index, "delta": {"content": content}}]}


def refusal(guardrail: BannedKeywords, body: dict) -> GuardrailBlocked:
    with pytest.raises(GuardrailBlocked) as caught:
        run(guardrail.pre_call(make_call(body)))
    return caught.value


def test_seed_example_hello_is_refused_with_the_contract_error(config_from):
    guardrail = BannedKeywords.from_config(config_from(CONFIG.format(words='["hello"]')))
    error = refusal(guardrail, chat("Hello world!"))
    assert error.status == 400
    assert error.body() == {"error": {"message": "Keyword banned. Keyword=hello", "type": "invalid_request_error",
                                      "param": None, "code": "400"}}


def test_the_list_is_lower_cased_and_matches_inside_words(config_from):
    guardrail = BannedKeywords.from_config(config_from(CONFIG.format(words='["Project X"]')))
    assert refusal(guardrail, chat("tell me about PROJECT x-ray")).message == "Keyword banned. Keyword=project x"


def test_a_request_without_banned_words_passes(config_from):
    guardrail = BannedKeywords.from_config(config_from(CONFIG.format(words='["hello"]')))
    run(guardrail.pre_call(make_call(chat("Good morning"))))


def test_the_list_can_be_a_file_relative_to_the_config(config_from, tmp_path):
    (tmp_path / "keywords.txt").write_text("alpha\n\n  Beta \n")
    guardrail = BannedKeywords.from_config(config_from(CONFIG.format(words="keywords.txt")))
    assert guardrail.words == ("alpha", "beta")
    assert refusal(guardrail, {"model": "m", "prompt": "the beta test"}).message == "Keyword banned. Keyword=beta"


def test_a_missing_file_or_an_empty_list_is_a_config_error(config_from):
    with pytest.raises(ConfigError, match="cannot read"):
        BannedKeywords.from_config(config_from(CONFIG.format(words="missing.txt")))
    with pytest.raises(ConfigError, match="banned_keywords_list is empty"):
        BannedKeywords.from_config(config_from(CONFIG.format(words="[]")))


def test_a_buffered_answer_with_a_banned_word_is_refused():
    guardrail = BannedKeywords(("hello",))
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the model"}}]}
    with pytest.raises(GuardrailBlocked, match="Keyword=hello"):
        run(guardrail.post_call(make_call(chat("hi")), answer))
    run(guardrail.post_call(make_call(chat("hi")), {"choices": [{"index": 0, "text": "fine"}]}))


def test_a_banned_word_split_over_stream_chunks_is_found_in_the_chunk_completing_it():
    check = BannedKeywords(("hello",)).stream_check(make_call(chat("hi")))
    check(chunk("Well, hel"))
    with pytest.raises(GuardrailBlocked, match="Keyword=hello"):
        check(chunk("lo there"))


def test_stream_choices_are_checked_separately():
    check = BannedKeywords(("hello",)).stream_check(make_call(chat("hi")))
    check(chunk("hel", index=0))
    check(chunk("lo", index=1))
    check({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
