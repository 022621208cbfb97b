"""``key_management_system: aws_secret_manager`` against moto's server on 127.0.0.1, through boto3."""
from __future__ import annotations

import json

import pytest

from gateway_project.config import ConfigError, load_config
from tests.secrets.conftest import run_manage, unique, write_config
from tests.servers.process import free_port

pytestmark = pytest.mark.e2e


def config_text(api_key_name: str, system: str = "aws_secret_manager", settings: str = "{}") -> str:
    return f"""model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o, api_key: os.environ/{api_key_name}}}
general_settings:
  key_management_system: {system}
  key_management_settings: {settings}
"""


def test_os_environ_references_are_read_from_secrets_manager(tmp_path, aws):
    name = unique("OPENAI_KEY")
    aws.create_secret(name, "sk-from-secrets-manager")

    config = load_config(write_config(tmp_path, config_text(name)))

    assert config.model_list[0].litellm_params.api_key == "sk-from-secrets-manager"


def test_aws_secrets_manager_is_accepted_as_a_spelling_too(tmp_path, aws):
    name = unique("OPENAI_KEY")
    aws.create_secret(name, "sk-plural")

    config = load_config(write_config(tmp_path, config_text(name, system="aws_secrets_manager")))

    assert config.model_list[0].litellm_params.api_key == "sk-plural"


def test_region_and_endpoint_can_come_from_the_settings(tmp_path, aws, monkeypatch):
    name = unique("OPENAI_KEY")
    aws.client("secretsmanager").create_secret(Name=name, SecretString="sk-in-eu-west-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-2")
    settings = f'{{aws_region_name: eu-west-1, aws_endpoint_url: "{aws.endpoint}"}}'

    config = load_config(write_config(tmp_path, config_text(name, settings=settings)))

    assert config.model_list[0].litellm_params.api_key == "sk-in-eu-west-1"


def test_a_primary_secret_holds_many_names_as_one_json_object(tmp_path, aws):
    primary, name = unique("gateway/prod"), unique("OPENAI_KEY")
    aws.create_secret(primary, json.dumps({name: "sk-from-the-primary", "OTHER": "x"}))

    config = load_config(write_config(tmp_path, config_text(name, settings=f"{{primary_secret_name: {primary}}}")))

    assert config.model_list[0].litellm_params.api_key == "sk-from-the-primary"


def test_a_name_secrets_manager_lacks_is_read_from_the_environment(tmp_path, aws, monkeypatch):
    name = unique("OPENAI_KEY")
    monkeypatch.setenv(name, "sk-from-the-environment")

    config = load_config(write_config(tmp_path, config_text(name)))

    assert config.model_list[0].litellm_params.api_key == "sk-from-the-environment"


def test_a_missing_secret_names_the_field_the_secret_and_the_manager(tmp_path, aws):
    name = unique("OPENAI_KEY")
    path = write_config(tmp_path, config_text(name))

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert str(error.value) == f"{path}: model_list.0.litellm_params.api_key: secret {name} not found in " \
                               "aws_secret_manager"


def test_a_pass_through_header_reads_its_secret_from_the_manager(tmp_path, aws):
    name = unique("COHERE_KEY")
    aws.create_secret(name, "co-from-secrets-manager")
    path = write_config(tmp_path, f"""general_settings:
  key_management_system: aws_secret_manager
  pass_through_endpoints:
    - path: /v1/rerank
      target: https://api.cohere.com/v1/rerank
      headers: {{Authorization: "bearer os.environ/{name}"}}
""")

    entry = load_config(path).general_settings.pass_through_endpoints[0]

    assert entry.headers == {"Authorization": "bearer co-from-secrets-manager"}


def test_a_secret_marked_for_deletion_stops_loading_with_the_aws_error(tmp_path, aws):
    name = unique("OPENAI_KEY")
    aws.create_secret(name, "sk-never-shown")
    aws.client("secretsmanager").delete_secret(SecretId=name, RecoveryWindowInDays=7)

    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, config_text(name)))

    assert f"secret {name} could not be read from aws_secret_manager: InvalidRequestException: " in str(error.value)
    assert "marked deleted" in str(error.value) and "sk-never-shown" not in str(error.value)


def test_an_unreachable_endpoint_stops_loading_and_says_where(tmp_path, aws, monkeypatch):
    name = unique("OPENAI_KEY")
    monkeypatch.setenv(name, "sk-in-the-environment-too")  # not a reason to go on without the manager
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")

    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, config_text(name, settings="{timeout: 2}")))

    assert f"secret {name} could not be read from aws_secret_manager: Could not connect to the endpoint URL" \
        in str(error.value)


def test_the_gateway_command_stops_on_a_missing_secret_without_printing_values(tmp_path, aws):
    present, missing = unique("PRESENT_KEY"), unique("OPENAI_KEY")
    aws.create_secret(present, "sk-present-value-never-printed")
    path = write_config(tmp_path, f"""model_list:
  - model_name: first
    litellm_params: {{model: openai/gpt-4o, api_key: os.environ/{present}}}
  - model_name: second
    litellm_params: {{model: openai/gpt-4o, api_key: os.environ/{missing}}}
general_settings:
  master_key: sk-master-never-printed
  key_management_system: aws_secret_manager
""")
    result = run_manage(["gateway", "--config", str(path), "--port", "1"],
                        env={**aws.env, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})

    assert result.returncode == 1
    assert f"model_list.1.litellm_params.api_key: secret {missing} not found in aws_secret_manager" in result.stderr
    assert "Traceback" not in result.stderr
    output = result.stdout + result.stderr
    assert "sk-present-value-never-printed" not in output and "sk-master-never-printed" not in output
