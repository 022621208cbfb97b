"""Anthropic's Messages API behind the gateway, called with the OpenAI SDK: translated both ways."""
import json

import pytest

from tests.e2e.conftest import UPSTREAM_KEY
from tests.servers.fake_anthropic import DEFAULT_REPLY, TOOL_INPUT

pytestmark = pytest.mark.e2e

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather forecast",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}


def test_a_plain_chat_is_translated_both_ways(gateway, anthropic_stand_in):
    response = gateway.sdk().chat.completions.create(
        model="claude", max_tokens=50,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}])

    assert response.choices[0].message.content == DEFAULT_REPLY
    assert response.choices[0].finish_reason == "stop"
    assert response.model == "claude"
    assert response.usage.completion_tokens > 0
    [seen] = anthropic_stand_in.requests()
    assert seen["path"] == "/v1/messages"
    assert seen["headers"]["x-api-key"] == UPSTREAM_KEY
    assert seen["body"]["model"] == "claude-3-5-sonnet-20241022"
    assert seen["body"]["system"][0]["text"] == "Be brief."
    assert seen["body"]["messages"] == [{"role": "user", "content": "Hello there"}]


def test_tool_calls_round_trip(gateway, anthropic_stand_in):
    client = gateway.sdk()
    first = client.chat.completions.create(model="claude", tools=[WEATHER_TOOL],
                                           messages=[{"role": "user", "content": "please use the tool"}])

    [call] = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == TOOL_INPUT

    second = client.chat.completions.create(model="claude", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "please use the tool"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"}])

    assert second.choices[0].message.content
    sent = anthropic_stand_in.requests()[-1]["body"]["messages"]
    assert sent[1]["content"][-1]["type"] == "tool_use"
    assert sent[2]["content"][0] == {"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}


def test_streaming_events_become_openai_chunks_and_spend(gateway, anthropic_stand_in):
    key = gateway.new_key()
    chunks = list(gateway.sdk(key).chat.completions.create(
        model="claude", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Stream please"}]))

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_REPLY
    assert chunks[-1].usage.completion_tokens > 0
    row = gateway.spend_row(chunks[0].id)
    assert row["status"] == "success" and row["custom_llm_provider"] == "anthropic"
    assert row["completion_tokens"] == chunks[-1].usage.completion_tokens
    assert row["spend"] > 0  # claude-3-5-sonnet has a list price


def test_an_anthropic_overload_keeps_its_status(gateway, anthropic_stand_in):
    anthropic_stand_in.behave(status=529, times=1)

    response = gateway.admin("POST", "/chat/completions",
                             json={"model": "claude", "messages": [{"role": "user", "content": "hi"}]})

    assert response.status_code == 529
    assert UPSTREAM_KEY not in response.text
