"""System check: every guardrail switched on in ``litellm_settings.callbacks`` can be built, so a
missing list file or service address stops start-up instead of failing requests."""
from __future__ import annotations

from django.core.checks import Error, register

from gateway_project.config import ConfigError, get_config
from guardrails.runner import guardrails_for


@register("gateway")
def check_guardrails(app_configs, **kwargs):
    try:
        config = get_config()
    except ConfigError:
        return []  # reported by gateway.E001
    try:
        guardrails_for(config)
    except ConfigError as exc:
        return [Error(str(exc), hint="See docs/guardrails.md for each guardrail's settings.", id="guardrails.E001")]
    return []
