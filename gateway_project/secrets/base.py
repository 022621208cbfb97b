from __future__ import annotations

from typing import Protocol


class SecretNotFound(LookupError):
    """A named secret does not exist in the configured backend."""


class SecretManager(Protocol):
    def get(self, name: str) -> str: ...
