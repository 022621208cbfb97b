"""Virtual-key tokens: generated, digested, abbreviated. The raw key is never stored."""
from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "sk-"


def generate_key() -> str:
    """``sk-`` + 22 url-safe characters (128 random bits), the LiteLLM format."""
    return KEY_PREFIX + secrets.token_urlsafe(16)


def digest(key: str) -> str:
    """sha256 hex of the key: the stored ``token``. Keys carry 128 random bits, so a fast hash is
    enough; there is nothing to brute-force as there is for passwords."""
    return hashlib.sha256(key.encode()).hexdigest()


def is_digest(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def to_digest(key_or_digest: str) -> str:
    """Management endpoints accept a raw key or its digest wherever a key is named."""
    return key_or_digest if is_digest(key_or_digest) else digest(key_or_digest)


def abbreviate(key: str) -> str:
    return f"{KEY_PREFIX}...{key[-4:]}"


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
