"""The loaded, immutable gateway configuration: ``get_config()`` is the one accessor."""
from __future__ import annotations

import threading

from gateway_project.config.loader import ConfigError, load_config
from gateway_project.config.schema import Deployment, GatewayConfig

_lock = threading.Lock()
_config: GatewayConfig | None = None


def get_config() -> GatewayConfig:
    global _config
    if _config is None:
        with _lock:
            if _config is None:
                from django.conf import settings

                _config = load_config(settings.GATEWAY_CONFIG, master_key=settings.GATEWAY_MASTER_KEY)
    return _config


def set_config(config: GatewayConfig | None) -> None:
    """Replace the process's config (tests, reload); None makes the next get_config() load again."""
    global _config
    with _lock:
        _config = config


__all__ = ["ConfigError", "Deployment", "GatewayConfig", "get_config", "load_config", "set_config"]
