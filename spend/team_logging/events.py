"""LogEvent: one finished request as the logging callbacks see it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spend.records import SpendRecord


@dataclass(slots=True)
class LogEvent:
    record: SpendRecord                  # what the ledger keeps: ids, model, usage, cost, times, metadata
    input: Any = None                    # messages / prompt / embedding input, as the client sent them
    output: Any = None                   # the answer: a message, a text, or a summary for embeddings
    request_metadata: dict[str, Any] = field(default_factory=dict)   # the request's own "metadata"
    model_parameters: dict[str, Any] = field(default_factory=dict)   # temperature, max_tokens, …
    error_message: str | None = None


class RetryableError(Exception):
    """The batch may go through later (network trouble, 429, 5xx)."""


class RefusedError(Exception):
    """The destination refused the batch for good (bad credentials, malformed): no retry."""
