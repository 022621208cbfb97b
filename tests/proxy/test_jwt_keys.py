"""JWT verification against the stand-in IdP's JWKS over real HTTP: caching, refresh on an unknown kid
(coalesced and rate-limited), rotation, outages, and the checks that need a real signature."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from gateway_project.config.schema import JwtAuthSettings
from gateway_project.errors import AuthenticationError, ServiceUnavailableError
from proxy.http import ClientPool
from proxy.pipeline.jwt import (
    AMBIGUOUS_KEY, BAD_SIGNATURE, EXPIRED, JWKS_UNAVAILABLE, MAX_JWKS_BYTES, NOT_YET_VALID, UNKNOWN_KID,
    WRONG_AUDIENCE, WRONG_ISSUER, JwksCache, JwtAuth,
)
from tests.servers.fake_jwks import ec_key, ed25519_key, hmac_token, rsa_key, running_jwks, unsigned_token
from tests.servers.process import free_port

pytestmark = pytest.mark.e2e

ISSUER = "https://idp.gateway.test"
AUDIENCE = "gateway"
TTL = 600.0
INTERVAL = 5.0
T = TypeVar("T")


class Clock:
    """A monotonic clock the test moves by hand: TTLs and refresh intervals pass without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def rsa():
    return rsa_key("rsa-1")


@pytest.fixture(scope="module")
def ec():
    return ec_key("ec-1")


@pytest.fixture(scope="module")
def idp(tmp_path_factory, rsa, ec):
    with running_jwks(tmp_path_factory.mktemp("fake-jwks"), name="fake-jwks-unit") as stand_in:
        yield stand_in


@pytest.fixture(autouse=True)
def published(idp, rsa, ec):
    """Every test starts with the RSA and EC keys published."""
    idp.publish(rsa, ec)
    return idp


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(idp, clock):
    """``verifier(**settings)``: a JwtAuth on a fresh key cache for the stand-in's JWKS."""

    def make(*, urls: tuple[str, ...] | None = None, **settings: Any) -> JwtAuth:
        config = JwtAuthSettings(**settings)
        keys = JwksCache(urls or (idp.url,), clients=ClientPool(timeout=10), ttl=config.public_key_ttl,
                         min_refresh_interval=config.public_key_refresh_interval, clock=clock)
        return JwtAuth(config, keys=keys, issuer=ISSUER, audience=AUDIENCE)

    return make


def run(auth: JwtAuth, operation: Callable[[], Awaitable[T]]) -> T:
    """Run ``operation`` on a fresh event loop, closing the cache's HTTP clients on it."""

    async def main() -> T:
        try:
            return await operation()
        finally:
            await auth.keys._clients.aclose()

    return asyncio.run(main())


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "nbf": now, "exp": now + 300}
    return {name: value for name, value in (base | changes).items() if value is not None}


def refused(auth: JwtAuth, token: str) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as caught:
        run(auth, lambda: auth.verify(token))
    return caught.value


# Keys: caching, refresh, rotation, outages ------------------------------------------------------


def test_the_key_set_is_fetched_once_and_then_served_from_the_cache(verifier, idp, rsa, ec):
    auth, before = verifier(), idp.fetches()

    async def three_tokens():
        for token in (rsa.sign(claims()), ec.sign(claims()), rsa.sign(claims(sub="bob"))):
            await auth.verify(token)

    run(auth, three_tokens)
    assert idp.fetches() == before + 1


def test_a_stale_key_set_is_fetched_again_after_its_ttl(verifier, idp, clock, rsa):
    auth, before = verifier(public_key_ttl=60), idp.fetches()

    async def across_the_ttl():
        await auth.verify(rsa.sign(claims()))
        clock.advance(59)
        await auth.verify(rsa.sign(claims()))
        clock.advance(2)
        await auth.verify(rsa.sign(claims()))

    run(auth, across_the_ttl)
    assert idp.fetches() == before + 2


def test_a_flood_of_unknown_kids_costs_the_idp_one_fetch(verifier, idp, clock, rsa):
    auth = verifier()
    forged = [rsa_key(f"ghost-{i}") for i in range(3)]
    tokens = [forged[i % 3].sign(claims()) for i in range(50)]

    async def flood():
        await auth.verify(rsa.sign(claims()))            # the first fetch
        clock.advance(INTERVAL)                          # a refresh is allowed again
        before = idp.fetches()
        results = await asyncio.gather(*(auth.verify(token) for token in tokens), return_exceptions=True)
        return before, results

    before, results = run(auth, flood)
    assert {type(r) for r in results} == {AuthenticationError}
    assert {r.message for r in results} == {UNKNOWN_KID}
    assert idp.fetches() == before + 1


