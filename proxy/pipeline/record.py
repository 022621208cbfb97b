"""Step 8: every authenticated request leaves one spend record, success or failure, off the
response path (``spend.recorder`` only queues it)."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from gateway_project.errors import UpstreamError
from proxy.pipeline.context import RequestContext
from proxy.runtime import get_runtime
from proxy.tokens import estimate_prompt_tokens
from spend import inflight, metrics, team_logging
from spend.cost import cost
from spend.counters import NANO
from spend.recorder import SpendRecord, record

logger = logging.getLogger("gateway.proxy")

CALL_TYPES = {"chat": "acompletion", "completion": "atext_completion", "embedding": "aembedding"}


def price_call(ctx: RequestContext) -> None:
    """Cost of the call from its usage and the deployment's price."""
    value = cost(ctx.route.price if ctx.route else None, prompt_tokens=ctx.prompt_tokens,
                 completion_tokens=ctx.completion_tokens, cached_tokens=ctx.cached_tokens)
    ctx.spend_known = value is not None
    ctx.spend = value or 0.0


def _requester_ip(ctx: RequestContext) -> str | None:
    """The caller's IP as the spend log keeps it: not at all with general_settings'
    ``disable_requester_ip_address_logging``."""
    return None if get_runtime().config.general_settings.disable_requester_ip_address_logging else ctx.requester_ip


def _metadata(ctx: RequestContext, requester_ip: str | None) -> dict:
    principal = ctx.principal
    team = principal.team
    metadata = {
        "user_api_key": principal.token,
        "user_api_key_alias": principal.key_alias,
        "user_api_key_team_id": team.team_id if team else None,
        "user_api_key_user_id": principal.user_id,
        "user_api_key_team_alias": team.team_alias if team else None,
        "spend_logs_metadata": ctx.spend_logs_metadata or None,
        "requester_ip_address": requester_ip,
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
    entry = _entry(ctx, has_usage)
    if metrics_on():
        metrics.observe_call(_metrics_sample(ctx, entry))
    if team_logging.logging_disabled(ctx.principal.team):
        team_logging.scrub(entry)   # the team switched logging off (GDPR): no content kept, none sent
    record(entry)
    targets = _log_targets(ctx, failed=ctx.error is not None)
    if targets:
        team_logging.submit(targets, _log_event(ctx, entry))


def in_flight_entry(ctx: RequestContext) -> bytes:
    """A stream's open entry in the in-flight journal (spend/inflight.py): the record it gets should this
    process die before the relay ends (failed, 499, partial; prompt tokens estimated, completion tokens
    from the last checkpoint), with the price and budget reservation to cost and settle it."""
    saved = ctx.error, ctx.usage_estimated
    ctx.error = UpstreamError(inflight.ORPHAN_ERROR, status=499, type="stream_interrupted")
    ctx.usage_estimated = True
    try:
        entry = _entry(ctx, has_usage=True)
    finally:
        ctx.error, ctx.usage_estimated = saved
    entry.prompt_tokens = ctx.prompt_tokens or estimate_prompt_tokens(ctx.body)
    entry.metadata["partial"] = True
    if team_logging.logging_disabled(ctx.principal.team):
        team_logging.scrub(entry)
    return inflight.payload(entry, ctx.route.price if ctx.route else None, ctx.admission)


def _entry(ctx: RequestContext, has_usage: bool) -> SpendRecord:
    route, principal, requester_ip = ctx.route, ctx.principal, _requester_ip(ctx)
    return SpendRecord(
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
        request_tags=ctx.tags, metadata=_metadata(ctx, requester_ip), requester_ip_address=requester_ip,
    )


def metrics_on() -> bool:
    return "prometheus" in get_runtime().config.litellm_settings.callbacks


def key_label(principal) -> str | None:
    """The ``hashed_api_key`` label: the key's digest, or LiteLLM's literal for the master key."""
    is_master = principal.key is None and principal.token == get_runtime().master_key_digest
    return metrics.MASTER_KEY_LABEL if is_master else principal.token or None


_NAMES = {"key": lambda lvl, ctx: (ctx.principal.key_alias, lvl.ident),
          "team": lambda lvl, ctx: (lvl.ident, ctx.principal.team.team_alias if ctx.principal.team else None),
          "user": lambda lvl, ctx: (lvl.ident,), "customer": lambda lvl, ctx: (lvl.ident,)}


def _budgets(ctx: RequestContext) -> tuple[metrics.BudgetSample, ...]:
    """Each budget the call was admitted under, after it: what the counters said was left before the call
    (others' calls in flight count as spent) minus this call's cost; the cached row's spend when the
    counters were not read (no known price). No query, no counter round-trip of its own."""
    admission = ctx.admission
    if admission is None or not admission.budgeted:
        return ()
    spent = ctx.spend if ctx.spend_known and (ctx.prompt_tokens or ctx.completion_tokens) else 0.0
    samples = []
    for index, level in enumerate(admission.budgeted):
        limits = level.limits
        if admission.budget_left is not None:
            remaining = admission.budget_left[index] / NANO - spent
        else:
            remaining = limits.max_budget - limits.spend
        samples.append(metrics.BudgetSample(kind=level.kind, labels=_NAMES[level.kind](level, ctx),
                                            max_budget=limits.max_budget, remaining=remaining,
                                            reset_at=limits.budget_reset_at))
    return tuple(samples)


def _key_model_left(ctx: RequestContext) -> tuple[int | None, int | None] | None:
    left = ctx.admission.key_model_left if ctx.admission is not None else None
    if left is None:
        return None
    requests, tokens = left
    return requests, None if tokens is None else max(0, tokens - ctx.prompt_tokens - ctx.completion_tokens)


def _metrics_sample(ctx: RequestContext, entry: SpendRecord) -> metrics.CallSample:
    principal, route, error = ctx.principal, ctx.route, ctx.error
    team = principal.team
    now = time.perf_counter()
    upstream = None
    if ctx.upstream_started is not None:   # a failed call never set upstream_seconds: time it until now
        upstream = ctx.upstream_seconds or (now - ctx.upstream_started)
    return metrics.CallSample(
        hashed_api_key=key_label(principal),
        api_key_alias=principal.key_alias, team=entry.team_id, team_alias=team.team_alias if team else None,
        user=principal.user_id, end_user=ctx.end_user, requested_model=ctx.model_group or None,
        model=route.upstream_model if route else None, model_id=route.id if route else None,
        api_provider=route.provider_name if route else None, api_base=route.provider.api_base if route else None,
        route=ctx.request.path, client_ip=ctx.requester_ip, user_agent=ctx.request.headers.get("user-agent"),
        status_code=error.status if error is not None else 200,
        exception_class=type(error).__name__ if error is not None else None,
        prompt_tokens=ctx.prompt_tokens, completion_tokens=ctx.completion_tokens, cached_tokens=ctx.cached_tokens,
        spend=entry.spend or 0.0, total_seconds=now - ctx.started, upstream_seconds=upstream,
        first_token_seconds=ctx.first_token_seconds,
        queue_seconds=None if ctx.authenticated_at is None else ctx.authenticated_at - ctx.started,
        budgets=_budgets(ctx), key_model_left=_key_model_left(ctx))


# --- Logging callbacks (spend/team_logging): built only when the request has somewhere to go --------

MODEL_PARAMETERS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "n", "stop",
                    "presence_penalty", "frequency_penalty", "seed", "stream", "user")
