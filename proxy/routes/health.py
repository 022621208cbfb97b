"""Liveness (the process answers) and readiness (it can do its job: the database answers)."""
from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpRequest, JsonResponse
from ninja import Router

logger = logging.getLogger("gateway.health")

router = Router(tags=["health"])


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
    if await _database_answers():
        return JsonResponse({"status": "healthy", "db": "connected"})
    return JsonResponse({"status": "unhealthy", "db": "Not connected"}, status=503)


for _path, _operation in (("/health/liveliness", "liveliness"), ("/health/liveness", "liveness")):
    router.add_api_operation(_path, ["GET"], liveliness, operation_id=_operation, summary="Liveness")
