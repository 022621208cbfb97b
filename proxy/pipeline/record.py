"""Step 8: every authenticated request leaves one spend record, success or failure, off the
response path (``spend.recorder`` only queues it)."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from proxy.pipeline.context import RequestContext
from spend.cost import cost
from spend.recorder import SpendRecord, record

logger = logging.getLogger("gateway.proxy")

CALL_TYPES = {"chat": "acompletion", "completion": "atext_completion", "embedding": "aembedding"}


def price_call(ctx: RequestContext) -> None:
    """Cost of the call from its usage and the deployment's price."""
    value = cost(ctx.route.price if ctx.route else None, prompt_tokens=ctx.prompt_tokens,
                 completion_tokens=ctx.completion_tokens, cached_tokens=ctx.cached_tokens)
    ctx.spend_known = value is not None
    ctx.spend = value or 0.0


def _metadata(ctx: RequestContext) -> dict:
    principal = ctx.principal
    team = principal.team
    metadata = {
        "user_api_key": principal.token,
        "user_api_key_alias": principal.key_alias,
        "user_api_key_team_id": team.team_id if team else None,
        "user_api_key_user_id": principal.user_id,
        "user_api_key_team_alias": team.team_alias if team else None,
        "spend_logs_metadata": ctx.spend_logs_metadata or None,
        "requester_ip_address": ctx.requester_ip,
        "user_agent": ctx.request.headers.get("user-agent"),
        "status": "failure" if ctx.error else "success",
    }
    if not ctx.spend_known:
        metadata["cost_unknown"] = True
    if ctx.applied_guardrails:
        metadata["applied_guardrails"] = ctx.applied_guardrails
    if ctx.usage_estimated:
        metadata["usage_estimated"] = True
    if ctx.cached_tokens:
        metadata["cached_tokens"] = ctx.cached_tokens
    if ctx.route is not None and ctx.route.model_group != ctx.model_group:
        metadata["fallback_model_group"] = ctx.route.model_group
    if ctx.error is not None:
        metadata["error_information"] = {"error_code": str(ctx.error.status), "error_class": type(ctx.error).__name__,
                                         "error_message": ctx.error.message}
    return metadata


def record_call(ctx: RequestContext) -> None:
    if ctx.recorded or ctx.principal is None:
        return
    ctx.recorded = True
    route = ctx.route
    # A failed call with usage (a stream cut short, a response refused for its size) was paid for.
    has_usage = bool(ctx.prompt_tokens or ctx.completion_tokens)
    if route is not None and has_usage:
        price_call(ctx)
    principal = ctx.principal
    record(SpendRecord(
        request_id=ctx.response_id or ctx.call_id, call_id=ctx.call_id,
        call_type=CALL_TYPES.get(ctx.call_type, ctx.call_type),
        status="failure" if ctx.error else "success",
        start_time=ctx.start_time, end_time=datetime.now(timezone.utc),
        completion_start_time=ctx.completion_start_time,
        api_key=principal.token or "", key_alias=principal.key_alias,
        team_id=principal.team.team_id if principal.team else None,
        user=principal.user_id, end_user=ctx.end_user,
        model=route.upstream_model if route else ctx.model_group, model_group=ctx.model_group,
        model_id=route.id if route else "", custom_llm_provider=route.provider_name if route else "",
        api_base=route.provider.api_base if route else "",
        prompt_tokens=ctx.prompt_tokens, completion_tokens=ctx.completion_tokens,
        spend=(ctx.spend if ctx.spend_known else None) if has_usage else 0.0,
        request_tags=ctx.tags, metadata=_metadata(ctx), requester_ip_address=ctx.requester_ip,
    ))
