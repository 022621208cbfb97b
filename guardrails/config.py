"""Reading guardrail settings: lists given inline or as a file, service addresses, failure modes."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings

from gateway_project.config import ConfigError, GatewayConfig
from guardrails.base import FailureMode, FailurePolicy


def env_setting(config: GatewayConfig, name: str) -> str | None:
    """``name`` from config.yaml's ``environment_variables``, else from the process environment as
    read by settings.py (``environment_variables`` are exported after settings were read)."""
    return config.environment_variables.get(name) or getattr(settings, name, None) or None


def config_path(config: GatewayConfig, value: str) -> Path:
    """A path from config.yaml: relative paths are relative to the config file's folder."""
    path = Path(value).expanduser()
    if not path.is_absolute():
        base = Path(config.source).parent if Path(config.source).is_file() else Path.cwd()
        path = base / path
    return path


def load_list(config: GatewayConfig, setting: str, value: tuple[str, ...] | str | None) -> tuple[str, ...]:
    """``litellm_settings.<setting>``: a list, or the path of a text file with one entry a line."""
    if value is None:
        return ()
    if isinstance(value, str):
        path = config_path(config, value)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"{config.source}: litellm_settings.{setting}: cannot read {path}: "
                              f"{exc.strerror}") from None
        value = tuple(lines)
    return tuple(item.strip() for item in value if item.strip())


def failure_policy(config: GatewayConfig, guardrail: str, specific: FailureMode | None) -> FailurePolicy:
    """The guardrail's own ``*_failure_mode``, else ``guardrail_failure_mode`` (default closed)."""
    return FailurePolicy(guardrail, specific or config.litellm_settings.guardrail_failure_mode)