def test_unknown_kids_refresh_the_key_set_at_most_once_per_interval(verifier, idp, clock, rsa):
    auth, ghost = verifier(public_key_refresh_interval=INTERVAL), rsa_key("ghost")
    counts = []

    async def probe():
        await auth.verify(rsa.sign(claims()))
        for step in (1.0, 1.0, 1.0, 3.0):      # 1, 2, 3 and 6 seconds after the first fetch
            clock.advance(step)
            with pytest.raises(AuthenticationError, match="unknown key id"):
                await auth.verify(ghost.sign(claims()))
            counts.append(idp.fetches())

    before = idp.fetches()
    run(auth, probe)
    assert [count - before for count in counts] == [1, 1, 1, 2]


def test_a_first_token_with_an_unknown_kid_costs_one_fetch_not_two(verifier, idp):
    auth, before = verifier(public_key_refresh_interval=0), idp.fetches()
    with pytest.raises(AuthenticationError, match="unknown key id"):
        run(auth, lambda: auth.verify(rsa_key("ghost").sign(claims())))
    assert idp.fetches() == before + 1


def test_a_rotated_key_is_picked_up_by_its_first_token(verifier, idp, clock, rsa, ec):
    auth, successor = verifier(), rsa_key("rsa-2")

    async def rotate():
        await auth.verify(rsa.sign(claims()))
        idp.publish(ec, successor)
        clock.advance(INTERVAL)
        return await auth.verify(successor.sign(claims(sub="after-rotation")))

    assert run(auth, rotate)["sub"] == "after-rotation"


def test_an_idp_outage_keeps_the_keys_already_known(verifier, idp, clock, rsa):
    auth = verifier(public_key_ttl=60)

    async def outage():
        await auth.verify(rsa.sign(claims()))
        idp.take_down()
        clock.advance(61)
        before = idp.fetches()
        verified = await auth.verify(rsa.sign(claims(sub="during-outage")))
        return before, verified

    before, verified = run(auth, outage)
    assert verified["sub"] == "during-outage"
    assert idp.fetches() == before + 1   # it did try


def test_without_any_key_set_the_answer_is_503_not_a_wrong_401(verifier, idp, rsa):
    idp.take_down()
    auth = verifier()
    with pytest.raises(ServiceUnavailableError) as caught:
        run(auth, lambda: auth.verify(rsa.sign(claims())))
    assert (caught.value.status, caught.value.message) == (503, JWKS_UNAVAILABLE)


def test_an_oversized_key_set_is_not_read(verifier, idp, rsa):
    idp.publish_raw(b'{"keys": [], "padding": "' + b"x" * MAX_JWKS_BYTES + b'"}')
    auth = verifier()
    with pytest.raises(ServiceUnavailableError):
        run(auth, lambda: auth.verify(rsa.sign(claims())))


def test_a_dead_second_jwks_url_does_not_stop_the_first(verifier, idp, rsa):
    auth = verifier(urls=(f"http://127.0.0.1:{free_port()}/jwks.json", idp.url))
    assert run(auth, lambda: auth.verify(rsa.sign(claims())))["sub"] == "alice"


# Keys and algorithms ----------------------------------------------------------------------------


def test_eddsa_and_rsa_pss_tokens_verify(verifier, idp, rsa):
    ed, pss = ed25519_key("ed-1"), rsa_key("pss-1", "PS256")
    idp.publish(rsa, ed, pss)
    auth = verifier()
    assert run(auth, lambda: auth.verify(ed.sign(claims(sub="ed"))))["sub"] == "ed"
    auth = verifier()
    assert run(auth, lambda: auth.verify(pss.sign(claims(sub="pss"))))["sub"] == "pss"


def test_an_rsa_jwk_without_alg_verifies_rsa_pss_too(verifier, idp, rsa):
    idp.publish(rsa.jwk(with_alg=False))
    auth = verifier()
    assert run(auth, lambda: auth.verify(rsa.sign(claims(), alg="PS384")))["sub"] == "alice"


