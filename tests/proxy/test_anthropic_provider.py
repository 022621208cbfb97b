"""The Anthropic adapter, over real HTTP against the Anthropic stand-in (tests/servers/fake_anthropic.py)."""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest

from gateway_project.config.schema import LitellmParams
from gateway_project.errors import InvalidRequestError, UpstreamError
from proxy.http import ClientPool
from proxy.pipeline.attempts import is_context_window_error
from proxy.providers.anthropic import AnthropicProvider
from tests.servers.fake_anthropic import DEFAULT_REPLY, TOOL_INPUT
from tests.servers.fake_upstream import StandInClient
from tests.servers.process import ServerProcess, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk-ant-stand-in-secret-key"
MODEL = "claude-3-5-sonnet-20241022"
REPLY_WORDS = 5  # "Hello from the stand-in Anthropic."
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The forecast for a place",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}


@pytest.fixture(scope="module")
def anthropic_url(tmp_path_factory: pytest.TempPathFactory):
    port = free_port()
    server = ServerProcess([sys.executable, "-m", "tests.servers.fake_anthropic", "--port", str(port),
                            "--api-key", API_KEY], log_dir=tmp_path_factory.mktemp("anthropic"), name="anthropic",
                           cwd=ROOT)
    with server:
        server.wait_until_ready(f"http://127.0.0.1:{port}/_stand_in/health", timeout=15)
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def anthropic(anthropic_url: str):
    """The stand-in, its recorded requests and behaviour cleared for this test."""
    with StandInClient(anthropic_url) as client:
        client.reset()
        client.clear()
        yield client


def call(anthropic: StandInClient, use, *, api_key: str = API_KEY, api_base: str | None = None) -> Any:
    """``use(provider)`` on a fresh event loop and client pool, as the gateway would for one request."""

    async def main() -> Any:
        clients = ClientPool(timeout=10)
        params = LitellmParams(model=f"anthropic/{MODEL}", api_base=api_base or anthropic.base_url, api_key=api_key)
        provider = AnthropicProvider(params, model_group="claude", clients=clients, default_timeout=10)
        try:
            return await use(provider)
        finally:
            await clients.aclose()

    return asyncio.run(main())


def chat(anthropic: StandInClient, body: dict[str, Any], **params: Any) -> dict[str, Any]:
    return call(anthropic, lambda provider: provider.chat(body), **params)


def stream(anthropic: StandInClient, body: dict[str, Any], received: list | None = None) -> list[dict[str, Any]]:
    """The chunks of a streamed chat, collected into ``received`` (so they survive an exception);
    every burst the provider yields has at least one."""
    received = [] if received is None else received

    async def collect(provider: AnthropicProvider) -> list[dict[str, Any]]:
        async for burst in provider.chat_stream(body):
            assert burst
            received.extend(burst)
        return received

    return call(anthropic, collect)


