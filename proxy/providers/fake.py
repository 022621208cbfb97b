"""The built-in fake model: answers locally, so a first request works with no provider key."""
from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from gateway_project.config.schema import LitellmParams
from proxy.providers.base import FinalBurst

REPLY = "Hi there! This is the gateway's built-in fake model answering."


def _words(body: dict[str, Any]) -> int:
    count = 0
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            count += len(content.split())
        elif isinstance(content, list):
            count += sum(len(str(part.get("text", "")).split()) for part in content if isinstance(part, dict))
    return max(count, 1)


def _vector(text: str, size: int = 8) -> list[float]:
    """A deterministic unit-free vector: the same text always embeds the same."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round(byte / 255, 6) for byte in digest[:size]]


class FakeProvider:
    name = "fake"
    api_base = "fake://local"

    @classmethod
    def config_problem(cls, params: LitellmParams) -> str | None:
        return None

    def __init__(self, params: LitellmParams, **_: Any) -> None:
        self._model = params.upstream_model

    def _reply(self, body: dict[str, Any]) -> list[str]:
        words = REPLY.split()
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        return words[: int(limit)] if isinstance(limit, int) and limit > 0 else words

    def _usage(self, body: dict[str, Any], reply: list[str]) -> dict[str, int]:
        prompt = _words(body)
        return {"prompt_tokens": prompt, "completion_tokens": len(reply), "total_tokens": prompt + len(reply)}

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = self._reply(body)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": self._model, "system_fingerprint": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(reply)},
                         "finish_reason": "stop"}],
            "usage": self._usage(body, reply),
        }

    async def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = self._reply(body)
        prompt = body.get("prompt")
        prompt_tokens = sum(len(str(p).split()) for p in (prompt if isinstance(prompt, list) else [prompt])) or 1
        return {
            "id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": self._model,
            "choices": [{"text": " ".join(reply), "index": 0, "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(reply),
                      "total_tokens": prompt_tokens + len(reply)},
        }

    async def embedding(self, body: dict[str, Any]) -> dict[str, Any]:
        texts = body.get("input")
        texts = texts if isinstance(texts, list) else [texts]
        data = [{"object": "embedding", "index": i, "embedding": _vector(str(text))} for i, text in enumerate(texts)]
        tokens = sum(len(str(text).split()) for text in texts) or 1
        return {"object": "list", "model": self._model, "data": data,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """The whole answer in one burst: a local model has no network reads to pace it."""
        reply = self._reply(body)
        base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": self._model}
        chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "finish_reason": None}]}]
        for index, word in enumerate(reply):
            text = word if index == 0 else f" {word}"
            chunks.append({**base, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        chunks.append({**base, "choices": [], "usage": self._usage(body, reply)})
        yield FinalBurst(chunks)
