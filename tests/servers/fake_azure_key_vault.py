"""A stand-in Azure Key Vault (secrets, over TLS) with an App Service managed-identity token endpoint,
for the secret-manager tests.

    python -m tests.servers.fake_azure_key_vault --host 127.0.0.1 --port 8196 \\
        --certfile cert.pem --keyfile key.pem --identity-header H

API (every request is recorded):
    GET /msi/token?api-version=2019-08-01&resource=R   App Service managed identity, as azure-identity asks it
                                  when IDENTITY_ENDPOINT / IDENTITY_HEADER are set: needs ``X-IDENTITY-HEADER: H``
                                  → {"access_token", "expires_on", "resource", "token_type"}
    GET /secrets/{name}[/{version}]?api-version=V
                                  {"value", "id", "attributes"}. Without a bearer token: Key Vault's 401
                                  challenge; with one not issued here: 401. Names are case-insensitive. An
                                  unknown secret is 404 SecretNotFound; a denied one 403 Forbidden.

The challenge's ``resource`` is ``https://0.0.1:<port>``: the SDK checks that the vault's host ends with
``.<resource host>`` (myvault.vault.azure.net / vault.azure.net), and for 127.0.0.1:<port> that suffix is it.

Control endpoints (not recorded), besides fake_upstream's ``/_stand_in/health|requests|behaviour``:
    POST /_stand_in/secrets     {"secrets": {NAME: value or null}, "denied": [NAME…]}: merge; null removes
Test side: ``AzureKeyVaultStandIn`` (seed secrets over the TLS port) and ``self_signed_certificate``.
"""
from __future__ import annotations

import argparse
import datetime
import ipaddress
import re
import secrets
import time
from pathlib import Path
from urllib.parse import parse_qs

from tests.servers.fake_upstream import CONTROL_PREFIX, Request, Send, StandInApp, StandInClient, send_json

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
_SECRET = re.compile(r"/secrets/(?P<name>[0-9A-Za-z-]{1,127})(?:/(?P<version>[0-9a-f]{32})?)?")
VERSION = "6f0e4a9d2b1c4e8f9a7b3c5d1e2f4a6b"


def vault_error(code: str, message: str, inner: str | None = None) -> dict:
    error: dict = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return {"error": error}


class AzureKeyVaultStandInApp(StandInApp):
    def __init__(self, port: int, identity_header: str) -> None:
        super().__init__()
        self.port, self.identity_header = port, identity_header
        self.secrets: dict[str, str] = {}  # by lower-case name
        self.denied: set[str] = set()
        self.tokens: set[str] = set()

    @property
    def resource(self) -> str:
        return f"https://0.0.1:{self.port}"

    async def api(self, request: Request, send: Send) -> None:
        if await self.injected_failure(send):
            return
        query = parse_qs(request.query)
        if (request.method, request.path) == ("GET", "/msi/token"):
            await self.managed_identity_token(request, query, send)
            return
        route = _SECRET.fullmatch(request.path)
        if route is None or request.method != "GET" or "api-version" not in query:
            await send_json(send, 400, vault_error("BadParameter", f"Unsupported request {request.method} "
                                                                   f"{request.path}?{request.query}"))
            return
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            challenge = (f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
                         f'resource="{self.resource}"')
            missing = vault_error("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
            await send_json(send, 401, missing, [(b"www-authenticate", challenge.encode())])
        elif authorization.removeprefix("Bearer ") not in self.tokens:
            await send_json(send, 401, vault_error("Unauthorized", "AKV10032: Invalid issuer."))
        else:
            await self.secret(route["name"], send)

    async def secret(self, name: str, send: Send) -> None:
        key = name.lower()
        if key in self.denied:
            await send_json(send, 403, vault_error(
                "Forbidden", "The user, group or application does not have secrets get permission on key vault "
                             "'stand-in;location=westeurope'.", "AccessDenied"))
        elif key not in self.secrets:
            await send_json(send, 404, vault_error(
                "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault."))
        else:
            now = int(time.time())
            await send_json(send, 200, {
                "value": self.secrets[key], "id": f"https://127.0.0.1:{self.port}/secrets/{name}/{VERSION}",
                "attributes": {"enabled": True, "created": now, "updated": now,
                               "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}})

    async def managed_identity_token(self, request: Request, query: dict, send: Send) -> None:
        resource = query.get("resource", [""])[0]
        if request.headers.get("x-identity-header") != self.identity_header:
            await send_json(send, 401, {"statusCode": 401, "message": "Unauthorized: X-IDENTITY-HEADER is wrong"})
        elif resource != self.resource:
            await send_json(send, 400, {"statusCode": 400, "message": f"Unknown resource {resource!r}"})
        else:
            token = "eyJ0eXAi.stand-in." + secrets.token_urlsafe(16)
            self.tokens.add(token)
            await send_json(send, 200, {"access_token": token, "expires_on": str(int(time.time()) + 3600),
                                        "resource": resource, "token_type": "Bearer"})

    async def control(self, request: Request, send: Send) -> None:
        if (request.method, request.path) != ("POST", CONTROL_PREFIX + "secrets"):
            await super().control(request, send)
            return
        body = request.json_object()
        for name, value in (body.get("secrets") or {}).items():
            if value is None:
                self.secrets.pop(name.lower(), None)
            else:
                self.secrets[name.lower()] = value
        self.denied.update(name.lower() for name in body.get("denied") or ())
        await send_json(send, 200, {"secrets": sorted(self.secrets), "denied": sorted(self.denied)})


# Test side --------------------------------------------------------------------------------------


class AzureKeyVaultStandIn(StandInClient):
    """``StandInClient`` over the stand-in's TLS port (its certificate trusted through ``ca_file``)."""

    def __init__(self, base_url: str, ca_file: Path) -> None:
        import ssl

        import httpx2

        self.base_url = base_url.rstrip("/")
        self._http = httpx2.Client(base_url=self.base_url + CONTROL_PREFIX.rstrip("/"), timeout=10.0,
                                   trust_env=False, verify=ssl.create_default_context(cafile=str(ca_file)))

    def seed(self, secrets: dict[str, str | None] | None = None, denied: list[str] = ()) -> None:
        self._call("POST", "/secrets", json={"secrets": secrets or {}, "denied": list(denied)})


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A key and a self-signed certificate for 127.0.0.1 (its own CA): (cert file, key file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stand-in key vault")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "key-vault-cert.pem", directory / "key-vault-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A stand-in Azure Key Vault (secrets) over TLS.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--certfile", required=True)
    parser.add_argument("--keyfile", required=True)
    parser.add_argument("--identity-header", required=True, help="the X-IDENTITY-HEADER the token endpoint wants")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    import uvicorn

    print(f"stand-in Azure Key Vault on https://{args.host}:{args.port}", flush=True)
    uvicorn.run(AzureKeyVaultStandInApp(args.port, args.identity_header), host=args.host, port=args.port,
                ssl_certfile=args.certfile, ssl_keyfile=args.keyfile, log_level=args.log_level, lifespan="off",
                access_log=False, timeout_graceful_shutdown=1)  # clients' idle TLS keep-alives hold it up


if __name__ == "__main__":
    main()
