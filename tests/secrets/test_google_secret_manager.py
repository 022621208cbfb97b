"""``key_management_system: google_secret_manager`` against a stand-in speaking Secret Manager's REST API
and Google's OAuth token endpoint on 127.0.0.1, with a real service-account key file (google-auth)."""
from __future__ import annotations

import pytest

from gateway_project.config import ConfigError, load_config
from tests.secrets.conftest import GOOGLE_PROJECT, unique, write_config
from tests.servers.fake_google_secrets import service_account_file

pytestmark = pytest.mark.e2e


@pytest.fixture
def google(google_secrets, monkeypatch):
    """The stand-in, with this process's Application Default Credentials pointing at its key file."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(google_secrets.credentials_file))
    for name in ("GOOGLE_SECRET_MANAGER_PROJECT_ID", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    return google_secrets


def config_text(google, *names: str, settings: str = "") -> str:
    models = "".join(f"""  - model_name: model-{i}
    litellm_params: {{model: openai/gpt-4o, api_key: os.environ/{name}}}
""" for i, name in enumerate(names))
    return f"""model_list:
{models}general_settings:
  key_management_system: google_secret_manager
  key_management_settings: {{google_secret_manager_url: "{google.url}", {settings}}}
"""


def test_a_reference_reads_the_latest_version_with_a_service_account_token(tmp_path, google):
    name = unique("OPENAI_KEY")
    google.stand_in.seed({name: "sk-from-google"})

    config = load_config(write_config(tmp_path, config_text(google, name, settings=f"google_project_id: "
                                                                                   f"{GOOGLE_PROJECT}")))

    assert config.model_list[0].litellm_params.api_key == "sk-from-google"
    [access] = google.stand_in.accesses(name, GOOGLE_PROJECT)
    assert access["headers"]["authorization"].startswith("Bearer ya29.stand-in-")


def test_the_project_defaults_to_the_credentials_project(tmp_path, google):
    name = unique("OPENAI_KEY")
    google.stand_in.seed({name: "sk-project-from-credentials"})

    config = load_config(write_config(tmp_path, config_text(google, name)))

    assert config.model_list[0].litellm_params.api_key == "sk-project-from-credentials"


def test_the_project_can_come_from_google_secret_manager_project_id(tmp_path, google, monkeypatch):
    name = unique("OPENAI_KEY")
    monkeypatch.setenv("GOOGLE_SECRET_MANAGER_PROJECT_ID", "someone-elses-project")

    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, config_text(google, name)))

    assert "HTTP 403 PERMISSION_DENIED" in str(error.value)
    assert "projects/someone-elses-project/secrets/" in str(error.value)


def test_a_name_used_twice_is_fetched_once(tmp_path, google):
    name = unique("OPENAI_KEY")
    google.stand_in.seed({name: "sk-shared"})

    config = load_config(write_config(tmp_path, config_text(google, name, name)))

    assert [m.litellm_params.api_key for m in config.model_list] == ["sk-shared", "sk-shared"]
    assert len(google.stand_in.accesses(name, GOOGLE_PROJECT)) == 1


def test_a_missing_secret_names_it_the_manager_and_the_project(tmp_path, google):
    name = unique("OPENAI_KEY")

    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, config_text(google, name)))

    assert str(error.value).endswith(f"model_list.0.litellm_params.api_key: secret {name} not found in "
                                     f"google_secret_manager (project {GOOGLE_PROJECT})")


def test_a_denied_secret_stops_loading_with_googles_error(tmp_path, google):
    name = unique("OPENAI_KEY")
    google.stand_in.seed({name: "sk-denied-never-shown"}, denied=[name])

    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, config_text(google, name)))

    assert f"secret {name} could not be read from google_secret_manager: HTTP 403 PERMISSION_DENIED: " \
           "Permission 'secretmanager.versions.access' denied" in str(error.value)
    assert "sk-denied-never-shown" not in str(error.value)


def test_a_key_the_token_endpoint_does_not_know_gets_no_token(tmp_path, google, monkeypatch):
    name = unique("OPENAI_KEY")
    google.stand_in.seed({name: "sk-never-shown"})
    stranger, _ = service_account_file(tmp_path, f"{google.url}/token", GOOGLE_PROJECT)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(stranger))

    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, config_text(google, name)))

    assert f"secret {name} could not be read from google_secret_manager: cannot get an access token: " \
           "('invalid_grant: Invalid JWT Signature." in str(error.value)


def test_missing_credentials_stop_loading_and_say_so(tmp_path, google, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))

    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, config_text(google, unique("OPENAI_KEY"))))

    assert "model_list.0.litellm_params.api_key: google_secret_manager: no Google credentials: " in str(error.value)