def request(*messages: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {"model": "claude", "messages": list(messages), **params}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def sent(anthropic: StandInClient) -> dict[str, Any]:
    """The Messages API body of the one request the stand-in received."""
    [received] = anthropic.requests()
    return received["body"]


def tool_call(call_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": json.dumps(arguments)}}


# Requests ---------------------------------------------------------------------------------------


def test_chat_hoists_system_prompts_and_sends_only_what_the_messages_api_accepts(anthropic):
    body = request({"role": "system", "content": "You are terse."},
                   {"role": "system", "content": [{"type": "text", "text": "Answer in English."}]},
                   user("Say hello"),
                   stop="###", user="end-user-7", temperature=0.2, top_p=0.9, n=1, presence_penalty=0.5,
                   frequency_penalty=0, logit_bias={}, stream_options={"include_usage": True},
                   response_format={"type": "text"}, metadata={"tags": ["gateway-only"]})

    chat(anthropic, body)

    [received] = anthropic.requests()
    assert received["path"] == "/v1/messages"
    assert received["headers"]["x-api-key"] == API_KEY
    assert received["headers"]["anthropic-version"] == "2023-06-01"
    assert received["body"] == {
        "model": MODEL, "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 4096,
        "system": [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer in English."}],
        "temperature": 0.2, "top_p": 0.9, "stop_sequences": ["###"], "metadata": {"user_id": "end-user-7"}}


def test_chat_answer_has_openai_shape_and_usage(anthropic):
    completion = chat(anthropic, request(user("Say hello there")))

    assert completion["id"].startswith("msg_")
    assert isinstance(completion["created"], int)
    assert {k: v for k, v in completion.items() if k not in ("id", "created")} == {
        "object": "chat.completion", "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": DEFAULT_REPLY}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": REPLY_WORDS, "total_tokens": 3 + REPLY_WORDS,
                  "prompt_tokens_details": {"cached_tokens": 0}, "cache_creation_input_tokens": 0}}


def test_api_base_ending_in_v1_is_not_doubled(anthropic):
    chat(anthropic, request(user("hi")), api_base=f"{anthropic.base_url}/v1")

    assert [r["path"] for r in anthropic.requests()] == ["/v1/messages"]


def test_consecutive_turns_of_one_role_are_merged(anthropic):
    body = request(user("first"), user([{"type": "text", "text": "second"}]),
                   {"role": "assistant", "content": "ok"}, {"role": "assistant", "content": "and more"},
                   user("last"))

    chat(anthropic, body)

    assert sent(anthropic)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}, {"type": "text", "text": "and more"}]},
        {"role": "user", "content": "last"}]


def test_image_parts_become_base64_and_url_image_blocks(anthropic):
    parts = [{"type": "text", "text": "Compare"},
             {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
             {"type": "image_url", "image_url": "https://example.com/cat.jpg"}]

    chat(anthropic, request(user(parts)))

    assert sent(anthropic)["messages"][0]["content"] == [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]


def test_content_part_anthropic_cannot_take_is_refused_before_any_call(anthropic):
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}

    with pytest.raises(InvalidRequestError, match="input_audio"):
        chat(anthropic, request(user([audio])))

    assert anthropic.requests() == []


# Tools ------------------------------------------------------------------------------------------


def test_tool_definitions_become_input_schemas(anthropic):
    chat(anthropic, request(user("What is the weather?"), tools=[WEATHER]))

    assert sent(anthropic)["tools"] == [{"name": "get_weather", "description": "The forecast for a place",
                                         "input_schema": WEATHER["function"]["parameters"]}]
    assert "tool_choice" not in sent(anthropic)


@pytest.mark.parametrize(("params", "expected"), [
    ({"tool_choice": "auto"}, {"type": "auto"}),
    ({"tool_choice": "required"}, {"type": "any"}),
    ({"tool_choice": "none"}, {"type": "none"}),
    ({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
     {"type": "tool", "name": "get_weather"}),
    ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
])
def test_tool_choice_is_translated(anthropic, params, expected):
    chat(anthropic, request(user("What is the weather?"), tools=[WEATHER], **params))

    assert sent(anthropic)["tool_choice"] == expected


def test_tool_use_answer_becomes_tool_calls_with_json_arguments(anthropic):
    completion = chat(anthropic, request(user("Please use the tool"), tools=[WEATHER]))

    [choice] = completion["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I will use the get_weather tool."
    [call] = choice["message"]["tool_calls"]
    assert call["id"].startswith("toolu_")
    assert (call["type"], call["function"]["name"]) == ("function", "get_weather")
    assert json.loads(call["function"]["arguments"]) == TOOL_INPUT


def test_tool_results_go_back_as_tool_use_and_tool_result_blocks(anthropic):
    question = user("Please use the tool")
    answer = chat(anthropic, request(question, tools=[WEATHER]))["choices"][0]["message"]
    [call] = answer["tool_calls"]
    anthropic.clear()

    completion = chat(anthropic, request(question, answer, {"role": "tool", "tool_call_id": call["id"],
                                                            "content": "Sunny, 24 degrees"}, tools=[WEATHER]))

    assert sent(anthropic)["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "text", "text": "I will use the get_weather tool."},
            {"type": "tool_use", "id": call["id"], "name": "get_weather", "input": TOOL_INPUT}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call["id"], "content": "Sunny, 24 degrees"}]}]
    assert completion["choices"][0]["message"] == {"role": "assistant", "content": DEFAULT_REPLY}


