"""System checks with stable ids: a wrong setup fails at start with a hint, not at first request."""
from __future__ import annotations

from django.core.checks import Error, Warning, register

from gateway_project.config import ConfigError, get_config


@register("gateway")
def check_config(app_configs, **kwargs):
    try:
        config = get_config()
    except ConfigError as exc:
        return [Error(str(exc), hint="Fix config.yaml (see docs/config.md).", id="gateway.E001")]
    problems = []
    master_key = config.general_settings.master_key
    if not master_key:
        problems.append(Warning(
            "No master key is set: the management API cannot be used.",
            hint="Set general_settings.master_key in config.yaml or GATEWAY_MASTER_KEY.", id="gateway.W001"))
    elif not master_key.startswith("sk-"):
        problems.append(Error("The master key must start with 'sk-'.", id="gateway.E002"))
    if not config.model_list:
        problems.append(Warning("config.yaml has an empty model_list: no model can be called.", id="gateway.W002"))
    if config.general_settings.store_prompts_in_spend_logs:
        problems.append(Warning(
            "general_settings.store_prompts_in_spend_logs is not supported: the spend log keeps no prompts or "
            "responses.", hint="Send them to a logging callback instead (docs/team-logging.md).", id="gateway.W003"))
    return problems
