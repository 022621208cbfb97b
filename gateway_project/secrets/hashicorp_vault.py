"""HashiCorp Vault or OpenBao, KV version 2 engine (hvac): ``os.environ/NAME`` is the field ``key``
(``vault_data_key``) of the entry ``<mount>/<path prefix>/NAME``, as LiteLLM stores it.

Authentication: a token (VAULT_TOKEN), or an AppRole (role id + secret id) logged in once.
"""
from __future__ import annotations

import os
from functools import cached_property
from typing import Any

from gateway_project.secrets.base import (
    SecretManagerUnavailable, first_line, not_found, require, setting_error, unavailable,
)
from gateway_project.secrets.settings import KeyManagementSettings

NAME = "hashicorp_vault"


def _first(setting: str | None, *variables: str, default: str | None = None) -> str | None:
    """A setting, else the first of its environment variables that is set (LiteLLM's HCP_* first)."""
    return setting or next((os.environ[v] for v in variables if os.environ.get(v)), default)


class HashicorpVault:
    name = NAME

    def __init__(self, settings: KeyManagementSettings) -> None:
        s = self.settings = settings
        self.addr = _first(s.vault_addr, "HCP_VAULT_ADDR", "VAULT_ADDR", default="http://127.0.0.1:8200")
        self.token = _first(s.vault_token, "HCP_VAULT_TOKEN", "VAULT_TOKEN")
        self.role_id = _first(s.vault_approle_role_id, "HCP_VAULT_APPROLE_ROLE_ID")
        self.secret_id = _first(s.vault_approle_secret_id, "HCP_VAULT_APPROLE_SECRET_ID")
        self.approle_mount = _first(s.vault_approle_mount_path, "HCP_VAULT_APPROLE_MOUNT_PATH", default="approle")
        self.namespace = _first(s.vault_namespace, "HCP_VAULT_NAMESPACE", "VAULT_NAMESPACE")
        self.mount = _first(s.vault_mount_name, "HCP_VAULT_MOUNT_NAME", default="secret")
        self.prefix = (_first(s.vault_path_prefix, "HCP_VAULT_PATH_PREFIX") or "").strip("/")
        self.verify: str | bool = s.ca_bundle or os.environ.get("VAULT_CACERT") or True
        if not self.token and not (self.role_id and self.secret_id):
            raise setting_error("vault_token", "hashicorp_vault needs a token (or VAULT_TOKEN), or an AppRole's "
                                               "vault_approle_role_id and vault_approle_secret_id")

    @cached_property
    def _client(self) -> Any:
        hvac = require("hvac", "hvac", NAME)
        from requests import RequestException

        client = hvac.Client(url=self.addr, token=self.token, namespace=self.namespace, verify=self.verify,
                             timeout=self.settings.timeout)
        if self.role_id and self.secret_id:
            try:  # the login sets the client's token
                client.auth.approle.login(role_id=self.role_id, secret_id=self.secret_id,
                                          mount_point=self.approle_mount)
            except (hvac.exceptions.VaultError, RequestException) as exc:
                raise SecretManagerUnavailable(f"{NAME}: AppRole login at {self.addr} failed: "
                                               f"{_describe(exc)}") from None
        return client

    def get(self, name: str) -> str:
        from hvac.exceptions import Forbidden, InvalidPath, VaultError
        from requests import RequestException

        path = f"{self.prefix}/{name}" if self.prefix else name
        where = f"{self.mount}/{path}"
        try:
            data = self._client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=self.mount, raise_on_deleted_version=True)["data"]["data"]
        except InvalidPath:
            raise not_found(name, NAME, f"no entry {where}") from None
        except Forbidden:
            raise unavailable(name, NAME, f"permission denied on {where} (check the token and its policy)") from None
        except (VaultError, RequestException) as exc:
            raise unavailable(name, NAME, f"{self.addr}: {_describe(exc)}") from None
        value = (data or {}).get(self.settings.vault_data_key)
        if value is None:
            raise not_found(name, NAME, f"entry {where} has no field {self.settings.vault_data_key!r}")
        if not isinstance(value, str):
            raise unavailable(name, NAME, f"field {self.settings.vault_data_key!r} of {where} is not text")
        return value


def _describe(exc: BaseException) -> str:
    from requests import RequestException

    if isinstance(exc, RequestException):  # requests' own text is a paragraph of pool internals
        return f"cannot reach the server ({type(exc).__name__})"
    return f"{type(exc).__name__}: {first_line(exc)}"