def test_parallel_tool_results_share_one_user_turn(anthropic):
    calls = [tool_call("call_paris", {"query": "Paris"}), tool_call("call_rome", {"query": "Rome"})]
    body = request(user("Weather in Paris and Rome?"), {"role": "assistant", "content": None, "tool_calls": calls},
                   {"role": "tool", "tool_call_id": "call_paris", "content": "Rain"},
                   {"role": "tool", "tool_call_id": "call_rome", "content": [{"type": "text", "text": "Sun"}]},
                   tools=[WEATHER])

    chat(anthropic, body)

    assert sent(anthropic)["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_paris", "name": "get_weather", "input": {"query": "Paris"}},
            {"type": "tool_use", "id": "call_rome", "name": "get_weather", "input": {"query": "Rome"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_paris", "content": "Rain"},
            {"type": "tool_result", "tool_use_id": "call_rome", "content": [{"type": "text", "text": "Sun"}]}]}]


# Stop reasons and usage -------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "content", "finish_reason"), [
    ({}, DEFAULT_REPLY, "stop"),
    ({"max_tokens": 2}, "Hello from", "length"),
    ({"max_completion_tokens": 2}, "Hello from", "length"),
    ({"stop": ["stand-in"]}, "Hello from the ", "stop"),
])
def test_stop_reasons_map_to_finish_reasons(anthropic, params, content, finish_reason):
    completion = chat(anthropic, request(user("hi"), **params))

    assert completion["choices"][0]["message"]["content"] == content
    assert completion["choices"][0]["finish_reason"] == finish_reason


def test_cached_input_counts_in_prompt_tokens_and_is_reported_as_cached(anthropic):
    anthropic.behave(cache_read_input_tokens=1000, cache_creation_input_tokens=200)

    completion = chat(anthropic, request(user("Say hello there")))

    assert completion["usage"] == {"prompt_tokens": 1203, "completion_tokens": REPLY_WORDS,
                                   "total_tokens": 1203 + REPLY_WORDS, "prompt_tokens_details": {"cached_tokens": 1000},
                                   "cache_creation_input_tokens": 200}


# Streaming --------------------------------------------------------------------------------------


def test_streamed_text_arrives_as_openai_chunks_with_usage_last(anthropic):
    anthropic.behave(cache_read_input_tokens=40)

    chunks = stream(anthropic, request(user("Say hello there"), stream=True))

    assert sent(anthropic)["stream"] is True
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1 and chunks[0]["id"].startswith("msg_")
    assert chunks[0]["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == DEFAULT_REPLY
    assert chunks[-2]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 43, "completion_tokens": REPLY_WORDS,
                                   "total_tokens": 43 + REPLY_WORDS, "prompt_tokens_details": {"cached_tokens": 40},
                                   "cache_creation_input_tokens": 0}


def test_streamed_tool_call_arguments_concatenate_to_json(anthropic):
    chunks = stream(anthropic, request(user("Please use the tool"), tools=[WEATHER], stream=True))

    deltas = [call for c in chunks if c["choices"] for call in c["choices"][0]["delta"].get("tool_calls", ())]
    first, *fragments = deltas
    assert first["id"].startswith("toolu_")
    assert first["function"] == {"name": "get_weather", "arguments": ""}
    assert {call["index"] for call in deltas} == {0}
    assert len(fragments) > 1
    assert json.loads("".join(call["function"]["arguments"] for call in fragments)) == TOOL_INPUT
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] > 0


# Errors -----------------------------------------------------------------------------------------


