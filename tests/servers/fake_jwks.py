"""A stand-in identity provider for JWT auth tests: its JWKS endpoint, and (test side) its signing keys.

Run it as a real server:

    python -m tests.servers.fake_jwks --host 127.0.0.1 --port 8913 --keys /tmp/jwks.json

API:
    GET /jwks.json            the JSON file given by --keys, read again on every request, so a test
                              rotates keys by rewriting the file; 503 while the file is missing (an
                              IdP outage). Every request here is counted.
Control endpoints (not counted):
    GET /_stand_in/health     readiness probe
    GET /_stand_in/fetches    {"fetches": n}: how many times the key set was requested

Test side: ``IdpKey`` (an RSA, EC or Ed25519 key pair that signs tokens), ``JwksStandIn`` (publish key
sets, count fetches, take the endpoint down), ``running_jwks`` (start the server process), and the
hand-made tokens a real IdP never issues (``unsigned_token``, ``hmac_token``).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

JWKS_PATH = "/jwks.json"
CONTROL_PREFIX = "/_stand_in/"
ROOT = Path(__file__).resolve().parents[2]

Send = Callable[[dict[str, Any]], Awaitable[None]]


async def send_body(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class JwksApp:
    """The raw ASGI app; the fetch counter lives in memory, so run it in one process."""

    def __init__(self, keys_path: Path) -> None:
        self.keys_path = keys_path
        self.fetches = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return  # run with lifespan="off"
        path, method = scope["path"], scope["method"]
        if path == CONTROL_PREFIX + "health":
            await send_body(send, 200, b'{"status": "ok"}')
        elif path == CONTROL_PREFIX + "fetches":
            await send_body(send, 200, orjson.dumps({"fetches": self.fetches}))
        elif path != JWKS_PATH:
            await send_body(send, 404, b'{"error": "not found"}')
        elif method != "GET":
            await send_body(send, 405, b'{"error": "use GET"}')
        else:
            self.fetches += 1
            try:
                body = self.keys_path.read_bytes()
            except FileNotFoundError:
                await send_body(send, 503, b'{"error": "the key set is unavailable"}')
                return
            await send_body(send, 200, body)


# Test side: keys and tokens ----------------------------------------------------------------------


@dataclass(frozen=True)
class IdpKey:
    """A signing key pair of the stand-in IdP. ``alg`` is what it signs with by default."""

    kid: str
    alg: str
    private_key: Any

    def jwk(self, *, with_alg: bool = True, **extra: Any) -> dict[str, Any]:
        """The public half as a JWK (``kty``, the key material, ``kid``, ``use``, and ``alg`` unless told not)."""
        from jwt.algorithms import get_default_algorithms

        public = orjson.loads(get_default_algorithms()[self.alg].to_jwk(self.private_key.public_key()))
        public |= {"kid": self.kid, "use": "sig", **({"alg": self.alg} if with_alg else {}), **extra}
        return public

    def public_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, claims: dict[str, Any], *, alg: str | None = None, headers: dict[str, Any] | None = None,
             kid: str | None = "") -> str:
        """A token over ``claims``; ``kid=None`` leaves the kid out, the default names this key."""
        import jwt

        header = {**({"kid": kid or self.kid} if kid is not None else {}), **(headers or {})}
        return jwt.encode(claims, self.private_key, algorithm=alg or self.alg, headers=header)


def rsa_key(kid: str, alg: str = "RS256") -> IdpKey:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return IdpKey(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str, alg: str = "ES256") -> IdpKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    curve = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}[alg]()
    return IdpKey(kid, alg, ec.generate_private_key(curve))


def ed25519_key(kid: str) -> IdpKey:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return IdpKey(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}"


def unsigned_token(claims: dict[str, Any], *, kid: str | None = None) -> str:
    """``"alg": "none"`` with an empty signature: what an attacker sends hoping nobody checks."""
    return _segments({"alg": "none", "typ": "JWT", **({"kid": kid} if kid else {})}, claims) + "."


def hmac_token(claims: dict[str, Any], secret: bytes, *, kid: str | None = None, alg: str = "HS256") -> str:
    """An HMAC-signed token, made by hand: PyJWT refuses to use a PEM public key as an HMAC secret,
    which is exactly the key-confusion attack (HS256 keyed with the IdP's public key) to be refused."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing_input = _segments({"alg": alg, "typ": "JWT", **({"kid": kid} if kid else {})}, claims)
    return f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), digest).digest())}"


# Test side: the running server -------------------------------------------------------------------


class JwksStandIn:
    """Drives a running fake_jwks server: what it publishes, and how often it was asked."""

    def __init__(self, base_url: str, keys_path: Path) -> None:
        import httpx2

        self.base_url = base_url.rstrip("/")
        self.keys_path = keys_path
        self._http = httpx2.Client(base_url=self.base_url, timeout=10, trust_env=False)

    @property
    def url(self) -> str:
        return self.base_url + JWKS_PATH

    def publish(self, *keys: IdpKey | dict[str, Any]) -> None:
        """Serve these keys from now on (JWKs as given, IdpKeys as their public JWK)."""
        self.publish_raw(orjson.dumps({"keys": [k.jwk() if isinstance(k, IdpKey) else k for k in keys]}))

    def publish_raw(self, body: bytes) -> None:
        # Written aside and renamed: the server never reads half a file.
        staging = self.keys_path.with_suffix(".tmp")
        staging.write_bytes(body)
        os.replace(staging, self.keys_path)

    def take_down(self) -> None:
        """The endpoint answers 503 until the next publish()."""
        self.keys_path.unlink(missing_ok=True)

    def fetches(self) -> int:
        response = self._http.get(CONTROL_PREFIX + "fetches")
        response.raise_for_status()
        return response.json()["fetches"]

    def close(self) -> None:
        self._http.close()


@contextmanager
def running_jwks(log_dir: Path, name: str = "fake-jwks") -> Iterator[JwksStandIn]:
    """A fake_jwks server process serving an empty key set until told otherwise."""
    from tests.servers.process import ServerProcess, free_port

    keys_path = Path(log_dir) / f"{name}.json"
    keys_path.write_bytes(b'{"keys": []}')
    port = free_port()
    server = ServerProcess([sys.executable, "-m", "tests.servers.fake_jwks", "--port", str(port),
                            "--keys", str(keys_path)], log_dir=log_dir, name=name, cwd=ROOT)
    with server:
        server.wait_until_ready(f"http://127.0.0.1:{port}{CONTROL_PREFIX}health", timeout=15)
        stand_in = JwksStandIn(f"http://127.0.0.1:{port}", keys_path)
        try:
            yield stand_in
        finally:
            stand_in.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A stand-in identity provider's JWKS endpoint, for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keys", type=Path, required=True, help="JSON file served as the key set")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    import uvicorn

    print(f"stand-in JWKS on http://{args.host}:{args.port}{JWKS_PATH} serving {args.keys}", flush=True)
    uvicorn.run(JwksApp(args.keys), host=args.host, port=args.port, log_level=args.log_level,
                lifespan="off", access_log=False)


if __name__ == "__main__":
    main()
