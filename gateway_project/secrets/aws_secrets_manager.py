"""AWS Secrets Manager: ``os.environ/NAME`` is the secret whose id (name or ARN) is NAME, or, with
``primary_secret_name``, the key NAME of one secret holding a JSON object."""
from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from gateway_project.secrets import _aws
from gateway_project.secrets.base import not_found, unavailable
from gateway_project.secrets.settings import KeyManagementSettings

NAME = "aws_secret_manager"
MISSING = ("ResourceNotFoundException",)


class AwsSecretsManager:
    name = NAME

    def __init__(self, settings: KeyManagementSettings) -> None:
        self.settings = settings
        self._primary: dict[str, Any] | None = None

    @cached_property
    def _client(self) -> Any:
        s = self.settings
        return _aws.client("secretsmanager", NAME, region=s.aws_region_name, endpoint_url=s.aws_endpoint_url,
                           timeout=s.timeout, ca_bundle=s.ca_bundle)

    def get(self, name: str) -> str:
        primary = self.settings.primary_secret_name
        if primary is None:
            return self._read(name, name)
        if self._primary is None:
            self._primary = self._parse_primary(primary, self._read(primary, name))
        if name not in self._primary:
            raise not_found(name, NAME, f"no key {name} in the primary secret {primary}")
        return str(self._primary[name])

    def _read(self, secret_id: str, name: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.get_secret_value(SecretId=secret_id)
        except ClientError as exc:
            if _aws.error_code(exc) in MISSING:
                raise not_found(name, NAME, "" if secret_id == name else f"primary secret {secret_id}") from None
            raise unavailable(name, NAME, _aws.describe(exc)) from None
        except BotoCoreError as exc:  # unreachable, timed out, no credentials
            raise unavailable(name, NAME, _aws.describe(exc)) from None
        if "SecretString" in response:
            return response["SecretString"]
        try:
            return response["SecretBinary"].decode()
        except (KeyError, UnicodeDecodeError):
            raise unavailable(name, NAME, f"secret {secret_id} holds no text") from None

    @staticmethod
    def _parse_primary(primary: str, text: str) -> dict[str, Any]:
        try:
            values = json.loads(text)
        except ValueError:
            values = None
        if not isinstance(values, dict):
            raise unavailable(primary, NAME, "the primary secret must hold a JSON object of NAME: value")
        return values
