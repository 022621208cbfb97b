import pytest

from gateway_project.errors import AuthenticationError
from keys.policy import merge_spend_logs_metadata, merge_tags, model_allowed, read_api_key


def test_bearer_token_is_read_from_authorization():
    assert read_api_key({"authorization": "Bearer sk-abc"}) == "sk-abc"


def test_litellm_and_azure_headers_are_accepted():
    assert read_api_key({"x-litellm-api-key": "Bearer sk-abc"}) == "sk-abc"
    assert read_api_key({"api-key": "sk-azure"}) == "sk-azure"


def test_authorization_without_bearer_is_malformed():
    with pytest.raises(AuthenticationError, match="Malformed API Key"):
        read_api_key({"authorization": "sk-abc"})


def test_no_key_header_is_none():
    assert read_api_key({"content-type": "application/json"}) is None


@pytest.mark.parametrize("model, allowed, expected", [
    ("gpt-4o", [], True),
    ("gpt-4o", ["gpt-4o"], True),
    ("gpt-4o", ["claude"], False),
    ("gpt-4o", ["all-proxy-models"], True),
    ("openai/gpt-4o", ["openai/*"], True),
    ("anthropic/claude", ["openai/*"], False),
])
def test_model_allowed(model, allowed, expected):
    assert model_allowed(model, allowed) is expected


def test_tags_merge_in_order_without_duplicates():
    assert merge_tags(["a", "b"], ["b", "c"], None, ["d"]) == ["a", "b", "c", "d"]


def test_tags_ignore_values_that_are_not_lists():
    assert merge_tags("abc", ["x"], {"y": 1}) == ["x"]


def test_request_spend_logs_metadata_wins_and_key_beats_team():
    merged = merge_spend_logs_metadata({"a": "request"}, {"a": "key", "b": "key"}, {"b": "team", "c": "team"})

    assert merged == {"a": "request", "b": "key", "c": "team"}
