"""``GET /metrics/``: the Prometheus text format, with ``litellm_settings.callbacks: ["prometheus"]``.
``/metrics`` redirects there (307), as LiteLLM's mounted app does."""
from __future__ import annotations

import asyncio

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from ninja import Router

from gateway_project.errors import NotFoundError
from proxy.pipeline import auth
from proxy.pipeline.context import RequestContext
from proxy.runtime import get_runtime
from spend import metrics
from spend import recorder as spend_recorder

router = Router(tags=["metrics"])


class TemporaryRedirect(HttpResponseRedirect):
    status_code = 307


@router.get("/metrics", summary="Redirects to /metrics/", include_in_schema=False)
async def metrics_redirect(request: HttpRequest) -> HttpResponse:
    query = request.META.get("QUERY_STRING")
    return TemporaryRedirect("/metrics/" + (f"?{query}" if query else ""))


@router.get("/metrics/", summary="Prometheus metrics")
async def metrics_page(request: HttpRequest) -> HttpResponse:
    settings = get_runtime().config.litellm_settings
    if "prometheus" not in settings.callbacks:
        raise NotFoundError('Prometheus metrics are off; add "prometheus" to litellm_settings.callbacks.')
    if settings.require_auth_for_metrics_endpoint:
        await auth.authenticate(RequestContext(request=request, call_type="metrics"))
    await metrics.refresh_totals()
    metrics.SPEND_ROWS_BUFFERED.set(spend_recorder.buffered())
    if (pending := await spend_recorder.backlog()) is not None:
        metrics.SPEND_EVENTS_PENDING.set(pending)
    body, content_type = await asyncio.to_thread(metrics.exposition)   # reads the workers' files
    return HttpResponse(body, content_type=content_type)
