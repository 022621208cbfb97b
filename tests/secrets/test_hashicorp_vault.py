"""``key_management_system: hashicorp_vault`` against a real OpenBao dev server on 127.0.0.1 (Vault's
API, KV version 2), through hvac."""
from __future__ import annotations

import pytest

from gateway_project.config import ConfigError, load_config
from tests.secrets.conftest import unique, write_config

pytestmark = pytest.mark.e2e

READ_GATEWAY_ONLY = 'path "secret/data/gateway/*" { capabilities = ["read"] }'


def config_text(name: str, settings: str) -> str:
    return f"""model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o, api_key: os.environ/{name}}}
general_settings:
  key_management_system: hashicorp_vault
  key_management_settings: {{{settings}}}
"""


def load_api_key(tmp_path, name: str, settings: str) -> str:
    return load_config(write_config(tmp_path, config_text(name, settings))).model_list[0].litellm_params.api_key


@pytest.fixture(scope="module")
def gateway_policy(openbao) -> str:
    openbao.client().sys.create_or_update_policy(name="read-gateway", policy=READ_GATEWAY_ONLY)
    return "read-gateway"


@pytest.fixture(scope="module")
def approle(openbao, gateway_policy) -> tuple[str, str]:
    root = openbao.client()
    root.sys.enable_auth_method("approle")
    root.auth.approle.create_or_update_approle("gateway", token_policies=[gateway_policy])
    role_id = root.auth.approle.read_role_id("gateway")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("gateway")["data"]["secret_id"]
    return role_id, secret_id


def test_a_reference_reads_the_key_field_of_the_kv_entry_named_like_it(tmp_path, openbao):
    name = unique("OPENAI_KEY")
    openbao.put(name, key="sk-from-openbao")

    api_key = load_api_key(tmp_path, name, f'vault_addr: "{openbao.addr}", vault_token: {openbao.root_token}')

    assert api_key == "sk-from-openbao"


def test_address_and_token_come_from_vault_addr_and_vault_token(tmp_path, openbao, monkeypatch):
    name = unique("OPENAI_KEY")
    openbao.put(name, key="sk-via-environment")
    monkeypatch.setenv("VAULT_ADDR", openbao.addr)
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    for litellm_name in ("HCP_VAULT_ADDR", "HCP_VAULT_TOKEN"):
        monkeypatch.delenv(litellm_name, raising=False)

    assert load_api_key(tmp_path, name, "") == "sk-via-environment"


def test_mount_path_prefix_and_field_are_configurable(tmp_path, openbao):
    root = openbao.client()
    if "team-kv/" not in root.sys.list_mounted_secrets_engines()["data"]:
        root.sys.enable_secrets_engine("kv", path="team-kv", options={"version": "2"})
    name = unique("OPENAI_KEY")
    openbao.put(f"gateway/prod/{name}", mount="team-kv", api_key="sk-team-kv")

    api_key = load_api_key(tmp_path, name, f'vault_addr: "{openbao.addr}", vault_token: {openbao.root_token}, '
                                           "vault_mount_name: team-kv, vault_path_prefix: gateway/prod, "
                                           "vault_data_key: api_key")

    assert api_key == "sk-team-kv"


def test_an_approle_logs_in_and_reads_what_its_policy_allows(tmp_path, openbao, approle):
    name = unique("OPENAI_KEY")
    openbao.put(f"gateway/{name}", key="sk-via-approle")
    role_id, secret_id = approle

    api_key = load_api_key(tmp_path, name, f'vault_addr: "{openbao.addr}", vault_approle_role_id: {role_id}, '
                                           f"vault_approle_secret_id: {secret_id}, vault_path_prefix: gateway")

    assert api_key == "sk-via-approle"


def test_a_wrong_approle_secret_stops_loading(tmp_path, openbao, approle):
    role_id, _ = approle

    with pytest.raises(ConfigError) as error:
        load_api_key(tmp_path, "ANY_NAME", f'vault_addr: "{openbao.addr}", vault_approle_role_id: {role_id}, '
                                           "vault_approle_secret_id: not-the-secret-id")

    assert "hashicorp_vault: AppRole login at" in str(error.value)
    assert "not-the-secret-id" not in str(error.value)


def test_a_path_the_tokens_policy_does_not_cover_is_permission_denied(tmp_path, openbao, gateway_policy):
    name = unique("OPENAI_KEY")
    openbao.put(name, key="sk-outside-the-policy")
    token = openbao.client().auth.token.create(policies=[gateway_policy])["auth"]["client_token"]

    with pytest.raises(ConfigError) as error:
        load_api_key(tmp_path, name, f'vault_addr: "{openbao.addr}", vault_token: {token}')

    assert f"secret {name} could not be read from hashicorp_vault: permission denied on secret/{name}" \
        in str(error.value)
    assert "sk-outside-the-policy" not in str(error.value)


def test_a_missing_entry_names_the_secret_and_the_path(tmp_path, openbao):
    name = unique("OPENAI_KEY")

    with pytest.raises(ConfigError) as error:
        load_api_key(tmp_path, name, f'vault_addr: "{openbao.addr}", vault_token: {openbao.root_token}')

    assert str(error.value).endswith(f"model_list.0.litellm_params.api_key: secret {name} not found in "
                                     f"hashicorp_vault (no entry secret/{name})")


def test_an_entry_without_the_field_is_not_found(tmp_path, openbao):
    name = unique("OPENAI_KEY")
    openbao.put(name, value="sk-under-another-field")

    with pytest.raises(ConfigError) as error:
        load_api_key(tmp_path, name, f'vault_addr: "{openbao.addr}", vault_token: {openbao.root_token}')

    assert f"secret {name} not found in hashicorp_vault (entry secret/{name} has no field 'key')" in str(error.value)
    assert "sk-under-another-field" not in str(error.value)


def test_a_deleted_latest_version_is_not_found(tmp_path, openbao):
    name = unique("OPENAI_KEY")
    openbao.put(name, key="sk-deleted")
    openbao.client().secrets.kv.v2.delete_latest_version_of_secret(path=name)

    with pytest.raises(ConfigError) as error:
        load_api_key(tmp_path, name, f'vault_addr: "{openbao.addr}", vault_token: {openbao.root_token}')

    assert f"secret {name} not found in hashicorp_vault" in str(error.value)
