"""JWT auth through a live gateway: tokens from the stand-in IdP (tests/servers/fake_jwks.py) are
verified against its JWKS and mapped to a user, a team and a role; virtual keys keep working beside them."""
from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from tests.e2e.conftest import MASTER_KEY, launch_gateway, wait_for
from tests.servers.fake_jwks import ec_key, hmac_token, rsa_key, running_jwks, unsigned_token

pytestmark = pytest.mark.e2e

ISSUER = "https://idp.gateway.test"
AUDIENCE = "gateway-e2e"
TEAM = "team-research"
BLOCKED_TEAM = "team-on-hold"
USER = "alice@example.com"
MESSAGES = [{"role": "user", "content": "hello"}]


def gateway_config(jwks_url: str) -> str:
    return f"""
model_list:
  - model_name: fake-gpt
    litellm_params:
      model: fake/fake-gpt
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
  - model_name: fake-other
    litellm_params:
      model: fake/fake-other
general_settings:
  master_key: {MASTER_KEY}
  enable_jwt_auth: true
  litellm_jwtauth:
    team_id_jwt_field: team
    user_roles_jwt_field: roles
    user_allowed_roles: [llm-user]
    public_key_refresh_interval: 1
environment_variables:
  JWT_PUBLIC_KEY_URL: {jwks_url}
  JWT_ISSUER: {ISSUER}
  JWT_AUDIENCE: {AUDIENCE}
"""


@pytest.fixture(scope="module")
def rsa():
    return rsa_key("rsa-1")


@pytest.fixture(scope="module")
def ec():
    return ec_key("ec-1")


@pytest.fixture(scope="module")
def idp(e2e_dir, rsa, ec):
    with running_jwks(e2e_dir, name="jwks-e2e") as stand_in:
        stand_in.publish(rsa, ec)
        yield stand_in


@pytest.fixture(scope="module")
def gateway(e2e_dir, idp):
    with launch_gateway(e2e_dir, gateway_config(idp.url), name="gateway-jwt") as live:
        for team in ({"team_id": TEAM, "models": ["fake-gpt"], "metadata": {"tags": ["research"]}},
                     {"team_id": BLOCKED_TEAM, "blocked": True}):
            response = live.admin("POST", "/team/new", json=team)
            assert response.status_code == 200, response.text
        yield live


def claims(**changes: Any) -> dict[str, Any]:
    """A user's claims as the IdP issues them; a change to None leaves that claim out."""
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": USER, "iat": now, "nbf": now, "exp": now + 300,
            "team": TEAM, "roles": ["llm-user"], "scope": "openid profile"}
    return {name: value for name, value in (base | changes).items() if value is not None}


def admin_claims(**changes: Any) -> dict[str, Any]:
    """A proxy admin's claims: the admin scope, no team, no role."""
    admin = {"sub": "root@example.com", "team": None, "roles": None, "scope": "openid litellm_proxy_admin"}
    return claims(**(admin | changes))


def chat(gateway, token: str, model: str = "fake-gpt"):
    return gateway.http.post("/chat/completions", json={"model": model, "messages": MESSAGES},
                             headers={"Authorization": f"Bearer {token}"})


def assert_refused(response, status: int, message: str, token: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["type"], error["message"]) == (str(status), "auth_error", message)
    assert token not in response.text and token.split(".")[1] not in response.text


# Accepted ---------------------------------------------------------------------------------------


def test_a_token_signed_with_the_idps_rsa_key_is_accepted(gateway, rsa):
    completion = gateway.sdk(rsa.sign(claims())).chat.completions.create(model="fake-gpt", messages=MESSAGES)
    assert completion.choices[0].message.content


def test_a_token_signed_with_the_idps_ec_key_is_accepted(gateway, ec):
    completion = gateway.sdk(ec.sign(claims())).chat.completions.create(model="fake-gpt", messages=MESSAGES)
    assert completion.choices[0].message.content


def test_the_spend_row_carries_the_tokens_user_and_team_and_the_teams_tags(gateway, rsa):
    completion = gateway.sdk(rsa.sign(claims())).chat.completions.create(model="fake-gpt", messages=MESSAGES)
    row = gateway.spend_row(completion.id)
    assert (row["user"], row["team_id"]) == (USER, TEAM)
    assert row["api_key"].startswith("jwt-") and len(row["api_key"]) == 64
    assert "research" in row["request_tags"]
    assert row["spend"] > 0
    team_spend = wait_for(lambda: gateway.admin("GET", "/team/info", params={"team_id": TEAM}).json()
                          ["team_info"]["spend"])
    assert team_spend > 0


def test_virtual_keys_and_the_master_key_still_work_with_jwt_auth_on(gateway):
    key = gateway.new_key(models=["fake-other"])
    for api_key, model in ((key, "fake-other"), (MASTER_KEY, "fake-gpt")):
        completion = gateway.sdk(api_key).chat.completions.create(model=model, messages=MESSAGES)
        assert completion.choices[0].message.content


