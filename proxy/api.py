"""The proxy's NinjaAPI: the OpenAI-compatible endpoints, one error renderer."""
from __future__ import annotations

import logging

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from ninja.errors import HttpError, ValidationError

from gateway_project.errors import DatabaseUnavailableError, GatewayError, error_body, error_json, forget_frames
from proxy.openapi import GatewayAPI
from proxy.routes import chat, completions, health, metrics, model_hub, models, spend

logger = logging.getLogger("gateway.proxy")

api = GatewayAPI(title=settings.DOCS_TITLE, description=settings.DOCS_DESCRIPTION, version="1.0.0",
                 docs_url="/docs", urls_namespace="proxy")
api.add_router("", chat.router)
api.add_router("", completions.router)
api.add_router("", models.router)
api.add_router("", health.router)
api.add_router("", spend.router)
api.add_router("", metrics.router)
api.add_router("", model_hub.router)


def handles(*errors: type[Exception]):
    """Register the decorated function as the API's answer to ``errors``; once it answered (and logged), the
    error's frames are forgotten (``forget_frames``), whether ninja's view or the hot path called it."""
    def register(handler):
        def answer(request: HttpRequest, exc: Exception) -> HttpResponse:
            try:
                return handler(request, exc)
            finally:
                forget_frames(exc)

        for error in errors:
            api.exception_handler(error)(answer)
        return handler
    return register


def _json(body: bytes, status: int, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="application/json", headers=headers)


@handles(GatewayError)
def gateway_error(request: HttpRequest, exc: GatewayError) -> HttpResponse:
    return _json(error_json(exc), exc.status, exc.headers or None)


@handles(ValidationError)
def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    message = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors)
    return _json(orjson.dumps(error_body(message, status=400, type="invalid_request_error")), 400)


@handles(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return _json(orjson.dumps(error_body(str(exc), status=exc.status_code, type="invalid_request_error")),
                 exc.status_code)


@handles(RequestDataTooBig)
def request_data_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    # Only when Django's own handler serves these routes (the hot-path dispatch is off): it caps a body at
    # DATA_UPLOAD_MAX_MEMORY_SIZE; the hot path reads any size up to max_request_size_mb.
    return gateway_error(request, GatewayError(
        f"Request body is too large: over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes "
        "(DATA_UPLOAD_MAX_MEMORY_SIZE) while the hot-path dispatch is off", status=413, type="bad_request_error",
        param="content-length"))


@handles(OperationalError, InterfaceError)
def database_unavailable(request: HttpRequest, exc: Exception) -> HttpResponse:
    # Not a bug: the database is down or failing over (known keys are still served from the cache).
    logger.warning("database unreachable on %s %s: %s", request.method, request.path, exc)
    return gateway_error(request, DatabaseUnavailableError())


@handles(Exception)
def unexpected_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    # A bug: the traceback goes to the log, never to the client.
    logger.exception("unhandled error on %s %s", request.method, request.path)
    return _json(orjson.dumps(error_body("Internal server error", status=500, type="internal_server_error")), 500)
