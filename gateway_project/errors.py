"""The gateway's one error hierarchy and its wire format.

Domain code raises a ``GatewayError``; the ninja handler (``proxy/api.py``) and the DRF handler
(``gateway_project/drf.py``) both render it with :func:`error_body`, so every non-2xx answer is::

    {"error": {"message": "...", "type": "...", "param": ..., "code": "401"}}

``code`` is the HTTP status as a string (the OpenAI SDK reads it that way); ``param`` is the string
``"None"`` for authentication errors and ``null`` elsewhere, as the LiteLLM proxy answers.
"""
from __future__ import annotations

from typing import Any

import orjson

_UNSET = object()


class GatewayError(Exception):
    status: int = 500
    type: str | None = "internal_server_error"
    param: str | None = None

    # A few errors are answered with ``code`` as a number, exactly as the seed's examples show them
    # (request too large, enforced params); every other one carries the status as a string.
    numeric_code: bool = False

    def __init__(self, message: str, *, status: int | None = None, type: str | None | object = _UNSET,
                 param: str | None | object = _UNSET, headers: dict[str, str] | None = None,
                 numeric_code: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.numeric_code = numeric_code
        if status is not None:
            self.status = status
        if type is not _UNSET:
            self.type = type  # type: ignore[assignment]
        if param is not _UNSET:
            self.param = param  # type: ignore[assignment]
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        body = error_body(self.message, status=self.status, type=self.type, param=self.param)
        if self.numeric_code:
            body["error"]["code"] = self.status
        return body


class AuthenticationError(GatewayError):
    status = 401
    type = "auth_error"
    param = "None"


class ExpiredKeyError(AuthenticationError):
    type = "expired_key"


class InvalidKeyError(AuthenticationError):
    type = "token_not_found_in_db"
    param = "key"


class PermissionDeniedError(GatewayError):
    status = 403
    type = "auth_error"
    param = "None"


class ModelAccessDeniedError(GatewayError):
    status = 403
    type = "key_model_access_denied"
    param = "model"


class NotFoundError(GatewayError):
    status = 404
    type = "not_found_error"


class BadRequestError(GatewayError):
    status = 400
    type = "bad_request_error"


class InvalidRequestError(GatewayError):
    """A request the OpenAI API itself would refuse (unknown model, bad body)."""

    status = 400
    type = "invalid_request_error"


class BudgetExceededError(GatewayError):
    status = 400
    type = "budget_exceeded"


class RateLimitError(GatewayError):
    status = 429
    type = "rate_limit_error"


class UpstreamError(GatewayError):
    """The provider failed or refused; ``status`` mirrors the provider's answer."""

    status = 502
    type = "api_error"


class ServiceUnavailableError(GatewayError):
    status = 503
    type = "service_unavailable"


class DatabaseUnavailableError(ServiceUnavailableError):
    """The database cannot be reached (down, restarting, failing over): the caller retries shortly."""

    def __init__(self) -> None:
        super().__init__("The database is unreachable right now, so this request cannot be checked or served; "
                         "retry shortly.", headers={"retry-after": "1"})


def error_body(message: str, *, status: int, type: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": str(status)}}


def error_json(exc: GatewayError) -> bytes:
    return orjson.dumps(exc.body())


def forget_frames(exc: BaseException) -> None:
    """Once an error is answered (and logged), drop its tracebacks and those of the errors it chains: their
    frames hold the call's context, which holds the error (``ctx.error``), a reference cycle that only the
    cyclic collector would free, adding to the full collections that pause the event loop."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__
