"""Bad input and failing upstreams: a clear error in the contract's JSON, never a traceback, and a
failed spend row for every authenticated request."""
import openai
import pytest

from tests.e2e.conftest import MASTER_KEY, UPSTREAM_KEY, wait_for

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "user", "content": "hi"}]


def post_chat(gateway, body, *, key=MASTER_KEY, **kwargs):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if isinstance(body, (bytes, str)):
        return gateway.http.post("/chat/completions", content=body, headers=headers, **kwargs)
    return gateway.http.post("/chat/completions", json=body, headers=headers, **kwargs)


def assert_error(response, status, *, type_=None, message=None, param=...):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == str(status)
    if type_:
        assert error["type"] == type_
    if message:
        assert message in error["message"]
    if param is not ...:
        assert error["param"] == param
    assert "Traceback" not in response.text
    return error


@pytest.mark.parametrize("body, param, message", [
    (b"{not json", "request_body", "Invalid JSON payload"),
    (b"[1, 2]", "request_body", "expected an object"),
    ({"messages": MESSAGES}, "model", "Missing required parameter: 'model'"),
    ({"model": "gpt-3.5-turbo"}, "messages", "Missing required parameter: 'messages'"),
    ({"model": "gpt-3.5-turbo", "messages": "hi"}, "messages", "Invalid type for 'messages'"),
    ({"model": 42, "messages": MESSAGES}, "model", "Invalid type for 'model'"),
    ({"model": "gpt-3.5-turbo", "messages": []}, "messages", "at least one message"),
    ({"model": "gpt-3.5-turbo", "messages": [{"content": "no role"}]}, "messages", "role"),
    ({"model": "gpt-3.5-turbo", "messages": MESSAGES, "stream": "yes"}, "stream", "Invalid type for 'stream'"),
])
def test_bad_request_bodies_are_400_naming_the_parameter(gateway, stand_in, body, param, message):
    assert_error(post_chat(gateway, body), 400, type_="invalid_request_error", message=message, param=param)
    assert stand_in.requests() == []


def test_unknown_model_is_400_pointing_to_models(gateway):
    error = assert_error(post_chat(gateway, {"model": "gpt-7", "messages": MESSAGES}), 400,
                         type_="invalid_request_error")
    assert error["message"] == ("/chat/completions: Invalid model name passed in model=gpt-7. "
                                "Call `/v1/models` to view available models for your key.")


def test_no_key_is_401(gateway):
    error = assert_error(post_chat(gateway, {"model": "gpt-3.5-turbo", "messages": MESSAGES}, key=None), 401,
                         type_="auth_error", param="None")
    assert error["message"] == "Authentication Error, No api key passed in."


def test_an_unknown_key_is_401_without_echoing_it(gateway):
    response = post_chat(gateway, {"model": "gpt-3.5-turbo", "messages": MESSAGES}, key="sk-unknown-1234")
    assert_error(response, 401, message="Authentication Error, Invalid API key provided.")
    assert "sk-unknown-1234" not in response.text


def test_an_authorization_header_without_bearer_is_401(gateway):
    response = gateway.http.post("/chat/completions", json={"model": "gpt-3.5-turbo", "messages": MESSAGES},
                                 headers={"Authorization": MASTER_KEY})
    assert_error(response, 401, message="Malformed API Key")


def test_the_sdk_raises_its_authentication_error_for_a_bad_key(gateway):
    with pytest.raises(openai.AuthenticationError):
        gateway.sdk("sk-not-a-key").chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES)


def test_a_key_limited_to_other_models_is_403(gateway, stand_in):
    key = gateway.new_key(models=["fake-openai-endpoint"])

    assert_error(post_chat(gateway, {"model": "gpt-3.5-turbo", "messages": MESSAGES}, key=key), 403,
                 type_="key_model_access_denied")
    assert stand_in.requests() == []


def test_a_team_limited_to_other_models_is_403(gateway, stand_in):
    team_id = gateway.admin("POST", "/team/new", json={"models": ["fake-openai-endpoint"]}).json()["team_id"]
    key = gateway.new_key(team_id=team_id)

    assert_error(post_chat(gateway, {"model": "gpt-3.5-turbo", "messages": MESSAGES}, key=key), 403,
                 type_="team_model_access_denied")


def test_a_blocked_key_stops_working_at_once(gateway):
    key = gateway.new_key()
    assert post_chat(gateway, {"model": "fake-openai-endpoint", "messages": MESSAGES}, key=key).status_code == 200

    gateway.admin("POST", "/key/update", json={"key": key, "blocked": True})

    assert_error(post_chat(gateway, {"model": "fake-openai-endpoint", "messages": MESSAGES}, key=key), 401,
                 message="Key is blocked")


def test_a_deleted_key_stops_working_at_once(gateway):
    key = gateway.new_key()
    assert post_chat(gateway, {"model": "fake-openai-endpoint", "messages": MESSAGES}, key=key).status_code == 200

    assert gateway.admin("POST", "/key/delete", json={"keys": [key]}).status_code == 200

    assert_error(post_chat(gateway, {"model": "fake-openai-endpoint", "messages": MESSAGES}, key=key), 401)


def test_an_expired_key_is_401(gateway):
    key = gateway.new_key(duration="1s")

    wait_for(lambda: post_chat(gateway, {"model": "fake-openai-endpoint", "messages": MESSAGES}, key=key)
             .status_code == 401, timeout=5)
    error = post_chat(gateway, {"model": "fake-openai-endpoint", "messages": MESSAGES}, key=key).json()["error"]
    assert error["type"] == "expired_key"


def test_an_unreachable_upstream_is_502_and_a_failed_spend_row(gateway):
    key = gateway.new_key(key_alias="dead-upstream-key")

    response = post_chat(gateway, {"model": "dead-model", "messages": MESSAGES}, key=key)

    error = assert_error(response, 502, type_="api_connection_error")
    assert "127.0.0.1" not in error["message"] and UPSTREAM_KEY not in response.text
    rows = wait_for(lambda: gateway.spend_logs(api_key=key))
    assert rows[0]["status"] == "failure" and rows[0]["model_group"] == "dead-model"
    assert rows[0]["metadata"]["error_information"]["error_code"] == "502"


def test_an_upstream_500_is_relayed_as_500_and_recorded_as_failed(gateway, stand_in):
    stand_in.behave(status=500, times=1)
    key = gateway.new_key()

    assert_error(post_chat(gateway, {"model": "gpt-3.5-turbo", "messages": MESSAGES}, key=key), 500)

    rows = wait_for(lambda: gateway.spend_logs(api_key=key))
    assert rows[0]["status"] == "failure"


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
def test_an_upstream_429_keeps_its_status_and_retry_after(gateway, stand_in, stream):
    stand_in.behave(status=429, times=1, retry_after=7)

    response = post_chat(gateway, {"model": "gpt-3.5-turbo", "messages": MESSAGES, "stream": stream})

    assert_error(response, 429)
    assert response.headers["retry-after"] == "7"


def test_an_upstream_error_before_a_stream_starts_is_an_ordinary_error_response(gateway, stand_in):
    stand_in.behave(status=503, times=1)

    response = post_chat(gateway, {"model": "gpt-3.5-turbo", "messages": MESSAGES, "stream": True})

    assert_error(response, 503)
