"""Token counts estimated locally, for when an upstream reports no usage (and /spend/calculate).

No tokenizer is bundled (their vocabularies are downloaded at run time, which a self-hosted gateway
cannot rely on). English text averages about four characters per token for OpenAI's and
Anthropic's tokenizers; chat formatting adds a few tokens per message. Estimates are flagged as such.
"""
from __future__ import annotations

import math
from typing import Any

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3      # role and separators
TOKENS_PER_REPLY = 3        # the assistant's reply is primed with a few tokens


def estimate_tokens_of_chars(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN) if chars > 0 else 0


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    messages = body.get("messages")
    if isinstance(messages, list):
        return TOKENS_PER_REPLY + sum(
            TOKENS_PER_MESSAGE + estimate_tokens_of_chars(len(_text(m.get("content"))))
            for m in messages if isinstance(m, dict))
    for name in ("prompt", "input"):
        value = body.get(name)
        if isinstance(value, list):
            return sum(estimate_tokens_of_chars(len(str(v))) for v in value)
        if isinstance(value, str):
            return estimate_tokens_of_chars(len(value))
    return 0
