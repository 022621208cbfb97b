"""JWT auth's pure pieces: what counts as a JWT, which algorithms and keys may verify one, how claims
name the caller, and how the verifier is configured. Verification against a live JWKS is in
test_jwt_keys.py; through the gateway, in tests/e2e/test_jwt_auth.py."""
from __future__ import annotations

import secrets

import jwt as pyjwt
import orjson
import pytest
from django.core.exceptions import ImproperlyConfigured
from pydantic import ValidationError

from gateway_project.config.schema import GatewayConfig, JwtAuthSettings
from gateway_project.errors import AuthenticationError, PermissionDeniedError
from proxy.http import ClientPool
from proxy.pipeline.jwt import (
    BAD_SIGNATURE, EXPIRED, MALFORMED, NOT_YET_VALID, WRONG_AUDIENCE, WRONG_ISSUER, JwtAuth, NoJwtAuth,
    checked_algorithm, claim, failure_message, identity_from_claims, jwt_auth_for, key_algorithms, parse_jwks,
    principal_token, scopes, unverified_header,
)
from teams.models import UserRole
from tests.servers.fake_jwks import ec_key, ed25519_key, hmac_token, rsa_key, unsigned_token

ALL_ASYMMETRIC = frozenset(JwtAuthSettings().algorithms)
RSA_FAMILY = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}


@pytest.fixture(scope="module")
def rsa():
    return rsa_key("rsa-1")


@pytest.fixture(scope="module")
def ec():
    return ec_key("ec-1")


def identity(claims, **settings):
    return identity_from_claims(claims, JwtAuthSettings(**settings))


# What is taken for a JWT ------------------------------------------------------------------------


def test_a_virtual_key_is_not_taken_for_a_jwt():
    assert unverified_header("sk-" + secrets.token_urlsafe(16)) is None


def test_a_custom_key_with_dots_is_not_taken_for_a_jwt():
    assert unverified_header("sk-my.team.key") is None


