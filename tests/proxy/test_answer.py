"""The proxy's answers are made without Django's response constructors (proxy/answer.py): what those would
set must be what is set, attribute for attribute, so that a Django release changing its constructors fails
here, and the answers behave as Django's responses anywhere else (a middleware, Django's own handler)."""
from __future__ import annotations

import asyncio

import pytest
from django.http import HttpResponse, StreamingHttpResponse

from proxy.answer import EVENT_STREAM, JSON, EventStream, ProxyAnswer

OWN = {"x-litellm-call-id": "call-1", "x-litellm-model-group": "gpt"}
# Ours alone: the headers kept apart, and the content type they are sent with.
OURS = {"_own_headers", "_content_type"}


def _state(response) -> dict:
    """The instance's attributes, with the headers mapping read as Django would store it."""
    state = dict(vars(response))
    headers = state.pop("_django_headers", None) or state.pop("headers")
    state["headers"] = dict(headers._store)
    for name in OURS:
        state.pop(name, None)
    return state


def _comparable(state: dict) -> dict:
    """Fresh objects compared by what they hold."""
    out = dict(state)
    out["cookies"] = dict(out["cookies"])
    out.pop("_iterator", None)
    return out


@pytest.mark.parametrize("status", [200, 201, 429, 500])
def test_a_proxy_answer_is_what_django_would_make(status: int) -> None:
    content = b'{"id": "x"}'
    ours = ProxyAnswer(content, dict(OWN), status=status)
    django = HttpResponse(content, content_type=JSON, status=status)

    assert _comparable(_state(ours)) == _comparable(_state(django))
    assert ours.content == content and ours.status_code == status and ours.reason_phrase == django.reason_phrase
    assert ours.charset == django.charset and not ours.cookies
    # Looked at, the headers are Django's, with ours among them, checked as Django checks them.
    assert ours["Content-Type"] == JSON and ours["X-LiteLLM-Call-Id"] == "call-1"
    ours["x-extra"] = "1"
    assert ours.has_header("X-Extra") and ours.serialize_headers().startswith(b"Content-Type: application/json")


def test_a_proxy_answer_refuses_a_status_django_refuses() -> None:
    with pytest.raises(ValueError):
        ProxyAnswer(b"{}", {}, status=600)


def test_an_event_stream_is_what_django_would_make() -> None:
    ours = EventStream(dict(OWN))
    django = StreamingHttpResponse(content_type=EVENT_STREAM)

    # Before its relay is given: no content, as Django's with its default empty content.
    assert _comparable(_state(ours)) == _comparable({k: v for k, v in _state(django).items() if k != "_parts"})
    assert list(ours._iterator) == list(django._iterator) == [] and ours.is_async is django.is_async is False

    async def parts():
        yield b"data: 1\n\n"
        yield b"data: 2\n\n"

    relay = parts()
    ours.relay(relay)
    django.streaming_content = parts()
    assert ours.is_async and django.is_async and ours.streaming

    async def read(response) -> list[bytes]:
        return [part async for part in response]

    assert asyncio.run(read(ours)) == [b"data: 1\n\n", b"data: 2\n\n"]
    assert ours["content-type"] == EVENT_STREAM and ours["x-litellm-model-group"] == "gpt"
