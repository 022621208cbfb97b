"""Any server that speaks OpenAI's API: OpenAI, vLLM, Ollama, Groq, Together, OpenRouter, …"""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from gateway_project.errors import UpstreamError
from proxy.providers.base import HttpProvider, final_as, upstream_body


class OpenAICompatible(HttpProvider):
    name = "openai"
    default_api_base = "https://api.openai.com/v1"

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.params.api_key:
            headers["authorization"] = f"Bearer {self.params.api_key}"
        return headers

    def url(self, path: str) -> str:
        """``path`` is the OpenAI path below the base: ``/chat/completions``, ``/embeddings``…"""
        return self.api_base + path

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.post_json(self.url("/chat/completions"), upstream_body(body, self.model))

    async def chat_stream(self, body: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        payload = upstream_body(body, self.model)
        # Ask for usage in the stream so streamed spend is exact; the relay hides the usage chunk
        # from clients that did not ask for it.
        payload["stream_options"] = {**(payload.get("stream_options") or {}), "include_usage": True}
        response = await self.send(self.url("/chat/completions"), payload, self.stream_timeout, stream=True)
        async for burst in self.sse_bursts(response):
            chunks: list[dict[str, Any]] = []
            try:
                for data in burst:
                    chunks.append(self.loads_chunk(data))
            except UpstreamError:
                if chunks:  # the chunks before a malformed one still reach the client, ahead of the error
                    yield chunks
                raise
            yield final_as(burst, chunks)

    async def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.post_json(self.url("/completions"), upstream_body(body, self.model))

    async def embedding(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.post_json(self.url("/embeddings"), upstream_body(body, self.model))
