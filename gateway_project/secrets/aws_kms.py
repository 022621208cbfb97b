"""AWS KMS: environment variables that hold base64 KMS ciphertext, decrypted.

Two uses, both LiteLLM's:
- ``key_management_system: aws_kms`` — ``os.environ/NAME`` is the variable NAME, decrypted.
- ``USE_AWS_KMS=true`` (``gateway_project.bootstrap``, before settings are read) — every variable
  ``LITELLM_SECRET_AWS_KMS_<NAME>`` (prefix in any case) is decrypted into ``<NAME>``, and every value
  written ``aws_kms/<ciphertext>`` is decrypted in place.
"""
from __future__ import annotations

import base64
import binascii
import os
from collections.abc import MutableMapping
from functools import cached_property
from typing import Any

from gateway_project.secrets import _aws
from gateway_project.secrets.base import SecretManagerUnavailable, not_found
from gateway_project.secrets.settings import KeyManagementSettings

NAME = "aws_kms"
ENV_PREFIX = "LITELLM_SECRET_AWS_KMS_"
VALUE_PREFIX = "aws_kms/"


class AwsKmsSecrets:
    name = NAME

    def __init__(self, settings: KeyManagementSettings | None = None) -> None:
        self.settings = settings or KeyManagementSettings()

    @cached_property
    def _client(self) -> Any:
        s = self.settings
        return _aws.client("kms", NAME, region=s.aws_region_name, endpoint_url=s.aws_endpoint_url,
                           timeout=s.timeout, ca_bundle=s.ca_bundle)

    def get(self, name: str) -> str:
        ciphertext = os.environ.get(name)
        if ciphertext is None:
            raise not_found(name, NAME, f"no environment variable {name} holds its ciphertext")
        return self.decrypt(ciphertext, name)

    def decrypt(self, ciphertext: str, name: str) -> str:
        """The plaintext of base64 ``ciphertext`` (``aws_kms/`` prefix optional), stripped like LiteLLM's."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            blob = base64.b64decode(ciphertext.removeprefix(VALUE_PREFIX).strip(), validate=True)
        except (binascii.Error, ValueError):
            raise _cannot_decrypt(name, "the value is not base64 KMS ciphertext") from None
        try:
            plaintext = self._client.decrypt(CiphertextBlob=blob)["Plaintext"]
        except (ClientError, BotoCoreError) as exc:
            raise _cannot_decrypt(name, _aws.describe(exc)) from None
        try:
            return plaintext.decode().strip()
        except UnicodeDecodeError:
            raise _cannot_decrypt(name, "the plaintext is not UTF-8 text") from None


def _cannot_decrypt(name: str, reason: str) -> SecretManagerUnavailable:
    return SecretManagerUnavailable(f"cannot decrypt {name} with {NAME}: {reason}")


def decrypt_environment(environ: MutableMapping[str, str]) -> list[str]:
    """Decrypt ``LITELLM_SECRET_AWS_KMS_<NAME>`` into ``<NAME>`` (the encrypted variable is removed, so a
    second run, such as in a uvicorn worker, has nothing left to do) and ``aws_kms/…`` values in place.
    Returns the names exported; raises SecretError naming the variable that failed."""
    targets = {source: _target(source) for source, value in environ.items()
               if source.upper().startswith(ENV_PREFIX) or value.startswith(VALUE_PREFIX)}
    if not targets:
        return []
    kms = AwsKmsSecrets()
    for source, target in targets.items():
        plaintext = kms.decrypt(environ[source], source)
        environ[target] = plaintext
        if target != source:
            del environ[source]
    return list(targets.values())


def _target(source: str) -> str:
    if not source.upper().startswith(ENV_PREFIX):
        return source
    target = source[len(ENV_PREFIX):]
    if not target:
        raise SecretManagerUnavailable(f"{source} names no variable: write {ENV_PREFIX}<NAME>")
    return target
