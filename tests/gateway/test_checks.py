from django.core.management import call_command
from django.core.management.base import SystemCheckError
import pytest

from gateway_project.config import load_config, set_config


@pytest.fixture
def config_file(tmp_path):
    def use(text: str):
        path = tmp_path / "config.yaml"
        path.write_text(text)
        set_config(load_config(path))

    yield use
    set_config(None)


def test_an_unknown_provider_fails_the_check_naming_the_field(config_file):
    config_file("model_list:\n  - model_name: x\n    litellm_params: {model: bedrock-ish/x}\n"
                "general_settings: {master_key: sk-1}\n")

    with pytest.raises(SystemCheckError, match=r"gateway.E003.*model_list.0.litellm_params.model"):
        call_command("check")


def test_a_master_key_without_sk_prefix_fails_the_check(config_file):
    config_file("general_settings: {master_key: plain-secret}\n")

    with pytest.raises(SystemCheckError, match="gateway.E002"):
        call_command("check")


def test_an_azure_deployment_without_api_base_fails_the_check(config_file):
    config_file("model_list:\n  - model_name: x\n    litellm_params: {model: azure/my-deployment}\n"
                "general_settings: {master_key: sk-1}\n")

    with pytest.raises(SystemCheckError, match=r"gateway.E004.*api_base"):
        call_command("check")
