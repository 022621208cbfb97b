"""Step 4: the request's model exists and the key and team may use it; gateway metadata merged."""
from __future__ import annotations

from gateway_project.errors import InvalidRequestError, ModelAccessDeniedError
from keys.policy import (enforced_param_error, merge_spend_logs_metadata, merge_tags, missing_enforced_param,
                         model_allowed)
from proxy.pipeline.context import RequestContext
from proxy.runtime import get_runtime


def invalid_model_message(path: str, model: str) -> str:
    return (f"{path}: Invalid model name passed in model={model}. "
            "Call `/v1/models` to view available models for your key.")


def check_enforced_params(ctx: RequestContext) -> None:
    """``general_settings.enforced_params`` and the key's own: dotted paths the body must carry."""
    required = get_runtime().config.general_settings.enforced_params
    key = ctx.principal.key
    if key is not None and key.enforced_params:
        required = (*required, *key.enforced_params)
    missing = missing_enforced_param(ctx.body, required) if required else None
    if missing is not None:
        raise enforced_param_error(missing)


def check_model(ctx: RequestContext) -> None:
    model = ctx.model_group
    principal = ctx.principal
    groups = get_runtime().router.access_groups
    if principal.key is not None and not model_allowed(model, principal.key.models, groups):
        raise ModelAccessDeniedError(
            f"The requested model '{model}' is not available for this API key, or the model name is invalid. "
            "Check the models available to you and try again.")
    if principal.team is not None and not model_allowed(model, principal.team.models, groups):
        raise ModelAccessDeniedError(
            f"The requested model '{model}' is not available for this API key's team, or the model name is "
            "invalid. Check the models available to you and try again.", type="team_model_access_denied")
    if not get_runtime().router.has(model):
        raise InvalidRequestError(invalid_model_message(ctx.request.path, model), param="model")


def merge_metadata(ctx: RequestContext) -> None:
    """Tags and ``spend_logs_metadata`` from the request, its key and its team, for the spend log."""
    metadata = ctx.body.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    key, team = ctx.principal.key, ctx.principal.team
    key_meta = key.metadata if key else {}
    team_meta = team.metadata if team else {}
    ctx.tags = merge_tags(metadata.get("tags") if isinstance(metadata.get("tags"), list) else None,
                          key_meta.get("tags"), key.tags if key else None, team_meta.get("tags"))
    ctx.spend_logs_metadata = merge_spend_logs_metadata(
        metadata.get("spend_logs_metadata"), key_meta.get("spend_logs_metadata"), team_meta.get("spend_logs_metadata"))
    user = ctx.body.get("user")
    # An end user named by the caller's JWT wins over the body's "user".
    ctx.end_user = ctx.principal.end_user_id or (user if isinstance(user, str) and user else None)
