"""Resolve ``os.environ/NAME`` references in config.yaml: from the environment, or from the secret manager
``general_settings.key_management_system`` names (docs/secret-managers.md).

References are resolved while the config loads, never at request time:

    manager, raw = secrets.open_manager(raw)      # the manager general_settings names, not yet contacted
    with secrets.using(manager):
        value = secrets.resolve("os.environ/OPENAI_API_KEY")
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic import ValidationError

from gateway_project.secrets.base import (
    SecretError, SecretManager, SecretManagerConfigError, SecretManagerUnavailable, SecretNotFound,
)
from gateway_project.secrets.environment import EnvironmentSecrets
from gateway_project.secrets.registry import BACKENDS, backend_class
from gateway_project.secrets.settings import KeyManagementSettings, KeyManagementSystem

logger = logging.getLogger("gateway.secrets")

REFERENCE_PREFIX = "os.environ/"
MANAGER_KEYS = ("key_management_system", "key_management_settings")

ENVIRONMENT = EnvironmentSecrets()
_active: ContextVar[SecretManager] = ContextVar("gateway_secret_manager", default=ENVIRONMENT)


def is_reference(value: object) -> bool:
    return isinstance(value, str) and value.startswith(REFERENCE_PREFIX)


def resolve(reference: str) -> str:
    """Return the secret a reference names; raise a SecretError (naming it, never its value)."""
    name = reference[len(REFERENCE_PREFIX):] if is_reference(reference) else reference
    return _active.get().get(name)


@contextmanager
def using(manager: SecretManager) -> Iterator[SecretManager]:
    """Resolve references through ``manager`` inside the block (this thread or task only)."""
    token = _active.set(manager)
    try:
        yield manager
    finally:
        _active.reset(token)


class ConfiguredSecrets:
    """The configured manager as config.yaml sees it: each name is fetched once; names outside
    ``hosted_keys`` (all of them in write_only mode) come from the environment, and so do names the
    manager does not hold, as in LiteLLM. An unreachable or refusing manager is never papered over."""

    def __init__(self, backend: SecretManager, settings: KeyManagementSettings) -> None:
        self.backend, self.settings = backend, settings
        self.name = backend.name
        self._cache: dict[str, str] = {}

    def get(self, name: str) -> str:
        if name not in self._cache:
            self._cache[name] = self._fetch(name)
        return self._cache[name]

    def _fetch(self, name: str) -> str:
        if not self.settings.hosts(name):
            return ENVIRONMENT.get(name)
        try:
            return self.backend.get(name)
        except SecretNotFound:
            if name not in os.environ:
                raise
        logger.info("%s holds no secret %s: using the environment variable", self.name, name)
        return os.environ[name]


def open_manager(raw_config: dict[str, Any]) -> tuple[SecretManager, dict[str, Any]]:
    """The manager ``general_settings.key_management_system`` names (the environment when unset), and
    the config with that key and ``key_management_settings`` resolved from the environment: the
    manager's own address and credentials cannot come from the manager. Nothing is contacted yet.
    Raises SecretManagerConfigError."""
    general = raw_config.get("general_settings")
    if not isinstance(general, dict) or not general.get("key_management_system"):
        return ENVIRONMENT, raw_config
    section = {key: _from_environment(general[key], f"general_settings.{key}")
               for key in MANAGER_KEYS if general.get(key) is not None}
    system = section["key_management_system"]
    if not isinstance(system, str) or system not in BACKENDS:
        raise SecretManagerConfigError(f"general_settings.key_management_system: {system!r} is not a supported "
                                       f"secret manager; use one of: {', '.join(BACKENDS)}")
    try:
        settings = KeyManagementSettings.model_validate(section.get("key_management_settings") or {})
    except ValidationError as exc:
        raise SecretManagerConfigError("\n".join(
            f"general_settings.key_management_settings.{'.'.join(map(str, e['loc']))}: {e['msg']}"
            for e in exc.errors())) from None
    backend = backend_class(system)(settings)
    if isinstance(backend, EnvironmentSecrets):
        manager: SecretManager = ENVIRONMENT
    else:
        manager = ConfiguredSecrets(backend, settings)
    return manager, {**raw_config, "general_settings": {**general, **section}}


def _from_environment(node: Any, path: str) -> Any:
    if isinstance(node, dict):
        return {key: _from_environment(value, f"{path}.{key}") for key, value in node.items()}
    if isinstance(node, list):
        return [_from_environment(value, f"{path}.{i}") for i, value in enumerate(node)]
    if is_reference(node):
        try:
            return ENVIRONMENT.get(node[len(REFERENCE_PREFIX):])
        except SecretNotFound as exc:
            raise SecretManagerConfigError(f"{path}: {exc}") from None
    return node


__all__ = ["REFERENCE_PREFIX", "ConfiguredSecrets", "KeyManagementSettings", "KeyManagementSystem", "SecretError",
           "SecretManager", "SecretManagerConfigError", "SecretManagerUnavailable", "SecretNotFound",
           "is_reference", "open_manager", "resolve", "using"]
