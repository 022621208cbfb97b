import pytest

from gateway_project.config import ConfigError, load_config


def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_no_path_loads_the_demo_config_with_the_fake_model():
    config = load_config(None)

    assert config.model_names == ("fake-openai-endpoint",)
    assert config.model_list[0].litellm_params.provider == "fake"


def test_os_environ_references_are_resolved_at_load(tmp_path, monkeypatch):
    monkeypatch.setenv("UPSTREAM_KEY_FOR_TEST", "sk-upstream-secret")
    path = write(tmp_path, """
model_list:
  - model_name: gpt
    litellm_params: {model: openai/gpt-4o, api_key: os.environ/UPSTREAM_KEY_FOR_TEST}
""")

    config = load_config(path)

    assert config.model_list[0].litellm_params.api_key == "sk-upstream-secret"


def test_environment_variables_are_exported_before_references_resolve(tmp_path):
    path = write(tmp_path, """
environment_variables: {EXPORTED_FOR_TEST: from-config}
model_list:
  - model_name: gpt
    litellm_params: {model: openai/gpt-4o, api_key: os.environ/EXPORTED_FOR_TEST}
""")

    assert load_config(path).model_list[0].litellm_params.api_key == "from-config"


def test_a_missing_environment_variable_names_the_field_and_the_variable(tmp_path):
    path = write(tmp_path, """
model_list:
  - model_name: gpt
    litellm_params: {model: openai/gpt-4o, api_key: os.environ/SURELY_NOT_SET_ANYWHERE}
""")

    with pytest.raises(ConfigError) as error:
        load_config(path)

    assert "model_list.0.litellm_params.api_key" in str(error.value)
    assert "SURELY_NOT_SET_ANYWHERE" in str(error.value)


def test_a_wrong_type_names_the_field(tmp_path):
    path = write(tmp_path, """
model_list:
  - model_name: gpt
    litellm_params: {model: openai/gpt-4o, rpm: lots}
""")

    with pytest.raises(ConfigError, match=r"model_list\.0\.litellm_params\.rpm"):
        load_config(path)


def test_a_model_without_provider_prefix_is_refused(tmp_path):
    path = write(tmp_path, "model_list:\n  - model_name: gpt\n    litellm_params: {model: gpt-4o}\n")

    with pytest.raises(ConfigError, match="provider"):
        load_config(path)


def test_invalid_yaml_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "model_list: [\n"))


def test_a_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_unknown_keys_are_kept_and_do_not_stop_start_up(tmp_path, caplog):
    path = write(tmp_path, "general_settings: {master_key: sk-x, some_future_setting: 1}\n")

    config = load_config(path)

    assert config.general_settings.master_key == "sk-x"
    assert "general_settings.some_future_setting" in caplog.text


def test_the_config_is_immutable():
    config = load_config(None)

    with pytest.raises(Exception):
        config.general_settings.master_key = "sk-changed"


def test_master_key_from_the_environment_fills_a_config_without_one():
    assert load_config(None, master_key="sk-env").general_settings.master_key == "sk-env"


def test_master_key_in_the_config_wins_over_the_environment(tmp_path):
    path = write(tmp_path, "general_settings: {master_key: sk-file}\n")

    assert load_config(path, master_key="sk-env").general_settings.master_key == "sk-file"