def test_a_signed_token_is_taken_for_a_jwt(rsa):
    assert unverified_header(rsa.sign({"sub": "alice"})) == {"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}


def test_an_unsigned_token_is_taken_for_a_jwt_so_that_it_is_refused_as_one():
    assert unverified_header(unsigned_token({"sub": "alice"}))["alg"] == "none"


def test_a_header_that_is_not_a_json_object_is_not_a_jwt():
    assert unverified_header("WzEsMl0.e30.sig") is None  # header is [1,2]


def test_jwt_auth_off_takes_no_token_for_a_jwt(rsa):
    assert NoJwtAuth().handles(rsa.sign({"sub": "alice"})) is False


# Algorithms -------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "HS256", "HS384", "HS512", "ES256K"])
def test_none_and_symmetric_algorithms_are_refused_by_name(alg):
    with pytest.raises(AuthenticationError) as refused:
        checked_algorithm({"alg": alg}, ALL_ASYMMETRIC)
    assert refused.value.message == f"Authentication Error, JWT algorithm {alg!r} is not allowed."
    assert refused.value.status == 401 and refused.value.type == "auth_error"


def test_an_unknown_algorithm_is_refused_without_echoing_it():
    with pytest.raises(AuthenticationError) as refused:
        checked_algorithm({"alg": "<script>"}, ALL_ASYMMETRIC)
    assert refused.value.message == "Authentication Error, JWT algorithm is not allowed."


def test_an_algorithm_outside_the_configured_list_is_refused():
    with pytest.raises(AuthenticationError, match="'RS256' is not allowed"):
        checked_algorithm({"alg": "RS256"}, frozenset({"ES256"}))


@pytest.mark.parametrize("header", [{}, {"alg": ""}, {"alg": 256}])
def test_a_header_without_an_algorithm_is_malformed(header):
    with pytest.raises(AuthenticationError, match=MALFORMED):
        checked_algorithm(header, ALL_ASYMMETRIC)


@pytest.mark.parametrize("alg", sorted(ALL_ASYMMETRIC))
def test_every_default_algorithm_is_asymmetric_and_allowed(alg):
    assert checked_algorithm({"alg": alg}, ALL_ASYMMETRIC) == alg


@pytest.mark.parametrize("algorithms", [["HS256"], ["RS256", "none"], ["ES256K"]])
def test_config_refuses_to_allow_symmetric_or_no_algorithm(algorithms):
    with pytest.raises(ValidationError, match="not accepted"):
        JwtAuthSettings(algorithms=algorithms)


def test_config_takes_user_roles_field_and_allowed_roles_together():
    with pytest.raises(ValidationError, match="set together"):
        JwtAuthSettings(user_roles_jwt_field="roles")
    assert JwtAuthSettings(user_roles_jwt_field="roles", user_allowed_roles=["llm"]).user_allowed_roles == ("llm",)


# Which key may verify what ----------------------------------------------------------------------


def test_an_rsa_jwk_without_alg_verifies_every_rsa_algorithm(rsa):
    assert key_algorithms(rsa.jwk(with_alg=False)) == RSA_FAMILY


def test_a_jwk_alg_narrows_its_key_to_that_algorithm(rsa):
    assert key_algorithms(rsa.jwk(alg="PS384")) == {"PS384"}


def test_a_jwk_whose_alg_does_not_fit_its_key_type_verifies_nothing(rsa):
    assert key_algorithms(rsa.jwk(alg="ES256")) == frozenset()
    assert key_algorithms(rsa.jwk(alg="HS256")) == frozenset()


def test_an_ec_key_verifies_the_algorithm_of_its_curve():
    assert key_algorithms(ec_key("p384", "ES384").jwk(with_alg=False)) == {"ES384"}
    assert key_algorithms(ec_key("p256").jwk(alg="ES384")) == frozenset()


def test_an_ed25519_key_verifies_eddsa():
    assert key_algorithms(ed25519_key("ed").jwk(with_alg=False)) == {"EdDSA"}


@pytest.mark.parametrize("jwk", [
    {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
    {"kty": "OKP", "crv": "X25519", "x": "AAAA"},
    {"kty": "EC", "crv": "secp256k1", "x": "AAAA", "y": "AAAA"},
], ids=["symmetric", "key-agreement", "unsupported-curve"])
def test_keys_that_cannot_sign_asymmetrically_verify_nothing(jwk):
    assert key_algorithms(jwk) == frozenset()


def test_encryption_keys_verify_nothing(rsa):
    assert key_algorithms(rsa.jwk(use="enc")) == frozenset()
    assert key_algorithms(rsa.jwk(key_ops=["encrypt"])) == frozenset()
    assert key_algorithms(rsa.jwk(key_ops=["verify"])) == {"RS256"}


def test_a_key_set_keeps_only_keys_that_can_verify(rsa, ec):
    body = orjson.dumps({"keys": [rsa.jwk(), ec.jwk(), {"kty": "oct", "k": "c2VjcmV0"}, "junk",
                                  {"kty": "RSA", "n": "bad", "kid": "broken"}]})
    assert [(key.kid, key.algorithms) for key in parse_jwks(body)] == [("rsa-1", {"RS256"}), ("ec-1", {"ES256"})]


def test_a_bare_list_of_jwks_is_a_key_set(ec):
    assert [key.kid for key in parse_jwks(orjson.dumps([ec.jwk()]))] == ["ec-1"]


def test_a_document_without_keys_is_not_a_key_set():
    with pytest.raises(ValueError, match="not a JWK set"):
        parse_jwks(b'{"issuer": "https://idp"}')


def test_private_key_material_in_the_key_set_is_used_for_its_public_half_only(rsa):
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    private_jwk = pyjwt.algorithms.RSAAlgorithm.to_jwk(rsa.private_key, as_dict=True) | {"kid": "leaked"}
    del private_jwk["key_ops"]  # ["sign"]: such a key is skipped outright
    (key,) = parse_jwks(orjson.dumps({"keys": [private_jwk]}))
    assert isinstance(key.key, RSAPublicKey)


# Claims -----------------------------------------------------------------------------------------


def test_a_claim_is_read_by_its_exact_name_first_then_as_a_dotted_path():
    claims = {"https://example.com/team": "t1", "realm_access": {"roles": ["llm"]}}
    assert claim(claims, "https://example.com/team") == "t1"
    assert claim(claims, "realm_access.roles") == ["llm"]
    assert claim(claims, "realm_access.groups") is None
    assert claim({"a": "not an object"}, "a.b") is None


def test_scopes_come_from_the_scope_string_and_the_scopes_list():
    assert scopes({"scope": "openid  profile", "scopes": ["admin", 7]}) == {"openid", "profile", "admin"}
    assert scopes({"scope": ["a b", "c"]}) == {"a", "b", "c"}
    assert scopes({}) == frozenset()


def test_by_default_the_subject_is_an_internal_user_without_a_team():
    who = identity({"sub": "alice@example.com"})
    assert (who.user_id, who.role, who.team_ids, who.team_required) == (
        "alice@example.com", UserRole.INTERNAL_USER, (), False)


@pytest.mark.parametrize("claims", [{"scope": "openid litellm_proxy_admin"},
                                    {"scopes": ["litellm_proxy_admin"]}], ids=["scope", "scopes"])
def test_the_admin_scope_makes_a_proxy_admin(claims):
    assert identity({"sub": "root", **claims}).role == UserRole.PROXY_ADMIN


def test_the_admin_scope_can_be_renamed_or_switched_off():
    assert identity({"sub": "r", "scope": "gw-admin"}, admin_jwt_scope="gw-admin").role == UserRole.PROXY_ADMIN
    assert identity({"sub": "r", "scope": "litellm_proxy_admin"}, admin_jwt_scope=None).role == UserRole.INTERNAL_USER


def test_a_token_without_its_user_claim_is_refused():
    with pytest.raises(AuthenticationError, match="missing the 'sub' claim"):
        identity({"email": "alice@example.com"})


def test_the_user_claim_can_be_another_field_or_none():
    assert identity({"sub": "x", "email": "a@b.c"}, user_id_jwt_field="email").user_id == "a@b.c"
    assert identity({}, user_id_jwt_field=None).user_id is None


@pytest.mark.parametrize("value", ["u" * 256, {"id": 1}, ["alice"], True])
def test_an_id_claim_that_is_not_a_short_string_is_refused(value):
    with pytest.raises(AuthenticationError, match="claim 'sub' must be a string of at most 255"):
        identity({"sub": value})


def test_a_numeric_id_claim_is_read_as_text():
    assert identity({"sub": 1234}).user_id == "1234"


def test_the_team_claim_names_the_team():
    who = identity({"sub": "a", "team": "research"}, team_id_jwt_field="team", team_id_default="general")
    assert (who.team_ids, who.team_source, who.team_required) == (("research",), "claim 'team'", True)


def test_without_a_team_claim_the_default_team_is_used():
    assert identity({"sub": "a"}, team_id_jwt_field="team", team_id_default="general").team_ids == ("general",)


def test_a_team_list_is_tried_in_token_order_up_to_twenty_teams():
    groups = [f"g{i}" for i in range(30)]
    who = identity({"sub": "a", "groups": groups}, team_ids_jwt_field="groups")
    assert who.team_ids == tuple(groups[:20])
    assert identity({"sub": "a", "groups": "solo"}, team_ids_jwt_field="groups").team_ids == ("solo",)


def test_a_team_is_required_of_users_but_not_of_admins_when_a_team_claim_is_configured():
    assert identity({"sub": "a"}, team_id_jwt_field="team").team_required is True
    assert identity({"sub": "a", "scope": "litellm_proxy_admin"}, team_id_jwt_field="team").team_required is False


def test_a_user_role_outside_the_allowed_ones_is_403():
    with pytest.raises(PermissionDeniedError) as refused:
        identity({"sub": "a", "roles": ["guest"]}, user_roles_jwt_field="roles", user_allowed_roles=["llm"])
    assert refused.value.status == 403
    assert refused.value.message == "Authentication Error, none of the JWT's roles (claim 'roles') may use the proxy."


def test_an_allowed_role_passes_also_from_a_nested_claim_or_a_string():
    settings = {"user_roles_jwt_field": "realm_access.roles", "user_allowed_roles": ["llm"]}
    assert identity({"sub": "a", "realm_access": {"roles": ["x", "llm"]}}, **settings).role == UserRole.INTERNAL_USER
    assert identity({"sub": "a", "realm_access": {"roles": "llm"}}, **settings).user_id == "a"


def test_admins_skip_the_role_allow_list():
    who = identity({"sub": "a", "scope": "litellm_proxy_admin"}, user_roles_jwt_field="roles",
                   user_allowed_roles=["llm"])
    assert who.role == UserRole.PROXY_ADMIN


def test_the_end_user_comes_from_its_claim():
    assert identity({"sub": "a", "customer": "acme"}, end_user_id_jwt_field="customer").end_user_id == "acme"
    assert identity({"sub": "a"}, end_user_id_jwt_field="customer").end_user_id is None


def test_the_spend_log_token_is_stable_per_issuer_and_user_and_never_a_key_digest():
    token = principal_token("https://idp", "alice")
    assert token == principal_token("https://idp", "alice")
    assert token != principal_token("https://other-idp", "alice") != principal_token("https://idp", "bob")
    assert token.startswith("jwt-") and len(token) == 64


# Failures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("exc, message", [
    (pyjwt.ExpiredSignatureError("Signature has expired"), EXPIRED),
    (pyjwt.ImmatureSignatureError("The token is not yet valid (iat)"), NOT_YET_VALID),
    (pyjwt.InvalidAudienceError("Audience doesn't match"), WRONG_AUDIENCE),
    (pyjwt.InvalidIssuerError("Invalid issuer"), WRONG_ISSUER),
    (pyjwt.InvalidSignatureError("Signature verification failed"), BAD_SIGNATURE),
    (pyjwt.MissingRequiredClaimError("exp"), "Authentication Error, JWT is missing the 'exp' claim."),
    (pyjwt.DecodeError("Invalid payload padding"), MALFORMED),
])
def test_each_refusal_says_what_failed(exc, message):
    assert failure_message(exc) == message


