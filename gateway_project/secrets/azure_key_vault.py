"""Azure Key Vault (azure-keyvault-secrets): ``os.environ/NAME`` is the vault's secret NAME, with
underscores written as dashes (Key Vault names allow only letters, digits and dashes, so
``OPENAI_API_KEY`` is read as ``OPENAI-API-KEY``; names are case-insensitive there).

Credentials: DefaultAzureCredential, as LiteLLM: AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET,
workload identity, managed identity, then the Azure CLI.
"""
from __future__ import annotations

import os
from functools import cached_property
from typing import Any

from gateway_project.secrets.base import first_line, not_found, require, setting_error, unavailable
from gateway_project.secrets.settings import KeyManagementSettings

NAME = "azure_key_vault"


class AzureKeyVault:
    name = NAME

    def __init__(self, settings: KeyManagementSettings) -> None:
        self.settings = settings
        self.vault_url = settings.azure_key_vault_uri or os.environ.get("AZURE_KEY_VAULT_URI")
        if not self.vault_url:
            raise setting_error("azure_key_vault_uri", "the vault's URL is required for azure_key_vault "
                                                       "(or set AZURE_KEY_VAULT_URI)")

    @cached_property
    def _client(self) -> Any:
        identity = require("azure.identity", "azure-identity", NAME)
        secrets = require("azure.keyvault.secrets", "azure-keyvault-secrets", NAME)
        transport: dict[str, Any] = {"connection_timeout": self.settings.timeout, "read_timeout": self.settings.timeout,
                                     "retry_total": 2}
        if self.settings.ca_bundle:
            transport["connection_verify"] = self.settings.ca_bundle
        credential = identity.DefaultAzureCredential(**transport)
        return secrets.SecretClient(vault_url=self.vault_url, credential=credential, **transport)

    def get(self, name: str) -> str:
        from azure.core.exceptions import (
            AzureError, ClientAuthenticationError, HttpResponseError, ResourceNotFoundError,
        )

        vault_name = name.replace("_", "-")
        detail = f"as {vault_name}" if vault_name != name else ""
        try:
            value = self._client.get_secret(vault_name).value
        except ResourceNotFoundError:
            raise not_found(name, NAME, detail) from None
        except ClientAuthenticationError as exc:
            raise unavailable(name, NAME, f"authentication failed: {_auth_failure(exc)}") from None
        except HttpResponseError as exc:
            code = getattr(exc.error, "code", None) or exc.reason
            raise unavailable(name, NAME, f"HTTP {exc.status_code} {code}") from None
        except AzureError as exc:  # unreachable, TLS, timed out
            raise unavailable(name, NAME, f"cannot reach {self.vault_url}: {first_line(exc)}") from None
        if value is None:
            raise not_found(name, NAME, detail or "it has no value")
        return value


def _auth_failure(exc: BaseException) -> str:
    """DefaultAzureCredential's answer, short: why the credentials that were configured failed (its
    message lists every credential it tried, most of them merely "unavailable")."""
    tried = [line.strip() for line in str(exc).splitlines() if line.startswith("\t")]
    failed = [line for line in tried if "unavailable" not in line.lower()]
    return "; ".join(failed) if failed else first_line(exc)
