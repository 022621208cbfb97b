"""Liveness (the process answers), readiness (the database answers and, with Redis, the spend-event
stream), and /health (each deployment answers a tiny real request)."""
from __future__ import annotations

import asyncio
import logging

import orjson
from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router

from gateway_project.errors import GatewayError, PermissionDeniedError
from proxy.pipeline import auth
from proxy.pipeline.context import RequestContext
from proxy.router import Route
from proxy.runtime import get_runtime
from spend import recorder as spend_recorder
from teams.models import UserRole

logger = logging.getLogger("gateway.health")

router = Router(tags=["health"])

PROBE_TIMEOUT = 30.0


async def liveliness(request: HttpRequest) -> JsonResponse:
    return JsonResponse("I'm alive!", safe=False)


@sync_to_async
def _database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception as exc:  # any driver error means "not ready"; the reason goes to the log
        logger.warning("readiness: database check failed: %s", exc)
        connection.close()
        return False


@router.get("/health/readiness", summary="Readiness")
async def readiness(request: HttpRequest) -> JsonResponse:
    database = await _database_answers()
    spend_ready, spend_stream = await spend_recorder.readiness()
    body = {"status": "healthy" if database and spend_ready else "unhealthy",
            "db": "connected" if database else "Not connected", "spend_stream": spend_stream}
    return JsonResponse(body, status=200 if database and spend_ready else 503)


async def _probe(route: Route) -> dict | None:
    """None when the deployment answered; else what went wrong."""
    provider = route.provider
    try:
        if route.deployment.model_info.mode == "embedding":
            call = provider.embedding({"input": ["ping"]})
        else:
            call = provider.chat({"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1})
        await asyncio.wait_for(call, PROBE_TIMEOUT)
        return None
    except asyncio.TimeoutError:
        return {"error": f"no answer within {PROBE_TIMEOUT:g}s"}
    except GatewayError as exc:
        return {"error": exc.message, "status": exc.status}


@router.get("/health", summary="Probe every deployment (proxy admins)")
async def health(request: HttpRequest) -> HttpResponse:
    ctx = RequestContext(request=request, call_type="health")
    await auth.authenticate(ctx)
    if ctx.principal.role != UserRole.PROXY_ADMIN:
        raise PermissionDeniedError("Only proxy admins may probe the deployments (/health).")
    routes = [route for name in get_runtime().router.model_names for route in get_runtime().router.routes(name)]
    results = await asyncio.gather(*(_probe(route) for route in routes))
    healthy, unhealthy = [], []
    for route, problem in zip(routes, results):
        entry = {"model": route.model_group, "model_id": route.id, "api_base": route.provider.api_base,
                 "provider": route.provider_name}
        (healthy if problem is None else unhealthy).append(entry if problem is None else {**entry, **problem})
    body = {"healthy_endpoints": healthy, "unhealthy_endpoints": unhealthy,
            "healthy_count": len(healthy), "unhealthy_count": len(unhealthy)}
    return HttpResponse(orjson.dumps(body), content_type="application/json")


for _path, _operation in (("/health/liveliness", "liveliness"), ("/health/liveness", "liveness")):
    router.add_api_operation(_path, ["GET"], liveliness, operation_id=_operation, summary="Liveness")
