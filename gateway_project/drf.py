"""DRF glue: every management-API error leaves as the contract's error JSON."""
from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from gateway_project.errors import DatabaseUnavailableError, GatewayError, error_body

logger = logging.getLogger("gateway.api")

_DRF_TYPES = {
    400: "bad_request_error",
    401: "auth_error",
    403: "auth_error",
    404: "not_found_error",
    405: "bad_request_error",
    415: "bad_request_error",
    429: "rate_limit_error",
}


def _flatten(detail, prefix: str = "") -> list[str]:
    """Turn DRF's nested validation detail into ``field: message`` sentences."""
    if isinstance(detail, dict):
        out: list[str] = []
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else str(key)
            out.extend(_flatten(value, f"{prefix}.{name}" if prefix and name else (name or prefix)))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            text = " ".join(str(item) for item in detail)
            return [f"{prefix}: {text}" if prefix else text]
        out = []
        for index, item in enumerate(detail):
            out.extend(_flatten(item, f"{prefix}.{index}" if prefix else str(index)))
        return out
    return [f"{prefix}: {detail}" if prefix else str(detail)]


def exception_handler(exc, context):
    if isinstance(exc, GatewayError):
        set_rollback()
        return Response(exc.body(), status=exc.status, headers=exc.headers or None)
    if isinstance(exc, drf_exceptions.ValidationError):
        set_rollback()
        message = "; ".join(_flatten(exc.detail)) or "Invalid request"
        param = next(iter(exc.detail), None) if isinstance(exc.detail, dict) else None
        if param == "non_field_errors":  # e.g. a JSON body that is not an object
            param = "request_body"
        return Response(error_body(message, status=400, type="bad_request_error", param=param), status=400)
    if isinstance(exc, drf_exceptions.ParseError):
        set_rollback()
        body = error_body(f"Invalid JSON payload: {exc.detail}", status=400, type="bad_request_error",
                          param="request_body")
        return Response(body, status=400)
    if isinstance(exc, drf_exceptions.APIException):
        set_rollback()
        status = exc.status_code
        param = "None" if status in (401, 403) else None
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        message = "; ".join(_flatten(exc.detail)) if not isinstance(exc.detail, str) else str(exc.detail)
        return Response(error_body(message, status=status, type=_DRF_TYPES.get(status, "api_error"), param=param),
                        status=status, headers=headers or None)
    if isinstance(exc, Http404):
        return Response(error_body("Not found", status=404, type="not_found_error"), status=404)
    if isinstance(exc, PermissionDenied):
        return Response(error_body("Permission denied", status=403, type="auth_error", param="None"), status=403)
    if isinstance(exc, (OperationalError, InterfaceError)):  # the database is down or failing over
        logger.warning("database unreachable in %s: %s", context.get("view").__class__.__name__, exc)
        set_rollback()
        unavailable = DatabaseUnavailableError()
        return Response(unavailable.body(), status=unavailable.status, headers=unavailable.headers)
    # Anything else is a bug: log it with its traceback, answer without one.
    logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
    set_rollback()
    return Response(error_body("Internal server error", status=500, type="internal_server_error"), status=500)
