from __future__ import annotations

import os

from gateway_project.secrets.base import SecretNotFound


class EnvironmentSecrets:
    """Secrets from the process environment (after config.yaml's ``environment_variables``): the default."""

    name = "environment"

    def __init__(self, settings: object = None) -> None:
        pass  # nothing to configure; the signature is every backend's

    def get(self, name: str) -> str:
        try:
            return os.environ[name]
        except KeyError:
            raise SecretNotFound(f"environment variable {name} is not set") from None
