"""``key_management_system: azure_key_vault`` against a stand-in speaking Key Vault's REST API over TLS on
127.0.0.1 (a self-signed certificate made for the test), through azure-keyvault-secrets and
azure-identity's managed identity."""
from __future__ import annotations

import pytest

from gateway_project.config import ConfigError, load_config
from tests.secrets.conftest import unique, write_config

pytestmark = pytest.mark.e2e


@pytest.fixture
def azure(azure_vault, monkeypatch):
    """The stand-in, and this process's environment holding its managed identity (as on App Service)."""
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_KEY_VAULT_URI",
                 "AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT", "MSI_SECRET", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in azure_vault.env.items():
        monkeypatch.setenv(name, value)
    return azure_vault


def config_text(name: str, settings: str) -> str:
    return f"""model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o, api_key: os.environ/{name}}}
general_settings:
  key_management_system: azure_key_vault
  key_management_settings: {{{settings}}}
"""


def load_api_key(tmp_path, name: str, settings: str) -> str:
    return load_config(write_config(tmp_path, config_text(name, settings))).model_list[0].litellm_params.api_key


def trusted(azure) -> str:
    return f'azure_key_vault_uri: "{azure.url}", ca_bundle: "{azure.ca_file}"'


def test_a_reference_reads_the_secret_with_underscores_as_dashes(tmp_path, azure):
    name = unique("OPENAI_KEY")
    azure.stand_in.seed({name.replace("_", "-"): "sk-from-key-vault"})

    assert load_api_key(tmp_path, name, trusted(azure)) == "sk-from-key-vault"


def test_the_vault_url_can_come_from_azure_key_vault_uri(tmp_path, azure, monkeypatch):
    name = unique("OPENAI_KEY").replace("_", "-")
    azure.stand_in.seed({name: "sk-vault-from-environment"})
    monkeypatch.setenv("AZURE_KEY_VAULT_URI", azure.url)

    assert load_api_key(tmp_path, name, f'ca_bundle: "{azure.ca_file}"') == "sk-vault-from-environment"


def test_a_missing_secret_names_it_and_the_name_asked(tmp_path, azure):
    name = unique("OPENAI_KEY")

    with pytest.raises(ConfigError) as error:
        load_api_key(tmp_path, name, trusted(azure))

    assert str(error.value).endswith(f"model_list.0.litellm_params.api_key: secret {name} not found in "
                                     f"azure_key_vault (as {name.replace('_', '-')})")


def test_a_secret_the_identity_may_not_get_is_forbidden(tmp_path, azure):
    name = unique("OPENAI_KEY").replace("_", "-")
    azure.stand_in.seed({name: "sk-forbidden-never-shown"}, denied=[name])

    with pytest.raises(ConfigError) as error:
        load_api_key(tmp_path, name, trusted(azure))

    assert f"secret {name} could not be read from azure_key_vault: HTTP 403 Forbidden" in str(error.value)
    assert "sk-forbidden-never-shown" not in str(error.value)


def test_an_untrusted_certificate_stops_loading(tmp_path, azure):
    name = unique("OPENAI_KEY").replace("_", "-")
    azure.stand_in.seed({name: "sk-never-shown"})

    with pytest.raises(ConfigError) as error:
        load_api_key(tmp_path, name, f'azure_key_vault_uri: "{azure.url}"')

    assert f"secret {name} could not be read from azure_key_vault: authentication failed: " \
           "ManagedIdentityCredential: [SSL: CERTIFICATE_VERIFY_FAILED]" in str(error.value)


def test_a_managed_identity_the_token_endpoint_refuses_stops_loading(tmp_path, azure, monkeypatch):
    name = unique("OPENAI_KEY").replace("_", "-")
    azure.stand_in.seed({name: "sk-never-shown"})
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-identity-header")

    with pytest.raises(ConfigError) as error:
        load_api_key(tmp_path, name, trusted(azure))

    assert f"secret {name} could not be read from azure_key_vault: authentication failed: " in str(error.value)
    assert "not-the-identity-header" not in str(error.value)
