"""banned_keywords: a request (or an answer) containing a banned word is refused.

Matching is LiteLLM's: a word is banned wherever it appears in the lower-cased text, inside other
words too ("hello" bans "Hello world!" and "othello"). The list is lower-cased once, at load.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from gateway_project.config import ConfigError, GatewayConfig
from guardrails.base import Call, ChunkCheck, Guardrail, GuardrailBlocked
from guardrails.config import load_list
from guardrails.texts import chunk_deltas, request_texts, response_texts


def banned_message(word: str) -> str:
    return f"Keyword banned. Keyword={word}"


class BannedKeywords(Guardrail):
    name = "banned_keywords"
    checks_output = True

    def __init__(self, words: tuple[str, ...]) -> None:
        self.words = tuple(dict.fromkeys(word.lower() for word in words))
        # One pass over the text finds the first banned word, however long the list.
        self._pattern = re.compile("|".join(re.escape(word) for word in self.words))
        self._overlap = max(len(word) for word in self.words) - 1

    @classmethod
    def from_config(cls, config: GatewayConfig) -> BannedKeywords:
        words = load_list(config, "banned_keywords_list", config.litellm_settings.banned_keywords_list)
        if not words:
            raise ConfigError(f"{config.source}: litellm_settings.callbacks has banned_keywords, but "
                              "litellm_settings.banned_keywords_list is empty or missing")
        return cls(words)

    def violation(self, text: str) -> str | None:
        """The banned word ``text`` contains, if any."""
        match = self._pattern.search(text.lower())
        return match.group() if match else None

    def check(self, texts: Iterable[str]) -> None:
        for text in texts:
            word = self.violation(text)
            if word is not None:
                raise GuardrailBlocked(banned_message(word))

    async def pre_call(self, call: Call) -> None:
        self.check(request_texts(call.body))

    async def post_call(self, call: Call, response: dict[str, Any]) -> None:
        self.check(response_texts(response))

    def stream_check(self, call: Call) -> ChunkCheck:
        # Each choice keeps the end of what it streamed so far: a word split over two chunks
        # ("hel" + "lo") is still found, in the chunk that completes it.
        tails: dict[int, str] = {}
        overlap = self._overlap

        def check(chunk: dict[str, Any]) -> None:
            for index, content in chunk_deltas(chunk):
                text = tails.get(index, "") + content
                word = self.violation(text)
                if word is not None:
                    raise GuardrailBlocked(banned_message(word))
                tails[index] = text[-overlap:] if overlap else ""

        return check
