"""config.yaml → GatewayConfig: read, export ``environment_variables``, resolve ``os.environ/``
references, validate. Every failure is a ConfigError naming the file and the field."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway_project import secrets
from gateway_project.config.schema import GatewayConfig, unknown_keys

logger = logging.getLogger("gateway.config")

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")


class ConfigError(Exception):
    """config.yaml cannot be used; the message says where and why."""


def load_config(path: str | os.PathLike | None, *, master_key: str | None = None) -> GatewayConfig:
    source = Path(path) if path else DEMO_CONFIG
    label = str(path) if path else "built-in demo config"
    raw = _read_yaml(source, label)
    _export_environment(raw.get("environment_variables"), label)
    try:  # general_settings.key_management_system, before any reference is resolved through it
        manager, raw = secrets.open_manager(raw)
    except secrets.SecretManagerConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    with secrets.using(manager):  # pass-through headers resolve theirs while validating
        resolved = _resolve_references(raw, label, ())
        try:
            config = GatewayConfig.model_validate({**resolved, "source": label})
        except ValidationError as exc:
            raise ConfigError(_describe(exc, label)) from None
    if not config.general_settings.master_key and master_key:
        settings = config.general_settings.model_copy(update={"master_key": master_key})
        config = config.model_copy(update={"general_settings": settings})
    ignored = unknown_keys(config)
    if ignored:
        logger.warning("%s: these keys are not used by the gateway and were ignored: %s", label, ", ".join(ignored))
    return config


def _read_yaml(source: Path, label: str) -> dict[str, Any]:
    try:
        text = source.read_text()
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read the config file: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: the top level must be a mapping (model_list, general_settings, …)")
    return raw


def _export_environment(values: Any, label: str) -> None:
    if values is None:
        return
    if not isinstance(values, dict):
        raise ConfigError(f"{label}: environment_variables must be a mapping of NAME: value")
    for name, value in values.items():
        os.environ[str(name)] = "" if value is None else str(value)


def _resolve_references(node: Any, label: str, path: tuple[str, ...]) -> Any:
    if isinstance(node, dict):
        return {key: _resolve_references(value, label, (*path, str(key))) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve_references(value, label, (*path, str(i))) for i, value in enumerate(node)]
    if secrets.is_reference(node):
        try:
            return secrets.resolve(node)
        except secrets.SecretError as exc:
            raise ConfigError(f"{label}: {'.'.join(path)}: {exc}") from None
    return node


def _describe(exc: ValidationError, label: str) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"{label}: {where}: {error['msg']}")
    return "\n".join(lines)