# Refused tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize("changes, message", [
    ({"exp": int(time.time()) - 3600}, "Authentication Error, JWT has expired."),
    ({"nbf": int(time.time()) + 3600},
     "Authentication Error, JWT is not yet valid (its nbf or iat lies in the future)."),
    ({"exp": None}, "Authentication Error, JWT is missing the 'exp' claim."),
    ({"iss": "https://evil.example"}, "Authentication Error, JWT issuer is not accepted."),
    ({"aud": "some-other-app"}, "Authentication Error, JWT audience is not accepted."),
], ids=["expired", "not-yet-valid", "no-exp", "wrong-issuer", "wrong-audience"])
def test_a_token_failing_a_check_is_401_saying_which(gateway, rsa, changes, message):
    token = rsa.sign(claims(**changes))
    assert_refused(chat(gateway, token), 401, message, token)


def test_an_unsigned_token_is_401(gateway):
    token = unsigned_token(admin_claims(), kid="rsa-1")
    assert_refused(chat(gateway, token), 401, "Authentication Error, JWT algorithm 'none' is not allowed.", token)


def test_hs256_keyed_with_the_idps_public_key_is_401(gateway, rsa):
    token = hmac_token(admin_claims(), rsa.public_pem(), kid="rsa-1")
    assert_refused(chat(gateway, token), 401, "Authentication Error, JWT algorithm 'HS256' is not allowed.", token)


def test_a_signature_by_another_key_under_a_known_kid_is_401(gateway):
    token = rsa_key("rsa-1").sign(admin_claims())
    assert_refused(chat(gateway, token), 401, "Authentication Error, JWT signature is invalid.", token)


def test_an_unknown_kid_refreshes_the_key_set_once_then_is_401(gateway, idp):
    token = rsa_key("kid-nobody-published").sign(claims())
    before = idp.fetches()

    def refused_after_a_refresh() -> bool:
        # Another test may have refreshed less than the 1 s interval ago: ask until one refresh ran.
        assert_refused(chat(gateway, token), 401,
                       "Authentication Error, JWT is signed with an unknown key id (kid).", token)
        return idp.fetches() > before

    wait_for(refused_after_a_refresh, timeout=5)
    refreshed = idp.fetches()
    assert refreshed == before + 1
    for _ in range(5):
        assert chat(gateway, token).status_code == 401
    assert idp.fetches() == refreshed


def test_a_rotated_key_is_accepted_without_a_restart(gateway, idp, rsa, ec):
    successor = rsa_key("rsa-2")
    idp.publish(rsa, ec, successor)
    token = successor.sign(claims(sub="rotated@example.com"))
    response = wait_for(lambda: (r := chat(gateway, token)).status_code == 200 and r, timeout=5)
    assert response.json()["choices"][0]["message"]["content"]


# Claims → role, team ----------------------------------------------------------------------------


@pytest.mark.parametrize("scope", [{"scope": "openid litellm_proxy_admin"},
                                   {"scope": None, "scopes": ["litellm_proxy_admin"]}],
                         ids=["scope-string", "scopes-list"])
def test_the_admin_scope_reaches_the_admin_only_health_route(gateway, rsa, scope):
    response = gateway.http.get("/health", headers={"Authorization": f"Bearer {rsa.sign(admin_claims(**scope))}"})
    assert response.status_code == 200, response.text
    assert response.json()["healthy_count"] == 2


def test_a_token_without_the_admin_scope_is_403_on_the_health_route(gateway, rsa):
    response = gateway.http.get("/health", headers={"Authorization": f"Bearer {rsa.sign(claims())}"})
    assert response.status_code == 403, response.text


def test_the_teams_model_list_binds_a_token_of_that_team(gateway, rsa):
    with pytest.raises(openai.PermissionDeniedError) as denied:
        gateway.sdk(rsa.sign(claims())).chat.completions.create(model="fake-other", messages=MESSAGES)
    assert denied.value.body["type"] == "team_model_access_denied"


def test_the_models_list_shows_only_the_teams_models(gateway, rsa):
    models = [model.id for model in gateway.sdk(rsa.sign(claims())).models.list()]
    assert models == ["fake-gpt"]


def test_a_blocked_team_is_401(gateway, rsa):
    token = rsa.sign(claims(team=BLOCKED_TEAM))
    assert_refused(chat(gateway, token), 401, f"Authentication Error, Team={BLOCKED_TEAM} is blocked. "
                                               "Update via `/team/unblock` if you're an admin.", token)


def test_a_team_that_does_not_exist_is_401(gateway, rsa):
    token = rsa.sign(claims(team="team-nobody-created"))
    assert_refused(chat(gateway, token), 401, "Authentication Error, Team=team-nobody-created named by the "
                                               "JWT's claim 'team' does not exist.", token)


def test_a_users_token_without_a_team_is_401(gateway, rsa):
    token = rsa.sign(claims(team=None))
    assert_refused(chat(gateway, token), 401, "Authentication Error, JWT names no team (claim 'team') and no "
                                               "team_id_default is configured.", token)


def test_a_role_outside_the_allowed_roles_is_403(gateway, rsa):
    token = rsa.sign(claims(roles=["guest"]))
    assert_refused(chat(gateway, token), 403, "Authentication Error, none of the JWT's roles (claim 'roles') "
                                               "may use the proxy.", token)
