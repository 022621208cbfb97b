"""The user-visible texts of a request, an answer and a streamed chunk, for guardrails to read or
rewrite: message contents (strings and the text parts of multimodal content), ``prompt`` and
``input`` (strings, lists of strings, or Responses-style lists of messages)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Rewrite = Callable[[str], str]


def request_texts(body: dict[str, Any]) -> Iterator[str]:
    for container, key in _slots(body):
        yield container[key]


def rewrite_request(body: dict[str, Any], rewrite: Rewrite) -> None:
    """Replace every request text by ``rewrite(text)``, in place."""
    for container, key in _slots(body):
        text = container[key]
        new = rewrite(text)
        if new is not text:
            container[key] = new


def prompt_text(body: dict[str, Any]) -> str:
    """All request texts as one string, for services that take one prompt."""
    return "\n".join(text for text in request_texts(body) if text)


def conversation(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, text) turns of a chat request, or one user turn for a prompt / input."""
    messages = body.get("messages")
    if isinstance(messages, list):
        turns = []
        for message in messages:
            if isinstance(message, dict):
                text = "\n".join(_content_texts(message.get("content")))
                if text:
                    turns.append((str(message.get("role") or "user"), text))
        return turns
    text = prompt_text(body)
    return [("user", text)] if text else []


def response_texts(response: dict[str, Any]) -> Iterator[str]:
    """Texts of a buffered answer: chat message contents or completion texts."""
    for choice in response.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict):
            yield from _content_texts(message.get("content"))
        if isinstance(choice.get("text"), str):
            yield choice["text"]


def chunk_deltas(chunk: dict[str, Any]) -> Iterator[tuple[int, str]]:
    """(choice index, content delta) of a streamed chunk."""
    for position, choice in enumerate(chunk.get("choices") or ()):
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str) and content:
            index = choice.get("index")
            yield (index if isinstance(index, int) else position), content


def _content_texts(content: Any) -> Iterator[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield part["text"]


def _slots(body: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """Where each request text lives: (container, key), so that ``container[key]`` is the text."""
    messages = body.get("messages")
    if isinstance(messages, list):
        yield from _message_slots(messages)
    for name in ("prompt", "input"):
        value = body.get(name)
        if isinstance(value, str):
            yield body, name
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, str):
                    yield value, index
            # Responses API: "input" may be a list of messages
            yield from _message_slots(value)


def _message_slots(messages: list[Any]) -> Iterator[tuple[Any, Any]]:
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield message, "content"
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part, "text"

