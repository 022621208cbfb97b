"""boto3 clients for the two AWS backends (Secrets Manager, KMS): region, endpoint, timeouts, errors.

Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID…, AWS_PROFILE, instance roles). The
region is AWS_REGION_NAME (LiteLLM's variable) when set, else boto3's AWS_REGION / AWS_DEFAULT_REGION;
the endpoint is boto3's AWS_ENDPOINT_URL(_<SERVICE>) unless the settings name one.
"""
from __future__ import annotations

import os
from typing import Any

from gateway_project.secrets.base import SecretManagerUnavailable, first_line, require

CONNECT_RETRIES = 2  # boto3's "standard" mode retries throttling and 5xx; a start-up waits at most this


def client(service: str, backend: str, *, region: str | None = None, endpoint_url: str | None = None,
           timeout: float = 10.0, ca_bundle: str | None = None) -> Any:
    boto3 = require("boto3", "boto3", backend)
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    config = Config(connect_timeout=timeout, read_timeout=timeout,
                    retries={"mode": "standard", "total_max_attempts": 1 + CONNECT_RETRIES})
    try:
        return boto3.session.Session().client(
            service, region_name=region or os.environ.get("AWS_REGION_NAME") or None,
            endpoint_url=endpoint_url or None, verify=ca_bundle, config=config)
    except BotoCoreError as exc:  # NoRegionError, a bad profile…
        raise SecretManagerUnavailable(f"{backend}: {first_line(exc)}") from None


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError (``ResourceNotFoundException``…), else None."""
    response = getattr(exc, "response", None)
    return (response or {}).get("Error", {}).get("Code") if isinstance(response, dict) else None


def describe(exc: BaseException) -> str:
    """A botocore error, short: ``AccessDeniedException: <AWS's message>`` or the connection problem."""
    code = error_code(exc)
    if code:
        message = exc.response.get("Error", {}).get("Message") or ""  # type: ignore[attr-defined]
        return f"{code}: {first_line(Exception(message))}" if message.strip() else code
    return first_line(exc)
