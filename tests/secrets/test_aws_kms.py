"""AWS KMS against moto's server on 127.0.0.1: ``key_management_system: aws_kms`` in config.yaml, and the
start-up decryption of ``LITELLM_SECRET_AWS_KMS_*`` variables (USE_AWS_KMS) before settings are read."""
from __future__ import annotations

import os

import pytest

from gateway_project.bootstrap import prepare_environment
from gateway_project.config import ConfigError, load_config
from tests.e2e.conftest import _fresh_database_url, launch_gateway
from tests.secrets.conftest import run_manage, unique, write_config
from tests.servers.process import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def key_id(moto_server) -> str:
    return moto_server.kms_key()


@pytest.fixture
def kms_env(aws, monkeypatch):
    """USE_AWS_KMS on; what a test sets through ``monkeypatch``, and what decryption exports, is undone."""
    before = set(os.environ)
    monkeypatch.setenv("USE_AWS_KMS", "True")
    yield monkeypatch
    for name in set(os.environ) - before:
        del os.environ[name]


def test_aws_kms_manager_decrypts_the_referenced_variable(tmp_path, aws, key_id, monkeypatch):
    name = unique("OPENAI_KEY")
    monkeypatch.setenv(name, aws.encrypt(key_id, "sk-decrypted-by-kms"))
    path = write_config(tmp_path, f"""model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o, api_key: os.environ/{name}}}
general_settings: {{key_management_system: aws_kms}}
""")

    assert load_config(path).model_list[0].litellm_params.api_key == "sk-decrypted-by-kms"


def test_aws_kms_manager_refuses_a_value_that_is_not_ciphertext(tmp_path, aws, monkeypatch):
    name = unique("OPENAI_KEY")
    monkeypatch.setenv(name, "sk-plain-text-never-shown")
    path = write_config(tmp_path, f"""model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o, api_key: os.environ/{name}}}
general_settings: {{key_management_system: aws_kms}}
""")

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert f"model_list.0.litellm_params.api_key: cannot decrypt {name} with aws_kms: the value is not base64 " \
           "KMS ciphertext" in str(error.value)
    assert "sk-plain-text-never-shown" not in str(error.value)


def test_start_up_exports_each_prefixed_variable_decrypted_without_its_prefix(aws, key_id, kms_env):
    kms_env.setenv("LITELLM_SECRET_AWS_KMS_MY_VALUE", aws.encrypt(key_id, "decrypted value\n"))
    kms_env.delenv("MY_VALUE", raising=False)

    prepare_environment()

    assert os.environ["MY_VALUE"] == "decrypted value"
    assert "LITELLM_SECRET_AWS_KMS_MY_VALUE" not in os.environ


def test_the_prefix_is_matched_in_any_case(aws, key_id, kms_env):
    kms_env.setenv("litellm_secret_aws_kms_Lower_Case", aws.encrypt(key_id, "from lower case"))
    kms_env.delenv("Lower_Case", raising=False)

    prepare_environment()

    assert os.environ["Lower_Case"] == "from lower case"


def test_a_value_written_aws_kms_slash_ciphertext_is_decrypted_in_place(aws, key_id, kms_env):
    kms_env.setenv("IN_PLACE_VALUE", "aws_kms/" + aws.encrypt(key_id, "decrypted in place"))

    prepare_environment()

    assert os.environ["IN_PLACE_VALUE"] == "decrypted in place"


def test_a_second_run_has_nothing_left_to_decrypt(aws, key_id, kms_env):
    kms_env.setenv("LITELLM_SECRET_AWS_KMS_ONCE", aws.encrypt(key_id, "once"))
    prepare_environment()
    kms_env.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # KMS gone: a call would fail

    prepare_environment()  # as a uvicorn worker does, with the environment it inherited

    assert os.environ["ONCE"] == "once"


def test_a_variable_that_does_not_decrypt_stops_start_up_naming_it(aws, kms_env):
    kms_env.setenv("LITELLM_SECRET_AWS_KMS_BROKEN", "bm90IGNpcGhlcnRleHQgYXQgYWxs")

    with pytest.raises(SystemExit) as stop:
        prepare_environment()

    assert str(stop.value.code).startswith("Gateway start-up stopped (USE_AWS_KMS): cannot decrypt "
                                           "LITELLM_SECRET_AWS_KMS_BROKEN with aws_kms: ")


def test_manage_py_stops_before_settings_when_decryption_fails(aws, tmp_path):
    result = run_manage(["check"], env={**aws.env, "USE_AWS_KMS": "true",
                                        "LITELLM_SECRET_AWS_KMS_DATABASE_URL": "bm90IGNpcGhlcnRleHQgYXQgYWxs",
                                        "GATEWAY_DATA_DIR": str(tmp_path)})

    assert result.returncode == 1
    assert "Gateway start-up stopped (USE_AWS_KMS): cannot decrypt LITELLM_SECRET_AWS_KMS_DATABASE_URL with " \
           "aws_kms: " in result.stderr
    assert "Traceback" not in result.stderr and "bm90IGNpcGhlcnRleHQgYXQgYWxs" not in result.stderr


def test_a_gateway_decrypts_its_master_key_and_database_url_at_start(tmp_path, aws, key_id):
    master_key = "sk-master-" + unique("kms").lower()
    database_url, drop_database = _fresh_database_url(tmp_path)
    env = {**aws.env, "USE_AWS_KMS": "True",
           "LITELLM_SECRET_AWS_KMS_GATEWAY_MASTER_KEY": aws.encrypt(key_id, master_key),
           "LITELLM_SECRET_AWS_KMS_DATABASE_URL": aws.encrypt(key_id, database_url)}
    config = "model_list:\n  - model_name: fake\n    litellm_params: {model: fake/fake-openai-endpoint}\n"
    try:
        # The plain DATABASE_URL points nowhere: only the decrypted one lets the gateway migrate and serve.
        with launch_gateway(tmp_path, config, name="kms-gateway", env=env,
                            database_url=f"postgres://nobody@127.0.0.1:{free_port()}/not_this_one") as gateway:
            refused = gateway.http.post("/key/generate", json={}, headers={"Authorization": "Bearer sk-wrong"})
            issued = gateway.http.post("/key/generate", json={}, headers={"Authorization": f"Bearer {master_key}"})
    finally:
        drop_database()

    assert refused.status_code == 401
    assert issued.status_code == 200, issued.text
    assert issued.json()["key"].startswith("sk-")