# Configuration ----------------------------------------------------------------------------------


def config(environment_variables=None, **jwtauth) -> GatewayConfig:
    return GatewayConfig.model_validate({
        "general_settings": {"enable_jwt_auth": True, "litellm_jwtauth": jwtauth},
        "environment_variables": environment_variables or {}})


@pytest.fixture
def no_jwt_env(settings):
    settings.JWT_PUBLIC_KEY_URL = settings.JWT_ISSUER = settings.JWT_AUDIENCE = None
    return settings


def test_jwt_auth_is_off_unless_enabled():
    assert isinstance(jwt_auth_for(GatewayConfig(), ClientPool(timeout=5)), NoJwtAuth)


def test_jwt_auth_on_without_a_jwks_url_refuses_to_start(no_jwt_env):
    with pytest.raises(ImproperlyConfigured, match="no JWKS URL is configured"):
        jwt_auth_for(config(), ClientPool(timeout=5))


def test_a_jwks_url_that_is_not_http_refuses_to_start(no_jwt_env):
    with pytest.raises(ImproperlyConfigured, match="is not an http"):
        jwt_auth_for(config(public_key_url="file:///etc/jwks.json"), ClientPool(timeout=5))


def test_the_config_wins_over_environment_variables_which_win_over_the_process_env(no_jwt_env):
    no_jwt_env.JWT_PUBLIC_KEY_URL, no_jwt_env.JWT_AUDIENCE = "https://env/jwks", "env-audience"
    no_jwt_env.JWT_ISSUER = "https://env-issuer"
    auth = jwt_auth_for(config({"JWT_PUBLIC_KEY_URL": "https://vars/jwks", "JWT_AUDIENCE": "vars-audience"},
                               public_key_url="https://a/jwks, https://b/jwks"), ClientPool(timeout=5))
    assert isinstance(auth, JwtAuth)
    assert auth.keys.urls == ("https://a/jwks", "https://b/jwks")
    assert (auth.audience, auth.issuer) == ("vars-audience", "https://env-issuer")
    assert jwt_auth_for(config(), ClientPool(timeout=5)).keys.urls == ("https://env/jwks",)


def test_the_verifier_never_allows_hmac_even_if_handed_it(no_jwt_env, rsa):
    auth = jwt_auth_for(config(public_key_url="https://idp/jwks"), ClientPool(timeout=5))
    assert auth.algorithms == ALL_ASYMMETRIC
    assert auth.handles(hmac_token({"sub": "a"}, rsa.public_pem()))
