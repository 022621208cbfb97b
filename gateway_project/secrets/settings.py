"""``general_settings.key_management_settings``: one flat model, as in LiteLLM, for every backend.

Each field left unset falls back to the provider's usual environment variable, read by the backend
that uses it (docs/secret-managers.md lists them). LiteLLM keys the gateway does not use
(``store_virtual_keys``, ``prefix_for_stored_virtual_keys``, …) are kept and reported at load.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gateway_project.secrets.registry import BACKENDS


def _known_backend(value: str) -> str:
    if value not in BACKENDS:
        raise ValueError(f"{value!r} is not a supported secret manager; use one of: {', '.join(BACKENDS)}")
    return value


KeyManagementSystem = Annotated[str, AfterValidator(_known_backend)]


class KeyManagementSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    # Which names the manager is asked for (default: every os.environ/ reference); the others, and
    # every name in write_only mode, come from the environment.
    hosted_keys: tuple[str, ...] | None = None
    access_mode: Literal["read_only", "write_only", "read_and_write"] = "read_only"
    timeout: float = Field(default=10.0, gt=0, le=300)   # seconds per call to the manager
    ca_bundle: str | None = None                         # PEM file of CAs to trust for the manager's TLS

    # aws_secret_manager, aws_kms
    aws_region_name: str | None = None       # else AWS_REGION_NAME, then boto3's AWS_REGION / AWS_DEFAULT_REGION
    aws_endpoint_url: str | None = None      # else boto3's AWS_ENDPOINT_URL(_SECRETS_MANAGER|_KMS)
    primary_secret_name: str | None = None   # one AWS secret holding a JSON object of NAME: value

    # google_secret_manager
    # else GOOGLE_SECRET_MANAGER_PROJECT_ID, GOOGLE_CLOUD_PROJECT, then the credentials' project
    google_project_id: str | None = None
    google_secret_manager_url: str = "https://secretmanager.googleapis.com"

    # azure_key_vault
    azure_key_vault_uri: str | None = None   # else AZURE_KEY_VAULT_URI

    # hashicorp_vault (and OpenBao)
    vault_addr: str | None = None            # else HCP_VAULT_ADDR, VAULT_ADDR
    vault_token: str | None = None           # else HCP_VAULT_TOKEN, VAULT_TOKEN
    vault_approle_role_id: str | None = None      # else HCP_VAULT_APPROLE_ROLE_ID
    vault_approle_secret_id: str | None = None    # else HCP_VAULT_APPROLE_SECRET_ID
    vault_approle_mount_path: str | None = None   # else HCP_VAULT_APPROLE_MOUNT_PATH, then "approle"
    vault_namespace: str | None = None       # else HCP_VAULT_NAMESPACE, VAULT_NAMESPACE
    vault_mount_name: str | None = None      # else HCP_VAULT_MOUNT_NAME, then "secret" (a KV v2 engine)
    vault_path_prefix: str | None = None     # else HCP_VAULT_PATH_PREFIX
    vault_data_key: str = "key"              # the field of the KV entry that holds the value

    def hosts(self, name: str) -> bool:
        """Whether ``name`` is read from the manager rather than from the environment."""
        if self.access_mode == "write_only":
            return False
        return self.hosted_keys is None or name in self.hosted_keys
