"""What every secret backend speaks: the protocol, its errors, and the helpers backends share.

Messages name the secret and the backend, never a value: they end up in start-up errors and logs.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Protocol


class SecretError(Exception):
    """A secret could not be read."""


class SecretNotFound(SecretError, LookupError):
    """A named secret does not exist in the configured backend."""


class SecretManagerUnavailable(SecretError):
    """The backend could not answer: unreachable, timed out, refused our credentials, SDK missing."""


class SecretManagerConfigError(ValueError):
    """``key_management_system`` / ``key_management_settings`` cannot be used; the message starts
    with the field's path (``general_settings.key_management_settings.vault_addr: …``)."""


class SecretManager(Protocol):
    name: str

    def get(self, name: str) -> str: ...


def not_found(name: str, backend: str, detail: str = "") -> SecretNotFound:
    return SecretNotFound(f"secret {name} not found in {backend}" + (f" ({detail})" if detail else ""))


def unavailable(name: str, backend: str, reason: str) -> SecretManagerUnavailable:
    return SecretManagerUnavailable(f"secret {name} could not be read from {backend}: {reason}")


def setting_error(field: str, problem: str) -> SecretManagerConfigError:
    return SecretManagerConfigError(f"general_settings.key_management_settings.{field}: {problem}")


def require(module: str, package: str, backend: str) -> ModuleType:
    """Import a backend's SDK when it is first used; a missing one says which package to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SecretManagerUnavailable(f"{backend} needs the {package} package: pip install {package}") from None


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An SDK error, short: its first line, capped (Azure's run to a page of troubleshooting links)."""
    text = " ".join(str(exc).strip().splitlines()[0].split()) if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "…"
