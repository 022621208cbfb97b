"""Step 1, JWT branch: a bearer JWT from the identity provider, verified against its JWKS, becomes a Principal.

Verification refuses before it trusts anything: the header's ``alg`` must be on the allow-list, which
holds asymmetric algorithms only (``none`` and HS* never verify, so a public key can never serve as an
HMAC secret), and must fit the JWK that ``kid`` names; then the signature, ``exp`` (required), ``nbf``
and ``iat`` with leeway, and the issuer and audience when they are configured. The verified claims
then name the user, the team (which must exist), the role and the end user (docs/jwt-auth.md).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2
import jwt as pyjwt
import orjson
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from gateway_project.config.schema import JWT_ALGORITHMS, GatewayConfig, JwtAuthSettings
from gateway_project.errors import AuthenticationError, PermissionDeniedError, ServiceUnavailableError
from proxy.http import ClientPool
from proxy.pipeline.auth import blocked_team_message
from proxy.pipeline.context import Principal
from proxy.pipeline.nojwt import NoJwtAuth
from teams.cache import TeamRecord, team_lookup
from teams.models import UserRole

logger = logging.getLogger("gateway.jwt")

JWKS_TIMEOUT = 5.0              # seconds one JWKS fetch may take
MAX_JWKS_BYTES = 1 << 20        # a key set is a few KB; a body near this size is not one
MAX_KEYS = 100                  # keys read from one JWKS document
MAX_TEAM_CANDIDATES = 20        # team ids tried from team_ids_jwt_field, in token order
MAX_ID_LENGTH = 255             # the spend log's user and end_user columns

# A compact JWS: three base64url segments; the signature is empty on an unsigned ("alg": "none") token,
# which is still taken for a JWT so that it is refused as one, with a message that says why.
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Registered JWS names, safe to repeat in an error; anything else a caller wrote is not echoed.
_KNOWN_ALGORITHMS = frozenset(JWT_ALGORITHMS) | {"HS256", "HS384", "HS512", "ES256K", "none"}
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_CURVES = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})

MALFORMED = "Authentication Error, JWT is malformed."
EXPIRED = "Authentication Error, JWT has expired."
NOT_YET_VALID = "Authentication Error, JWT is not yet valid (its nbf or iat lies in the future)."
WRONG_ISSUER = "Authentication Error, JWT issuer is not accepted."
WRONG_AUDIENCE = "Authentication Error, JWT audience is not accepted."
BAD_SIGNATURE = "Authentication Error, JWT signature is invalid."
UNKNOWN_KID = "Authentication Error, JWT is signed with an unknown key id (kid)."
AMBIGUOUS_KEY = "Authentication Error, JWT has no key id (kid) and several keys of the key set could verify it."
KEY_MISMATCH = "Authentication Error, JWT algorithm {alg!r} does not fit the key its kid names."
MISSING_CLAIM = "Authentication Error, JWT is missing the {claim!r} claim."
BAD_CLAIM = "Authentication Error, JWT claim {claim!r} must be a string of at most 255 characters."
NO_TEAM = "Authentication Error, JWT names no team ({fields}) and no team_id_default is configured."
UNKNOWN_TEAM = "Authentication Error, Team={team_id} named by the JWT's {source} does not exist."
NO_KNOWN_TEAM = "Authentication Error, none of the teams named by the JWT's {source} exists."
ROLE_NOT_ALLOWED = "Authentication Error, none of the JWT's roles (claim {claim!r}) may use the proxy."
JWKS_UNAVAILABLE = "The identity provider's signing keys (JWKS) could not be fetched; try again shortly."


def algorithm_not_allowed(alg: Any) -> str:
    shown = f" {alg!r}" if alg in _KNOWN_ALGORITHMS else ""
    return f"Authentication Error, JWT algorithm{shown} is not allowed."


# Token shape and header -------------------------------------------------------------------------


def unverified_header(token: str) -> dict[str, Any] | None:
    """The JOSE header of a compact JWS, or None when ``token`` is not shaped like one (a virtual key,
    even one with dots in it, has no base64url JSON object before its first dot)."""
    if not _COMPACT.fullmatch(token):
        return None
    encoded = token.partition(".")[0]
    try:
        header = orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except ValueError:  # binascii.Error and orjson.JSONDecodeError are both ValueErrors
        return None
    return header if isinstance(header, dict) else None


def checked_algorithm(header: Mapping[str, Any], allowed: frozenset[str]) -> str:
    """The header's ``alg`` when the allow-list has it; ``none`` and HS* are never on it."""
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise AuthenticationError(MALFORMED)
    if alg not in allowed or alg not in JWT_ALGORITHMS:
        raise AuthenticationError(algorithm_not_allowed(alg))
    return alg


