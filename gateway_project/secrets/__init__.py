"""Resolve ``os.environ/NAME`` references in config.yaml and key storage.

The environment is the default (and, for now, only) backend; secret-manager backends plug in beside
``environment.py`` and are picked by ``general_settings.key_management_system``.
"""
from __future__ import annotations

from gateway_project.secrets.base import SecretNotFound
from gateway_project.secrets.environment import EnvironmentSecrets

REFERENCE_PREFIX = "os.environ/"

_backend = EnvironmentSecrets()


def is_reference(value: object) -> bool:
    return isinstance(value, str) and value.startswith(REFERENCE_PREFIX)


def resolve(reference: str) -> str:
    """Return the secret a reference names; raise SecretNotFound (naming it, never its value)."""
    name = reference[len(REFERENCE_PREFIX):] if is_reference(reference) else reference
    return _backend.get(name)


__all__ = ["SecretNotFound", "is_reference", "resolve", "REFERENCE_PREFIX"]
