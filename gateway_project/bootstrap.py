"""What must happen before Django reads its settings. ``manage.py`` and the ASGI module call
``prepare_environment()`` first thing.

Today that is AWS KMS decryption (the seed's "AWS Key Manager v2"): settings take DATABASE_URL,
REDIS_URL and the master key from the environment, so the values decrypted here must be in place
before settings are imported. Only the environment is read here, never config.yaml.
"""
from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

from gateway_project.env import env_bool


def prepare_environment() -> None:
    """With USE_AWS_KMS=true, export every ``LITELLM_SECRET_AWS_KMS_<NAME>`` decrypted as ``<NAME>``
    (docs/secret-managers.md). Stops the process with a message naming the variable when one fails."""
    try:
        use_kms = env_bool("USE_AWS_KMS", False)
    except ImproperlyConfigured as exc:
        raise SystemExit(f"Gateway start-up stopped: {exc}") from None
    if not use_kms:
        return
    from gateway_project.secrets import SecretError
    from gateway_project.secrets.aws_kms import decrypt_environment

    try:
        decrypt_environment(os.environ)
    except SecretError as exc:
        raise SystemExit(f"Gateway start-up stopped (USE_AWS_KMS): {exc}") from None