def test_wrong_key_is_a_401_that_shows_neither_key_nor_address(anthropic):
    wrong_key = "sk-ant-wrong-key-0123456789"

    with pytest.raises(UpstreamError) as caught:
        chat(anthropic, request(user("hi")), api_key=wrong_key)

    assert (caught.value.status, caught.value.type) == (401, "authentication_error")
    assert wrong_key not in caught.value.message and API_KEY not in caught.value.message
    assert anthropic.base_url not in caught.value.message


def test_overloaded_stays_a_529_with_its_type(anthropic):
    anthropic.behave(status=529)

    with pytest.raises(UpstreamError) as caught:
        chat(anthropic, request(user("hi")))

    assert (caught.value.status, caught.value.type) == (529, "overloaded_error")
    assert "Overloaded" in caught.value.message


def test_rate_limit_keeps_retry_after(anthropic):
    anthropic.behave(status=429, retry_after=7)

    with pytest.raises(UpstreamError) as caught:
        chat(anthropic, request(user("hi")))

    assert (caught.value.status, caught.value.type) == (429, "rate_limit_error")
    assert caught.value.headers == {"retry-after": "7"}


def test_prompt_too_long_is_a_context_window_error_for_the_router(anthropic):
    too_long = "prompt is too long: 210000 tokens > 200000 maximum"
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": too_long}}
    anthropic.behave(status=400, body=body)

    with pytest.raises(UpstreamError) as caught:
        chat(anthropic, request(user("hi")))

    assert (caught.value.status, caught.value.type) == (400, "context_length_exceeded")
    assert is_context_window_error(caught.value)


def test_stream_refused_upfront_raises_before_any_chunk(anthropic):
    anthropic.behave(status=529)
    received: list[dict[str, Any]] = []

    with pytest.raises(UpstreamError) as caught:
        stream(anthropic, request(user("hi"), stream=True), received)

    assert caught.value.status == 529
    assert received == []


def test_error_event_mid_stream_raises_upstream_error(anthropic):
    anthropic.behave(stream_error_after_events=5)
    received: list[dict[str, Any]] = []

    with pytest.raises(UpstreamError) as caught:
        stream(anthropic, request(user("hi"), stream=True), received)

    assert (caught.value.status, caught.value.type) == (529, "overloaded_error")
    assert received[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(chunk["choices"] and chunk["choices"][0]["finish_reason"] is None for chunk in received)


def test_stream_cut_before_message_stop_is_an_upstream_error(anthropic):
    anthropic.behave(cut_stream_after_chunks=4)

    with pytest.raises(UpstreamError) as caught:
        stream(anthropic, request(user("hi"), stream=True))

    assert caught.value.status == 502


def test_text_completions_and_embeddings_are_not_offered(anthropic):
    with pytest.raises(InvalidRequestError, match="/completions"):
        call(anthropic, lambda provider: provider.completion({"model": "claude", "prompt": "hi"}))
    with pytest.raises(InvalidRequestError, match="/embeddings"):
        call(anthropic, lambda provider: provider.embedding({"model": "claude", "input": "hi"}))


# The stand-in refuses what the real API refuses (so the tests above would see a bad translation) --


@pytest.mark.parametrize(("headers", "body", "message"), [
    ({}, {"model": MODEL, "max_tokens": 9, "messages": [user("hi")]}, "anthropic-version"),
    (None, {"model": MODEL, "messages": [user("hi")]}, "max_tokens: Field required"),
    (None, {"model": MODEL, "max_tokens": 9, "n": 1, "messages": [user("hi")]}, "n: Extra inputs"),
    (None, {"model": MODEL, "max_tokens": 9, "messages": [{"role": "system", "content": "x"}, user("hi")]},
     'Unexpected role "system"'),
    (None, {"model": MODEL, "max_tokens": 9, "messages": [user("a"), user("b")]}, "roles must alternate"),
])
def test_stand_in_refuses_like_the_messages_api(anthropic, headers, body, message):
    headers = {"anthropic-version": "2023-06-01"} if headers is None else headers
    response = httpx2.post(f"{anthropic.base_url}/v1/messages", json=body, headers={"x-api-key": API_KEY, **headers},
                           trust_env=False)

    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert message in response.json()["error"]["message"]
