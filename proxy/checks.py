"""System check for the proxy's share of config.yaml: every deployment names a known provider."""
from __future__ import annotations

from django.core.checks import Error, register

from gateway_project.config import ConfigError, get_config
from proxy.providers.registry import PROVIDERS, provider_class


@register("gateway")
def check_providers(app_configs, **kwargs):
    try:
        config = get_config()
    except ConfigError:
        return []  # reported by gateway.E001
    problems = []
    for index, deployment in enumerate(config.model_list):
        params = deployment.litellm_params
        if params.provider not in PROVIDERS:
            problems.append(Error(f"{config.source}: model_list.{index}.litellm_params.model: unknown provider "
                                  f"{params.provider!r}", hint=f"Known providers: {', '.join(sorted(PROVIDERS))}.",
                                  id="gateway.E003"))
        elif problem := provider_class(params.provider).config_problem(params):
            problems.append(Error(f"{config.source}: model_list.{index}.litellm_params: {problem}",
                                  id="gateway.E004"))
    return problems
