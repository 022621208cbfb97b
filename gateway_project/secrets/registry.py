"""Secret backends by ``general_settings.key_management_system`` name: dotted paths, imported only when
configured, so boto3, hvac, google-auth and the Azure SDK load only for the backend in use.

A backend is a class built from ``KeyManagementSettings`` (cheap: no SDK, no network) whose
``get(name)`` returns the secret or raises SecretNotFound / SecretManagerUnavailable. Add one by
copying a sibling module and listing it here.
"""
from __future__ import annotations

import importlib

BACKENDS: dict[str, str] = {
    "aws_secret_manager": "gateway_project.secrets.aws_secrets_manager.AwsSecretsManager",  # LiteLLM's name
    "aws_secrets_manager": "gateway_project.secrets.aws_secrets_manager.AwsSecretsManager",
    "aws_kms": "gateway_project.secrets.aws_kms.AwsKmsSecrets",
    "google_secret_manager": "gateway_project.secrets.google_secret_manager.GoogleSecretManager",
    "azure_key_vault": "gateway_project.secrets.azure_key_vault.AzureKeyVault",
    "hashicorp_vault": "gateway_project.secrets.hashicorp_vault.HashicorpVault",
    "local": "gateway_project.secrets.environment.EnvironmentSecrets",  # LiteLLM's name for the environment
    "environment": "gateway_project.secrets.environment.EnvironmentSecrets",
}


def backend_class(system: str) -> type:
    module, _, name = BACKENDS[system].rpartition(".")
    return getattr(importlib.import_module(module), name)