INPUT_FIELDS = {"chat": "messages", "completion": "prompt", "embedding": "input"}


def _log_targets(ctx: RequestContext, *, failed: bool) -> tuple:
    return team_logging.targets_for(ctx.principal.team, get_runtime().config.litellm_settings, failed=failed)


def content_logged(ctx: RequestContext) -> bool:
    """Whether a callback may receive this request: then a streamed answer's text is kept for it."""
    return ctx.principal is not None and bool(_log_targets(ctx, failed=False) or _log_targets(ctx, failed=True))


def _output(ctx: RequestContext):
    if ctx.stream_text is not None:
        return {"role": "assistant", "content": "".join(ctx.stream_text)}
    body = ctx.response
    if not isinstance(body, dict):
        return None
    if ctx.call_type == "embedding":
        return {"embeddings": len(body.get("data") or ())}   # vectors are not worth logging
    choices = body.get("choices")
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    return first.get("message") if ctx.call_type == "chat" else first.get("text")


def _log_event(ctx: RequestContext, entry: SpendRecord) -> team_logging.LogEvent:
    body = ctx.body
    metadata = body.get("metadata")
    return team_logging.LogEvent(
        record=entry, input=body.get(INPUT_FIELDS.get(ctx.call_type, "messages")), output=_output(ctx),
        request_metadata=metadata if isinstance(metadata, dict) else {},
        model_parameters={name: body[name] for name in MODEL_PARAMETERS if name in body},
        error_message=ctx.error.message if ctx.error is not None else None)
