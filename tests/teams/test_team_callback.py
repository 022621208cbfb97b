"""POST/GET /team/{team_id}/callback and POST /team/{team_id}/disable_logging."""
import pytest

from teams.cache import team_cache
from teams.models import Team
from tests.teams.helpers import assert_not_admin_refused

SECRET = "sk-lf-0123456789abcdef-secret"
LANGFUSE = {"callback_name": "langfuse", "callback_type": "success",
            "callback_vars": {"langfuse_public_key": "pk-lf-team", "langfuse_secret_key": SECRET,
                              "langfuse_host": "https://langfuse.example.com"}}


@pytest.fixture
def team(new_team) -> str:
    """Team t1, whose admin is ``ann`` and member ``ben``."""
    new_team(team_id="t1", members_with_roles=[{"role": "admin", "user_id": "ann"}, {"role": "user", "user_id": "ben"}])
    return "t1"


def add(client, team_id: str, body):
    return client.post(f"/team/{team_id}/callback", body, format="json")


def assert_bad_request(response, param: str, text: str) -> None:
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["type"] == "bad_request_error" and error["code"] == "400" and error["param"] == param
    assert text in error["message"]


def test_adding_a_callback_stores_litellms_callback_settings(admin_api, team):
    response = add(admin_api, team, LANGFUSE)

    assert response.status_code == 200 and response.json()["status"] == "success"
    settings = Team.objects.get(team_id=team).metadata["callback_settings"]
    assert settings == {"success_callback": ["langfuse"], "failure_callback": [],
                        "callback_vars": LANGFUSE["callback_vars"]}


def test_the_answer_masks_the_secret(admin_api, team):
    response = add(admin_api, team, LANGFUSE)

    assert SECRET not in response.content.decode()
    shown = response.json()["data"]["metadata"]["callback_settings"]["callback_vars"]
    assert shown["langfuse_secret_key"] == "sk-l****cret" and shown["langfuse_public_key"] == "pk-lf-team"


def test_get_shows_the_callbacks_with_secrets_masked(admin_api, team):
    add(admin_api, team, {**LANGFUSE, "callback_type": "success_and_failure"})

    response = admin_api.get(f"/team/{team}/callback")

    assert response.status_code == 200
    assert response.json() == {"status": "success", "data": {
        "team_id": team, "success_callbacks": ["langfuse"], "failure_callbacks": ["langfuse"],
        "callback_vars": {**LANGFUSE["callback_vars"], "langfuse_secret_key": "sk-l****cret"},
        "logging": [], "logging_disabled": False}}


def test_get_shows_metadata_logging_entries_masked(admin_api, new_team):
    new_team(team_id="t9", metadata={"logging": [LANGFUSE]})

    data = admin_api.get("/team/t9/callback").json()["data"]

    assert data["success_callbacks"] == ["langfuse"] and data["failure_callbacks"] == []
    assert data["logging"][0]["callback_vars"]["langfuse_secret_key"] == "sk-l****cret"


def test_team_info_never_shows_a_callback_secret(admin_api, new_team):
    new_team(team_id="t9", metadata={"logging": [LANGFUSE]})
    add(admin_api, "t9", {**LANGFUSE, "callback_type": "failure"})

    body = admin_api.get("/team/info", {"team_id": "t9"}).content.decode()

    assert SECRET not in body and "sk-l****cret" in body


def test_environment_references_are_shown_as_written(admin_api, team):
    body = {**LANGFUSE, "callback_vars": {**LANGFUSE["callback_vars"], "langfuse_secret_key": "os.environ/LF_SECRET"}}
    add(admin_api, team, body)

    shown = admin_api.get(f"/team/{team}/callback").json()["data"]["callback_vars"]

    assert shown["langfuse_secret_key"] == "os.environ/LF_SECRET"


def test_callback_type_defaults_to_success_and_failure(admin_api, team):
    add(admin_api, team, {key: value for key, value in LANGFUSE.items() if key != "callback_type"})

    settings = Team.objects.get(team_id=team).metadata["callback_settings"]
    assert settings["success_callback"] == ["langfuse"] and settings["failure_callback"] == ["langfuse"]


def test_the_same_callback_twice_is_refused(admin_api, team):
    add(admin_api, team, LANGFUSE)

    assert_bad_request(add(admin_api, team, LANGFUSE), "callback_name",
                       "callback_name = langfuse already exists in success_callback")


