"""A stand-in Google Secret Manager (REST) with the OAuth token endpoint a service account uses, for the
secret-manager tests.

    python -m tests.servers.fake_google_secrets --host 127.0.0.1 --port 8195 --project P \\
        [--service-account-key public.pem]

API (every request is recorded):
    POST /token                 OAuth 2 JWT-bearer grant, as google-auth's service-account credentials
                                send it to their ``token_uri``: the assertion must be an RS256 JWT (signed by
                                --service-account-key, when given, for Google's token audience) → {"access_token", …}
    GET  /v1/projects/{project}/secrets/{secret}/versions/latest:access
                                {"name", "payload": {"data": base64}}; needs ``Authorization: Bearer`` with a
                                token issued above (else 401 UNAUTHENTICATED). Another project, or a secret
                                listed as denied, is Google's 403 PERMISSION_DENIED; an unknown secret is 404.

Control endpoints (not recorded), besides fake_upstream's ``/_stand_in/health|requests|behaviour``:
    POST /_stand_in/secrets     {"secrets": {NAME: value or null}, "denied": [NAME…]}: merge; null removes
Test side: ``GoogleSecretsStandIn`` (seed secrets, read the recorded requests), ``service_account_file``.
"""
from __future__ import annotations

import argparse
import base64
import re
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson

from tests.servers.fake_upstream import CONTROL_PREFIX, Request, Send, StandInApp, StandInClient, send_json

PROJECT_NUMBER = "123456789012"
_ACCESS = re.compile(r"/v1/projects/(?P<project>[^/]+)/secrets/(?P<secret>[^/]+)/versions/latest:access")
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # google-auth's ``aud``, whatever the token_uri


def google_error(status: int, code: str, message: str) -> dict:
    return {"error": {"code": status, "message": message, "status": code}}


class GoogleSecretsStandInApp(StandInApp):
    def __init__(self, project: str, public_key: str | None) -> None:
        super().__init__()
        self.project, self.public_key = project, public_key
        self.secrets: dict[str, str] = {}
        self.denied: set[str] = set()
        self.tokens: set[str] = set()

    async def api(self, request: Request, send: Send) -> None:
        if await self.injected_failure(send):
            return
        if (request.method, request.path) == ("POST", "/token"):
            await self.token(request, send)
            return
        route = _ACCESS.fullmatch(request.path)
        if route is None or request.method != "GET":
            await send_json(send, 404, google_error(404, "NOT_FOUND", f"Unknown path {request.path}"))
            return
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer not in self.tokens:
            await send_json(send, 401, google_error(401, "UNAUTHENTICATED", "Request had invalid authentication "
                                                                            "credentials."))
            return
        project, name = route["project"], route["secret"]
        if project != self.project or name in self.denied:
            await send_json(send, 403, google_error(403, "PERMISSION_DENIED", "Permission "
                            f"'secretmanager.versions.access' denied for resource 'projects/{project}/secrets/"
                            f"{name}/versions/latest' (or it may not exist)."))
        elif name not in self.secrets:
            await send_json(send, 404, google_error(404, "NOT_FOUND", f"Secret [projects/{PROJECT_NUMBER}/secrets/"
                                                                      f"{name}] not found or has no versions."))
        else:
            await send_json(send, 200, {"name": f"projects/{PROJECT_NUMBER}/secrets/{name}/versions/1",
                                        "payload": {"data": base64.b64encode(self.secrets[name].encode()).decode()}})

    async def token(self, request: Request, send: Send) -> None:
        form = parse_qs(request.body if isinstance(request.body, str) else "")
        assertion = form.get("assertion", [""])[0]
        if form.get("grant_type", [""])[0] != JWT_BEARER or not self.valid_assertion(assertion):
            await send_json(send, 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
            return
        token = "ya29.stand-in-" + secrets.token_urlsafe(16)
        self.tokens.add(token)
        await send_json(send, 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def valid_assertion(self, assertion: str) -> bool:
        import jwt

        try:
            if self.public_key is None:
                jwt.decode(assertion, options={"verify_signature": False})
            else:
                jwt.decode(assertion, self.public_key, algorithms=["RS256"], audience=GOOGLE_TOKEN_AUDIENCE)
        except jwt.PyJWTError:
            return False
        return True

    async def control(self, request: Request, send: Send) -> None:
        if (request.method, request.path) != ("POST", CONTROL_PREFIX + "secrets"):
            await super().control(request, send)
            return
        body = request.json_object()
        for name, value in (body.get("secrets") or {}).items():
            if value is None:
                self.secrets.pop(name, None)
            else:
                self.secrets[name] = value
        self.denied.update(body.get("denied") or ())
        await send_json(send, 200, {"secrets": sorted(self.secrets), "denied": sorted(self.denied)})


# Test side --------------------------------------------------------------------------------------


class GoogleSecretsStandIn(StandInClient):
    def seed(self, secrets: dict[str, str | None] | None = None, denied: list[str] = ()) -> None:
        self._call("POST", "/secrets", json={"secrets": secrets or {}, "denied": list(denied)})

    def accesses(self, name: str, project: str) -> list[dict[str, Any]]:
        return self.requests(f"/v1/projects/{project}/secrets/{name}/versions/latest:access")


def service_account_file(directory: Path, token_uri: str, project: str) -> tuple[Path, Path]:
    """A service-account key file (as Google issues them) whose token_uri is the stand-in, and the PEM
    of its public key: (key file, public key file)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    public = directory / "service-account-public.pem"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    info = {"type": "service_account", "project_id": project, "private_key_id": secrets.token_hex(20),
            "private_key": private_pem, "client_email": f"gateway@{project}.iam.gserviceaccount.com",
            "client_id": str(int(time.time())), "token_uri": token_uri}
    path = directory / "service-account.json"
    path.write_bytes(orjson.dumps(info))
    return path, public


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A stand-in Google Secret Manager REST API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--project", required=True, help="the project whose secrets it serves")
    parser.add_argument("--service-account-key", help="PEM public key that must sign token assertions")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    import uvicorn

    public_key = Path(args.service_account_key).read_text() if args.service_account_key else None
    print(f"stand-in Google Secret Manager on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(GoogleSecretsStandInApp(args.project, public_key), host=args.host, port=args.port,
                log_level=args.log_level, lifespan="off", access_log=False)


if __name__ == "__main__":
    main()