# Keys -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str | None
    algorithms: frozenset[str]      # what this key may verify
    key: Any                        # a ``cryptography`` public key


def key_algorithms(jwk: Mapping[str, Any]) -> frozenset[str]:
    """The algorithms a JWK may verify: its ``kty`` (and curve) decide, and its ``alg``, if given,
    narrows that to one. Empty for symmetric (``oct``) and encryption keys: those never verify here."""
    if jwk.get("use") not in (None, "sig"):
        return frozenset()
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return frozenset()
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "RSA":
        fitting = _RSA_ALGORITHMS
    elif kty == "EC" and crv in _EC_CURVES:
        fitting = frozenset({_EC_CURVES[crv]})
    elif kty == "OKP" and crv in _OKP_CURVES:
        fitting = frozenset({"EdDSA"})
    else:
        return frozenset()
    alg = jwk.get("alg")
    return fitting if alg is None else fitting & {alg}


def signing_key(jwk: Any) -> SigningKey | None:
    """One JWK as a verification key, or None when it cannot verify a token (logged)."""
    if not isinstance(jwk, dict):
        return None
    kid, algorithms = jwk.get("kid"), key_algorithms(jwk)
    if not algorithms or not (kid is None or isinstance(kid, str)):
        return None
    try:
        key = pyjwt.PyJWK(jwk, algorithm=min(algorithms)).key
    except (pyjwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        logger.warning("JWKS: key %r skipped: %s", kid, exc)
        return None
    if hasattr(key, "public_key"):  # a private key published by mistake: only its public half verifies
        logger.warning("JWKS: key %r carries private key material; the IdP should publish public keys only", kid)
        key = key.public_key()
    return SigningKey(kid=kid, algorithms=algorithms, key=key)


def parse_jwks(body: bytes) -> tuple[SigningKey, ...]:
    """The usable signing keys of a JWKS document (``{"keys": [...]}``, or a bare list of JWKs)."""
    document = orjson.loads(body)
    entries = document.get("keys") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise ValueError("not a JWK set (no 'keys' list)")
    return tuple(key for key in map(signing_key, entries[:MAX_KEYS]) if key is not None)


async def _read_limited(response: httpx2.Response) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_JWKS_BYTES:
            raise ValueError(f"the body exceeds {MAX_JWKS_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class JwksCache:
    """The identity provider's signing keys, fetched from its JWKS URL(s) and kept ``ttl`` seconds.

    A token naming an unknown ``kid`` forces a refresh (the IdP may have rotated its keys), but a fetch
    starts at most once per ``min_refresh_interval`` seconds and concurrent callers on a loop share the
    one in flight, so a flood of made-up kids costs the IdP one request per interval. A failed fetch
    keeps the keys already known: an IdP outage does not lock out callers whose keys are cached.
    """

    def __init__(self, urls: tuple[str, ...], *, clients: ClientPool, ttl: float, min_refresh_interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.urls = urls
        self._clients = clients
        self._ttl = ttl
        self._min_interval = min_refresh_interval
        self._clock = clock
        self._by_url: dict[str, tuple[SigningKey, ...]] = {}
        self._fetched_at = -math.inf     # last fetch that read at least one key set
        self._attempted_at = -math.inf   # last fetch started, whatever came of it
        self._inflight: dict[int, asyncio.Task] = {}   # per event loop: a task belongs to one

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        return tuple(key for url in self.urls for key in self._by_url.get(url, ()))

    async def key_for(self, kid: str | None, alg: str) -> SigningKey:
        """The key that verifies a token with this header; refreshes when stale or when ``kid`` is new."""
        stale = self._clock() - self._fetched_at >= self._ttl
        if stale:
            await self.refresh()
        key = self._match(kid, alg)
        if key is None and not stale:  # a set just fetched is not fetched again for this token
            await self.refresh()
            key = self._match(kid, alg)
        if key is not None:
            return key
        if self._fetched_at == -math.inf:
            raise ServiceUnavailableError(JWKS_UNAVAILABLE)
        raise AuthenticationError(UNKNOWN_KID)

    def _match(self, kid: str | None, alg: str) -> SigningKey | None:
        """None when no key has this kid (or, for a token without one, when no key fits ``alg``)."""
        if kid is not None:
            named = [key for key in self.keys if key.kid == kid]
            fitting = [key for key in named if alg in key.algorithms]
            if named and not fitting:
                raise AuthenticationError(KEY_MISMATCH.format(alg=alg))
            return fitting[0] if fitting else None
        fitting = [key for key in self.keys if alg in key.algorithms]
        if len(fitting) > 1:
            raise AuthenticationError(AMBIGUOUS_KEY)
        return fitting[0] if fitting else None

    async def refresh(self) -> None:
        """Fetch the key sets again, unless a fetch is in flight (then wait for that one) or one
        started less than ``min_refresh_interval`` ago (then keep what is known)."""
        loop = asyncio.get_running_loop()
        task = self._inflight.get(id(loop))
        if task is None:
            if self._clock() - self._attempted_at < self._min_interval:
                return
            self._attempted_at = self._clock()
            # A task of its own: a caller that goes away (client disconnect) does not cancel the
            # fetch the other callers wait for.
            task = loop.create_task(self._fetch_all())
            self._inflight[id(loop)] = task
            task.add_done_callback(lambda _: self._inflight.pop(id(loop), None))
        await asyncio.shield(task)

    async def _fetch_all(self) -> None:
        results = await asyncio.gather(*(self._fetch(url) for url in self.urls))
        for url, keys in zip(self.urls, results):
            if keys is not None:
                self._by_url[url] = keys
        if any(keys is not None for keys in results):
            self._fetched_at = self._clock()

    async def _fetch(self, url: str) -> tuple[SigningKey, ...] | None:
        """The keys published at ``url``, or None (logged) when it cannot be read."""
        parts = urlsplit(url)
        client = self._clients.get(f"{parts.scheme}://{parts.netloc}")
        try:
            async with client.stream("GET", url, timeout=JWKS_TIMEOUT,
                                     headers={"accept": "application/json"}) as response:
                if response.status_code != 200:
                    raise ValueError(f"HTTP {response.status_code}")
                keys = parse_jwks(await _read_limited(response))
        except (httpx2.HTTPError, ValueError) as exc:
            logger.warning("JWKS %s could not be read: %s", url, exc or type(exc).__name__)
            return None
        if not keys:
            logger.warning("JWKS %s holds no usable signing key", url)
        return keys


# Claims → who is calling ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """What a verified token says about its caller, before the team is looked up."""

    user_id: str | None
    role: str
    team_ids: tuple[str, ...]       # candidates, first existing one wins
    team_source: str                # what named them, for error messages
    team_required: bool
    end_user_id: str | None


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """``claims[path]``, else ``path`` walked through nested objects ("realm_access.roles"). The exact
    name wins, because namespaced claim names contain dots ("https://example.com/team")."""
    if path in claims:
        return claims[path]
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _text(value: Any, name: str) -> str | None:
    """A claim used as an id: a string (or an integer) that fits the spend log, or None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or len(value) > MAX_ID_LENGTH:
        raise AuthenticationError(BAD_CLAIM.format(claim=name))
    return value


def _strings(value: Any) -> list[str]:
    """A list-or-string claim (roles, groups, scopes) as a list of its strings."""
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """``scope`` (space-separated, RFC 9068) and ``scopes`` (a list), together."""
    found: set[str] = set()
    for name in ("scope", "scopes"):
        for value in _strings(claims.get(name)):
            found.update(value.split())
    return frozenset(found)


def _check_roles(claims: Mapping[str, Any], config: JwtAuthSettings) -> None:
    field = config.user_roles_jwt_field
    if field is None:
        return
    if not set(_strings(claim(claims, field))) & set(config.user_allowed_roles or ()):
        raise PermissionDeniedError(ROLE_NOT_ALLOWED.format(claim=field))


def _team_candidates(claims: Mapping[str, Any], config: JwtAuthSettings) -> tuple[tuple[str, ...], str]:
    """Team ids to try, in order, and what named them. An explicit team claim never falls back."""
    if config.team_id_jwt_field:
        team_id = _text(claim(claims, config.team_id_jwt_field), config.team_id_jwt_field)
        if team_id:
            return (team_id,), f"claim {config.team_id_jwt_field!r}"
    if config.team_ids_jwt_field:
        field = config.team_ids_jwt_field
        team_ids = tuple(_text(item, field) for item in _strings(claim(claims, field))[:MAX_TEAM_CANDIDATES])
        if any(team_ids):
            return tuple(t for t in team_ids if t), f"claim {field!r}"
    if config.team_id_default:
        return (config.team_id_default,), "team_id_default"
    return (), ""


def identity_from_claims(claims: Mapping[str, Any], config: JwtAuthSettings) -> Identity:
    """The caller a verified token names. Holders of ``admin_jwt_scope`` are proxy admins and skip the
    role allow-list; everyone else needs an allowed role and, when a team claim is configured, a team."""
    admin = config.admin_jwt_scope is not None and config.admin_jwt_scope in scopes(claims)
    if not admin:
        _check_roles(claims, config)
    user_id = None
    if config.user_id_jwt_field:
        user_id = _text(claim(claims, config.user_id_jwt_field), config.user_id_jwt_field)
        if user_id is None:
            raise AuthenticationError(MISSING_CLAIM.format(claim=config.user_id_jwt_field))
    end_user_id = None
    if config.end_user_id_jwt_field:
        end_user_id = _text(claim(claims, config.end_user_id_jwt_field), config.end_user_id_jwt_field)
    team_ids, source = _team_candidates(claims, config)
    team_fields = config.team_id_jwt_field or config.team_ids_jwt_field
    return Identity(user_id=user_id, role=UserRole.PROXY_ADMIN if admin else UserRole.INTERNAL_USER,
                    team_ids=team_ids, team_source=source, team_required=bool(team_fields) and not admin,
                    end_user_id=end_user_id)


async def resolve_team(identity: Identity, config: JwtAuthSettings) -> TeamRecord | None:
    """The first named team that exists. A blocked one refuses the call rather than being skipped:
    blocking a team must not move its members to another team's budget."""
    for team_id in identity.team_ids:
        team = await team_lookup(team_id)
        if team is not None:
            if team.blocked:
                raise AuthenticationError(blocked_team_message(team.team_id))
            return team
    if len(identity.team_ids) == 1:
        raise AuthenticationError(UNKNOWN_TEAM.format(team_id=identity.team_ids[0], source=identity.team_source))
    if identity.team_ids:
        raise AuthenticationError(NO_KNOWN_TEAM.format(source=identity.team_source))
    if identity.team_required:
        fields = " or ".join(repr(f) for f in (config.team_id_jwt_field, config.team_ids_jwt_field) if f)
        raise AuthenticationError(NO_TEAM.format(fields=f"claim {fields}"))
    return None


def principal_token(issuer: str | None, user_id: str | None) -> str:
    """The spend log's ``api_key`` for a JWT caller: stable per issuer and user, and never equal to a
    virtual key's digest (those are 64 hex digits; this starts with ``jwt-``)."""
    return "jwt-" + hashlib.sha256(f"{issuer or ''}\n{user_id or ''}".encode()).hexdigest()[:60]


# The verifier -----------------------------------------------------------------------------------

_FAILURES: tuple[tuple[type[pyjwt.PyJWTError], str], ...] = (
    (pyjwt.ExpiredSignatureError, EXPIRED),
    (pyjwt.ImmatureSignatureError, NOT_YET_VALID),
    (pyjwt.InvalidAudienceError, WRONG_AUDIENCE),
    (pyjwt.InvalidIssuerError, WRONG_ISSUER),
    (pyjwt.InvalidSignatureError, BAD_SIGNATURE),
    (pyjwt.InvalidAlgorithmError, algorithm_not_allowed(None)),
)


def failure_message(exc: pyjwt.PyJWTError) -> str:
    """What PyJWT refused, said without repeating any part of the token."""
    if isinstance(exc, pyjwt.MissingRequiredClaimError):
        return MISSING_CLAIM.format(claim=exc.claim)
    for kind, message in _FAILURES:
        if isinstance(exc, kind):
            return message
    return MALFORMED


class JwtAuth:
    """Verifies bearer JWTs and maps their claims to a Principal (``general_settings.enable_jwt_auth``)."""

    def __init__(self, config: JwtAuthSettings, *, keys: JwksCache, issuer: str | None,
                 audience: str | None) -> None:
        self.config = config
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        # Intersected again here, whatever the config said: HS* and none can never get in.
        self.algorithms = frozenset(config.algorithms) & frozenset(JWT_ALGORITHMS)

    def handles(self, raw: str) -> bool:
        return unverified_header(raw) is not None

    async def authenticate(self, raw: str) -> Principal:
        claims = await self.verify(raw)
        identity = identity_from_claims(claims, self.config)
        team = await resolve_team(identity, self.config)
        issuer = claims.get("iss") if isinstance(claims.get("iss"), str) else None
        return Principal(token=principal_token(issuer, identity.user_id), key=None, team=team,
                         user_id=identity.user_id, role=identity.role, end_user_id=identity.end_user_id)

    async def verify(self, raw: str) -> dict[str, Any]:
        """The token's claims, once its algorithm, key, signature, times, issuer and audience pass."""
        header = unverified_header(raw)
        if header is None:
            raise AuthenticationError(MALFORMED)
        alg = checked_algorithm(header, self.algorithms)
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthenticationError(MALFORMED)
        key = await self.keys.key_for(kid, alg)
        try:
            # Only ``alg`` is passed, already checked against the key: PyJWT cannot pick another.
            return pyjwt.decode(raw, key.key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                                leeway=self.config.leeway,
                                options={"require": ["exp"], "verify_aud": self.audience is not None})
        except pyjwt.PyJWTError as exc:
            raise AuthenticationError(failure_message(exc)) from None


# Built once per process (proxy.runtime) ---------------------------------------------------------


def _configured(value: str | None, name: str, config: GatewayConfig) -> str | None:
    """litellm_jwtauth's own key, else config.yaml's ``environment_variables`` (exported after settings
    were read), else the process environment as settings read it."""
    return value or config.environment_variables.get(name) or getattr(settings, name, None) or None


def _jwks_urls(value: str | None) -> tuple[str, ...]:
    urls = tuple(url.strip() for url in (value or "").split(",") if url.strip())
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ImproperlyConfigured(f"JWT public key URL {url!r} is not an http(s) URL.")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            logger.warning("JWKS %s is fetched over plain http: whoever sits on the path can substitute "
                           "signing keys and mint tokens. Use https.", url)
    return urls


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def jwt_auth_for(config: GatewayConfig, clients: ClientPool) -> JwtAuth | NoJwtAuth:
    """The process's JWT verifier; refuses to start when JWT auth is on without a JWKS URL."""
    general = config.general_settings
    if not general.enable_jwt_auth:
        return NoJwtAuth()
    jwtauth = general.litellm_jwtauth
    urls = _jwks_urls(_configured(jwtauth.public_key_url, "JWT_PUBLIC_KEY_URL", config))
    if not urls:
        raise ImproperlyConfigured(
            "general_settings.enable_jwt_auth is on, but no JWKS URL is configured: set JWT_PUBLIC_KEY_URL "
            "or general_settings.litellm_jwtauth.public_key_url (see docs/jwt-auth.md).")
    issuer = _configured(jwtauth.issuer, "JWT_ISSUER", config)
    audience = _configured(jwtauth.audience, "JWT_AUDIENCE", config)
    if audience is None:
        logger.warning("JWT auth: no audience configured (JWT_AUDIENCE), so tokens the IdP issued for any "
                       "other application are accepted too.")
    keys = JwksCache(urls, clients=clients, ttl=jwtauth.public_key_ttl,
                     min_refresh_interval=jwtauth.public_key_refresh_interval)
    return JwtAuth(jwtauth, keys=keys, issuer=issuer, audience=audience)