@pytest.mark.parametrize("body, param, text", [
    ({**LANGFUSE, "callback_name": "datadog"}, "callback_name", "'datadog' is not a supported callback"),
    ({**LANGFUSE, "callback_type": "always"}, "callback_type", "'always' is not one of"),
    ({**LANGFUSE, "callback_vars": {"langfuse_public_key": "pk", "langfuse_secret_key": "sk", "api_key": "x"}},
     "callback_vars", "Invalid callback variable: api_key"),
    ({**LANGFUSE, "callback_vars": {"langfuse_public_key": "pk"}}, "callback_vars", "needs langfuse_public_key"),
    ({**LANGFUSE, "callback_vars": {**LANGFUSE["callback_vars"], "langfuse_host": "ftp://x"}}, "callback_vars",
     "langfuse_host must be an http(s) URL"),
    ({**LANGFUSE, "callback_vars": {**LANGFUSE["callback_vars"], "langfuse_public_key": ""}}, "callback_vars",
     "must be a non-empty string"),
    ({**LANGFUSE, "callback_vars": "pk:sk"}, "callback_vars", "must be an object"),
    ({**LANGFUSE, "colour": "red"}, "colour", "Unknown fields: colour"),
    (["langfuse"], "request_body", "must be a JSON object"),
])
def test_invalid_callbacks_are_refused(admin_api, team, body, param, text):
    assert_bad_request(add(admin_api, team, body), param, text)
    assert "callback_settings" not in Team.objects.get(team_id=team).metadata


def test_a_body_that_is_not_json_is_refused(admin_api, team):
    response = admin_api.post(f"/team/{team}/callback", "{not json", content_type="application/json")

    assert response.status_code == 400 and response.json()["error"]["param"] == "request_body"


def test_an_unknown_team_is_not_found(admin_api, db):
    for response in (add(admin_api, "nope", LANGFUSE), admin_api.get("/team/nope/callback"),
                     admin_api.post("/team/nope/disable_logging")):
        assert response.status_code == 404, response.json()
        assert response.json()["error"] == {"message": "Team not found, passed team_id=nope",
                                             "type": "not_found_error", "param": "team_id", "code": "404"}


def test_disable_logging_empties_the_lists_and_switches_logging_off(admin_api, team):
    add(admin_api, team, LANGFUSE)

    response = admin_api.post(f"/team/{team}/disable_logging")

    assert response.status_code == 200
    assert response.json() == {"status": "success", "message": f"Logging disabled for team {team}",
                               "data": {"team_id": team, "success_callbacks": [], "failure_callbacks": []}}
    data = admin_api.get(f"/team/{team}/callback").json()["data"]
    assert data["success_callbacks"] == [] and data["failure_callbacks"] == [] and data["logging_disabled"] is True


def test_disable_logging_also_silences_metadata_logging_entries(admin_api, new_team):
    new_team(team_id="t9", metadata={"logging": [LANGFUSE]})

    admin_api.post("/team/t9/disable_logging")

    data = admin_api.get("/team/t9/callback").json()["data"]
    assert data["success_callbacks"] == [] and data["logging_disabled"] is True


def test_adding_a_callback_after_disabling_switches_logging_back_on(admin_api, team):
    add(admin_api, team, LANGFUSE)
    admin_api.post(f"/team/{team}/disable_logging")

    assert add(admin_api, team, LANGFUSE).status_code == 200

    data = admin_api.get(f"/team/{team}/callback").json()["data"]
    assert data["success_callbacks"] == ["langfuse"] and data["logging_disabled"] is False


def test_disabling_reaches_the_proxy_team_cache_at_once(admin_api, team, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the cache is per process: drop older tests' entry
        add(admin_api, team, LANGFUSE)
    team_cache._store(team, object())  # a stale snapshot, as the proxy would hold it

    with django_capture_on_commit_callbacks(execute=True):
        admin_api.post(f"/team/{team}/disable_logging")

    assert team not in team_cache._entries


def test_a_team_admin_manages_its_teams_callbacks(api_as, new_key, team):
    ann = api_as(new_key(user_id="ann"))

    assert add(ann, team, LANGFUSE).status_code == 200
    assert ann.get(f"/team/{team}/callback").status_code == 200
    assert ann.post(f"/team/{team}/disable_logging").status_code == 200


@pytest.mark.parametrize("user_id", ["ben", "cy"])   # a plain member; someone outside the team
def test_others_may_not_touch_a_teams_callbacks(api_as, new_key, team, user_id):
    client = api_as(new_key(user_id=user_id))

    assert_not_admin_refused(add(client, team, LANGFUSE))
    assert_not_admin_refused(client.get(f"/team/{team}/callback"))
    assert_not_admin_refused(client.post(f"/team/{team}/disable_logging"))
    assert "callback_settings" not in Team.objects.get(team_id=team).metadata


def test_a_key_is_needed(anonymous_api, team):
    assert anonymous_api.get(f"/team/{team}/callback").status_code == 401


def test_team_new_refuses_an_invalid_logging_entry(admin_api, db):
    response = admin_api.post("/team/new", {"team_id": "t9", "metadata": {"logging": [
        {"callback_name": "langfuse", "callback_vars": {"langfuse_public_key": "pk"}}]}}, format="json")

    assert response.status_code == 400
    assert "metadata.logging[0].callback_vars" in response.json()["error"]["message"]
    assert not Team.objects.filter(team_id="t9").exists()
