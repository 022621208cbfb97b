"""Start the test IdP (``python -m tests.idp``) from a pytest fixture and read its discovery document."""
from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from tests.servers.process import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class IdP:
    base_url: str
    client_id: str
    client_secret: str
    discovery: dict[str, Any]
    pid: int

    def gateway_env(self) -> dict[str, str]:
        """The gateway's GATEWAY_OIDC_* endpoint variables, copied from discovery as docs/sso.md says."""
        return {"GATEWAY_OIDC_CLIENT_ID": self.client_id, "GATEWAY_OIDC_CLIENT_SECRET": self.client_secret,
                "GATEWAY_OIDC_AUTHORIZATION_ENDPOINT": self.discovery["authorization_endpoint"],
                "GATEWAY_OIDC_TOKEN_ENDPOINT": self.discovery["token_endpoint"],
                "GATEWAY_OIDC_USERINFO_ENDPOINT": self.discovery["userinfo_endpoint"],
                "GATEWAY_OIDC_JWKS_URI": self.discovery["jwks_uri"]}


@contextmanager
def launch_idp(tmp_dir: Path, users: Mapping[str, Mapping[str, Any]], *, client_id: str, client_secret: str,
               redirect_uris: Sequence[str]) -> Iterator[IdP]:
    """A running IdP with ``users`` and one confidential client; stopped by pid on exit."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    users_file = tmp_dir / "idp-users.json"
    users_file.write_text(json.dumps(users))
    args = [sys.executable, "-m", "tests.idp", "--port", str(port), "--users", str(users_file),
            "--client-id", client_id, "--client-secret", client_secret, "--data-dir", str(tmp_dir / "idp-data")]
    for uri in redirect_uris:
        args += ["--redirect-uri", uri]
    discovery_url = f"{base}/o/.well-known/openid-configuration"
    with ServerProcess(args, log_dir=tmp_dir, name="idp", cwd=ROOT) as process:
        # Migrations run before the server binds, so allow a slow, shared machine some time.
        process.wait_until_ready(discovery_url, timeout=60)
        discovery = httpx2.get(discovery_url).raise_for_status().json()
        yield IdP(base, client_id, client_secret, discovery, process.pid)
