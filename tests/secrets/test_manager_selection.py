"""Choosing and configuring the secret manager from config.yaml (no manager is reached in this file)."""
from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from gateway_project.config import ConfigError, load_config
from gateway_project.secrets import KeyManagementSettings
from tests.secrets.conftest import ROOT, write_config
from tests.servers.process import free_port

MODEL = """model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o, api_key: {api_key}}}
"""


def vault_config(tmp_path, api_key: str, settings: str) -> str:
    """A config naming hashicorp_vault at a port nothing listens on: reaching it would fail."""
    return write_config(tmp_path, MODEL.format(api_key=api_key) + f"""general_settings:
  key_management_system: hashicorp_vault
  key_management_settings: {{vault_addr: "http://127.0.0.1:{free_port()}", vault_token: t, timeout: 2, {settings}}}
""")


def test_an_unknown_manager_is_refused_with_the_supported_names(tmp_path):
    path = write_config(tmp_path, "general_settings: {key_management_system: cyberark}\n")

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert "general_settings.key_management_system: 'cyberark' is not a supported secret manager" in str(error.value)
    assert "aws_secret_manager" in str(error.value) and "hashicorp_vault" in str(error.value)


def test_the_managers_settings_are_typed_in_the_config(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAIN_KEY_FOR_TEST", "sk-plain")
    config = load_config(vault_config(tmp_path, "sk-literal", "hosted_keys: [OTHER]"))

    assert config.general_settings.key_management_system == "hashicorp_vault"
    assert isinstance(config.general_settings.key_management_settings, KeyManagementSettings)
    assert config.general_settings.key_management_settings.hosted_keys == ("OTHER",)
    assert config.general_settings.key_management_settings.timeout == 2


def test_a_bad_setting_names_its_field(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(vault_config(tmp_path, "sk-literal", "access_mode: sometimes"))

    assert "general_settings.key_management_settings.access_mode:" in str(error.value)


def test_a_backend_missing_a_required_setting_says_which(tmp_path, monkeypatch):
    monkeypatch.delenv("AZURE_KEY_VAULT_URI", raising=False)
    path = write_config(tmp_path, "general_settings: {key_management_system: azure_key_vault}\n")

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert "general_settings.key_management_settings.azure_key_vault_uri" in str(error.value)
    assert "AZURE_KEY_VAULT_URI" in str(error.value)


def test_the_managers_own_credentials_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("VAULT_TOKEN_FOR_TEST", raising=False)
    path = write_config(tmp_path, """general_settings:
  key_management_system: hashicorp_vault
  key_management_settings: {vault_token: os.environ/VAULT_TOKEN_FOR_TEST}
""")

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert ("general_settings.key_management_settings.vault_token: environment variable VAULT_TOKEN_FOR_TEST "
            "is not set") in str(error.value)


def test_names_outside_hosted_keys_come_from_the_environment_without_asking_the_manager(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAIN_KEY_FOR_TEST", "sk-plain")

    config = load_config(vault_config(tmp_path, "os.environ/PLAIN_KEY_FOR_TEST", "hosted_keys: [OTHER]"))

    assert config.model_list[0].litellm_params.api_key == "sk-plain"


def test_write_only_access_reads_every_name_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAIN_KEY_FOR_TEST", "sk-plain")

    config = load_config(vault_config(tmp_path, "os.environ/PLAIN_KEY_FOR_TEST", "access_mode: write_only"))

    assert config.model_list[0].litellm_params.api_key == "sk-plain"


def test_an_unreachable_manager_stops_loading_even_when_the_environment_has_the_name(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAIN_KEY_FOR_TEST", "sk-plain-never-shown")

    with pytest.raises(ConfigError) as error:
        load_config(vault_config(tmp_path, "os.environ/PLAIN_KEY_FOR_TEST", "vault_data_key: key"))

    message = str(error.value)
    assert "model_list.0.litellm_params.api_key: secret PLAIN_KEY_FOR_TEST could not be read from " \
           "hashicorp_vault" in message
    assert "cannot reach the server" in message
    assert "sk-plain-never-shown" not in message


def test_litellm_keys_the_gateway_does_not_use_are_reported(tmp_path, caplog):
    path = vault_config(tmp_path, "sk-literal", "store_virtual_keys: true")

    with caplog.at_level(logging.WARNING, logger="gateway.config"):
        load_config(path)

    assert "general_settings.key_management_settings.store_virtual_keys" in caplog.text


def test_local_is_litellms_name_for_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAIN_KEY_FOR_TEST", "sk-plain")
    path = write_config(tmp_path, MODEL.format(api_key="os.environ/PLAIN_KEY_FOR_TEST")
                        + "general_settings: {key_management_system: local}\n")

    assert load_config(path).model_list[0].litellm_params.api_key == "sk-plain"


PROBE = """
import sys
from gateway_project.config import load_config
load_config(sys.argv[1])
print(",".join(m for m in ("boto3", "hvac", "azure.identity", "azure.keyvault.secrets", "google.auth")
               if m in sys.modules))
"""


@pytest.mark.e2e  # a fresh interpreter per case
@pytest.mark.parametrize("manager", ["none", "hashicorp_vault", "aws_secret_manager", "google_secret_manager"])
def test_no_sdk_is_imported_until_a_secret_is_read_from_its_manager(tmp_path, manager):
    general = "" if manager == "none" else f"""general_settings:
  key_management_system: {manager}
  key_management_settings: {{vault_token: t, azure_key_vault_uri: "https://kv.example"}}
"""
    path = write_config(tmp_path, MODEL.format(api_key="sk-literal") + general)

    # A fresh interpreter: this test process has imported SDKs already.
    probe = subprocess.run([sys.executable, "-c", PROBE, str(path)], cwd=ROOT, capture_output=True, text=True,
                           timeout=60, env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "tests.settings"})

    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == ""
