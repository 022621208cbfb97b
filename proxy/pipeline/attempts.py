"""Retries across a group's deployments, then fallbacks to other groups.

A call is retried (``num_retries``) on errors a different attempt may not hit (timeouts, 429, 5xx,
unreachable), each retry preferring a deployment not yet tried; a failure counts towards that
deployment's cooldown. When the group gives up, ``fallbacks`` (or ``context_window_fallbacks`` for a
prompt too long for the model) name the groups to try next. Streams are retried only until their
first chunk: after that the client has bytes, and a switch would be visible.
"""
from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway_project.errors import UpstreamError
from proxy.pipeline.context import RequestContext
from proxy.pipeline.record import key_label, metrics_on
from proxy.router import NoHealthyDeployment, Route, Router
from proxy.runtime import get_runtime
from spend import metrics

T = TypeVar("T")

RETRYABLE = frozenset({408, 429, 500, 502, 503, 504, 529})
# A deployment answering these is misconfigured or down for everyone: count it, fall back.
DEPLOYMENT_FAULTS = RETRYABLE | {401, 403, 404}
MAX_BACKOFF = 2.0


def is_context_window_error(exc: UpstreamError) -> bool:
    text = f"{exc.type} {exc.message}".lower()
    return exc.status == 400 and ("context_length_exceeded" in text or "context length" in text
                                  or "context window" in text or "maximum context" in text)


async def call_upstream(ctx: RequestContext, call: Callable[[Route], Awaitable[T]], *, hold: bool = False) -> T:
    """Run ``call`` on a deployment of the request's group, with retries and fallbacks.

    With ``hold`` the chosen deployment stays counted as busy until the relay releases it.
    """
    router = get_runtime().router
    group, visited = ctx.model_group, [ctx.model_group]
    cause: UpstreamError | None = None   # what made the call fall back
    while True:
        try:
            result = await _with_retries(ctx, router, group, call, hold)
        except UpstreamError as exc:
            if cause is not None:
                _observe_fallback(ctx, group, cause, succeeded=False)
            fallback = _next_fallback(router, ctx.model_group, exc, visited)
            if fallback is None:
                raise
            visited.append(fallback)
            ctx.attempted_fallbacks += 1
            group, cause = fallback, exc
            continue
        if cause is not None:
            _observe_fallback(ctx, group, cause, succeeded=True)
        return result


async def _with_retries(ctx: RequestContext, router: Router, group: str, call, hold: bool):
    tried: set[str] = set()
    retries = router.reliability.num_retries if router.reliability else 0
    for attempt in range(retries + 1):
        route = _pick(router, group, tried)
        if attempt:
            ctx.attempted_retries += 1
            if route.id in tried:  # nothing else left: give the same deployment a moment
                await asyncio.sleep(min(MAX_BACKOFF, 0.1 * 2 ** attempt))
        ctx.route = route
        router.started(route)
        started = time.perf_counter()
        try:
            result = await call(route)
        except UpstreamError as exc:
            router.finished(route)
            fault = exc.status in DEPLOYMENT_FAULTS
            cooled = router.failed(route) if fault else False
            if metrics_on():
                metrics.observe_attempt_failed(_deployment(ctx, route), exc.status, fault=fault, cooled_down=cooled)
            if exc.status not in RETRYABLE or attempt == retries:
                raise
            tried.add(route.id)
            continue
        router.succeeded(route, time.perf_counter() - started)
        if metrics_on():
            metrics.observe_attempt_succeeded(_deployment(ctx, route))
        if hold:
            ctx.release = lambda: router.finished(route)
        else:
            router.finished(route)
        return result
    raise AssertionError("unreachable: the last attempt returns or raises")


def _deployment(ctx: RequestContext, route: Route) -> tuple[str, ...]:
    return metrics.deployment_labels(route.provider.api_base, route.provider_name, route.upstream_model, route.id,
                                     ctx.model_group)


def _observe_fallback(ctx: RequestContext, group: str, cause: UpstreamError, *, succeeded: bool) -> None:
    if not metrics_on():
        return
    principal = ctx.principal
    team = principal.team if principal is not None else None
    metrics.observe_fallback(
        succeeded=succeeded, requested_model=ctx.model_group, fallback_model=group,
        hashed_api_key=key_label(principal) if principal is not None else None,
        api_key_alias=principal.key_alias if principal is not None else None,
        team=team.team_id if team else None, team_alias=team.team_alias if team else None,
        exception_class=type(cause).__name__, exception_status=cause.status)


def _pick(router: Router, group: str, tried: set[str]) -> Route:
    try:
        return router.pick(group, exclude=frozenset(tried))
    except NoHealthyDeployment as exc:
        wait = max(1, math.ceil(exc.retry_after))
        raise UpstreamError(f"No deployments available for model group {group}: every deployment is cooling "
                            f"down after failures. Try again in {wait}s.", status=429, type="rate_limit_error",
                            headers={"retry-after": str(wait)}) from None


def _next_fallback(router: Router, model_group: str, exc: UpstreamError, visited: list[str]) -> str | None:
    reliability = router.reliability
    if reliability is None:
        return None
    if is_context_window_error(exc):
        candidates = reliability.context_window_fallbacks.get(model_group, ())
    elif exc.status in DEPLOYMENT_FAULTS:
        candidates = reliability.fallbacks.get(model_group) or reliability.default_fallbacks
    else:
        return None
    return next((c for c in candidates if c not in visited and router.has(c)), None)