def test_an_algorithm_the_named_key_does_not_declare_is_refused(verifier, rsa):
    error = refused(verifier(), rsa.sign(claims(), alg="PS256"))   # the JWK says RS256
    assert error.message == "Authentication Error, JWT algorithm 'PS256' does not fit the key its kid names."


def test_an_ec_token_naming_the_rsa_key_is_refused(verifier, ec):
    error = refused(verifier(), ec.sign(claims(), kid="rsa-1"))
    assert "'ES256' does not fit the key its kid names" in error.message


def test_a_token_without_kid_is_verified_by_the_one_key_that_fits(verifier, ec):
    auth = verifier()
    assert run(auth, lambda: auth.verify(ec.sign(claims(), kid=None)))["sub"] == "alice"


def test_a_token_without_kid_is_refused_when_several_keys_fit(verifier, idp, rsa):
    idp.publish(rsa, rsa_key("rsa-2"))
    assert refused(verifier(), rsa.sign(claims(), kid=None)).message == AMBIGUOUS_KEY


def test_a_signature_by_another_key_under_a_known_kid_is_refused(verifier):
    impostor = rsa_key("rsa-1")
    assert refused(verifier(), impostor.sign(claims())).message == BAD_SIGNATURE


def test_hs256_keyed_with_the_public_key_is_refused_before_any_key_is_used(verifier, idp, rsa):
    auth, before = verifier(), idp.fetches()
    error = refused(auth, hmac_token(claims(), rsa.public_pem(), kid="rsa-1"))
    assert error.message == "Authentication Error, JWT algorithm 'HS256' is not allowed."
    assert idp.fetches() == before


def test_an_unsigned_token_is_refused(verifier):
    error = refused(verifier(), unsigned_token(claims(), kid="rsa-1"))
    assert error.message == "Authentication Error, JWT algorithm 'none' is not allowed."


def test_the_configured_algorithms_narrow_the_defaults(verifier, rsa):
    assert "'RS256' is not allowed" in refused(verifier(algorithms=["ES256"]), rsa.sign(claims())).message


# Times, issuer, audience ------------------------------------------------------------------------


def test_leeway_forgives_small_clock_skew_only(verifier, rsa):
    now = int(time.time())
    auth = verifier(leeway=30)
    assert run(auth, lambda: auth.verify(rsa.sign(claims(exp=now - 10))))["sub"] == "alice"
    assert run(auth, lambda: auth.verify(rsa.sign(claims(nbf=now + 10, iat=now + 10))))["sub"] == "alice"
    assert refused(auth, rsa.sign(claims(exp=now - 60))).message == EXPIRED
    assert refused(auth, rsa.sign(claims(nbf=now + 60))).message == NOT_YET_VALID
    assert refused(auth, rsa.sign(claims(iat=now + 60))).message == NOT_YET_VALID


def test_a_token_without_exp_is_refused(verifier, rsa):
    assert refused(verifier(), rsa.sign(claims(exp=None))).message == \
        "Authentication Error, JWT is missing the 'exp' claim."


@pytest.mark.parametrize("changes, message", [
    ({"iss": "https://evil.example"}, WRONG_ISSUER),
    ({"iss": None}, "Authentication Error, JWT is missing the 'iss' claim."),
    ({"aud": "another-app"}, WRONG_AUDIENCE),
    ({"aud": None}, "Authentication Error, JWT is missing the 'aud' claim."),
])
def test_issuer_and_audience_are_checked_when_configured(verifier, rsa, changes, message):
    assert refused(verifier(), rsa.sign(claims(**changes))).message == message


def test_one_matching_audience_among_several_is_enough(verifier, rsa):
    auth = verifier()
    assert run(auth, lambda: auth.verify(rsa.sign(claims(aud=["other", AUDIENCE]))))["sub"] == "alice"


def test_without_a_configured_audience_the_tokens_audience_is_not_checked(idp, clock, rsa):
    config = JwtAuthSettings()
    keys = JwksCache((idp.url,), clients=ClientPool(timeout=10), ttl=TTL, min_refresh_interval=INTERVAL, clock=clock)
    auth = JwtAuth(config, keys=keys, issuer=None, audience=None)
    assert run(auth, lambda: auth.verify(rsa.sign(claims(aud="anything", iss="any"))))["sub"] == "alice"
