"""System check for the proxy's share of config.yaml: every deployment names a known provider."""
from __future__ import annotations

from django.core.checks import Error, register

from gateway_project.config import ConfigError, get_config
from proxy.providers.registry import PROVIDERS


@register("gateway")
def check_providers(app_configs, **kwargs):
    try:
        config = get_config()
    except ConfigError:
        return []  # reported by gateway.E001
    return [
        Error(f"{config.source}: model_list.{index}.litellm_params.model: unknown provider "
              f"{deployment.litellm_params.provider!r}",
              hint=f"Known providers: {', '.join(sorted(PROVIDERS))}.", id="gateway.E003")
        for index, deployment in enumerate(config.model_list)
        if deployment.litellm_params.provider not in PROVIDERS
    ]
