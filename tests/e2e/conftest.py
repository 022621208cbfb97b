"""One live gateway and one stand-in upstream per test session, as real processes on 127.0.0.1.

The gateway gets a database of its own (a fresh PostgreSQL database when the suite runs on
PostgreSQL, a fresh SQLite file otherwise), migrated by ``manage.py gateway --migrate`` exactly as an
operator would, and is driven over HTTP only.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import openai
import pytest

from tests.servers.fake_upstream import StandInClient
from tests.servers.database import fresh_database
from tests.servers.process import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
MASTER_KEY = "sk-e2e-master-key"
UPSTREAM_KEY = "sk-upstream-secret-never-shown"

T = TypeVar("T")


def wait_for(check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; fail with its last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        time.sleep(interval)


def _fresh_database_url(tmp_dir: Path) -> tuple[str, Callable[[], None]]:
    """A database for the live gateway, and how to drop it."""
    return fresh_database("gateway_e2e", tmp_dir)


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@contextmanager
def launch_stand_in(e2e_dir: Path, name: str, module: str = "tests.servers.fake_upstream"):
    """A stand-in provider process that requires the upstream key like a real one."""
    port = free_port()
    server = ServerProcess([sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port),
                            "--api-key", UPSTREAM_KEY], log_dir=e2e_dir, name=name, cwd=ROOT)
    with server:
        server.wait_until_ready(port)
        yield StandInClient(f"http://127.0.0.1:{port}")


@pytest.fixture(scope="session")
def upstream(e2e_dir):
    with launch_stand_in(e2e_dir, "upstream") as client:
        yield client


@pytest.fixture(scope="session")
def azure_upstream(e2e_dir):
    with launch_stand_in(e2e_dir, "azure-upstream", module="tests.servers.fake_azure") as client:
        yield client


@pytest.fixture(scope="session")
def anthropic_upstream(e2e_dir):
    with launch_stand_in(e2e_dir, "anthropic-upstream", module="tests.servers.fake_anthropic") as client:
        yield client


@pytest.fixture
def anthropic_stand_in(anthropic_upstream):
    anthropic_upstream.reset()
    anthropic_upstream.clear()
    yield anthropic_upstream
    anthropic_upstream.reset()


@pytest.fixture
def azure_stand_in(azure_upstream):
    azure_upstream.reset()
    azure_upstream.clear()
    yield azure_upstream
    azure_upstream.reset()


@pytest.fixture
def stand_in(upstream):
    """The stand-in, its recorded requests and failure injection cleared for this test."""
    upstream.reset()
    upstream.clear()
    yield upstream
    upstream.reset()


def gateway_config(upstream_base: str, dead_port: int, azure_base: str, anthropic_base: str) -> str:
    return f"""
model_list:
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: openai/gpt-3.5-turbo
      api_base: {upstream_base}/v1
      api_key: os.environ/E2E_UPSTREAM_KEY
  - model_name: priced-model
    litellm_params:
      model: openai/house-model
      api_base: {upstream_base}/v1
      api_key: os.environ/E2E_UPSTREAM_KEY
      input_cost_per_token: 0.0001
      output_cost_per_token: 0.0002
  - model_name: unpriced-model
    litellm_params:
      model: openai/house-model-without-price
      api_base: {upstream_base}/v1
      api_key: os.environ/E2E_UPSTREAM_KEY
  - model_name: dead-model
    litellm_params:
      model: openai/gpt-4o
      api_base: http://127.0.0.1:{dead_port}/v1
      api_key: os.environ/E2E_UPSTREAM_KEY
  - model_name: fake-openai-endpoint
    litellm_params:
      model: fake/fake-openai-endpoint
  - model_name: azure-gpt
    litellm_params:
      model: azure/my-gpt4o-deployment
      api_base: {azure_base}
      api_key: os.environ/E2E_UPSTREAM_KEY
      api_version: "2024-10-21"
  - model_name: claude
    litellm_params:
      model: anthropic/claude-3-5-sonnet-20241022
      api_base: {anthropic_base}
      api_key: os.environ/E2E_UPSTREAM_KEY
general_settings:
  master_key: {MASTER_KEY}
"""


class Gateway:
    def __init__(self, base_url: str, process: ServerProcess) -> None:
        self.base_url = base_url
        self.process = process
        self.http = httpx2.Client(base_url=base_url, timeout=30, trust_env=False)

    def admin(self, method: str, path: str, **kwargs) -> httpx2.Response:
        headers = {"Authorization": f"Bearer {MASTER_KEY}", **kwargs.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    def new_key(self, **fields: Any) -> str:
        response = self.admin("POST", "/key/generate", json=fields)
        assert response.status_code == 200, response.text
        return response.json()["key"]

    def sdk(self, api_key: str = MASTER_KEY, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(api_key=api_key, base_url=self.base_url, max_retries=0, **kwargs)

    def spend_logs(self, **params) -> list[dict]:
        response = self.admin("GET", "/spend/logs", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def spend_row(self, request_id: str) -> dict:
        """The spend row of ``request_id``, once the batch writer has written it."""
        rows = wait_for(lambda: self.spend_logs(request_id=request_id))
        assert len(rows) == 1, rows
        return rows[0]


@contextmanager
def launch_gateway(e2e_dir: Path, config_text: str, name: str = "gateway", env: dict[str, str] | None = None,
                   database_url: str | None = None, workers: int = 1, port: int | None = None):
    """A live gateway on a database of its own, started as an operator would (``env``: extra variables;
    ``database_url``: share a database another instance uses, which then outlives this one; ``port``: a
    port chosen beforehand, for a server that must know the gateway's URL first, such as an IdP)."""
    if database_url is None:
        database_url, drop_database = _fresh_database_url(e2e_dir)
    else:
        drop_database = lambda: None  # noqa: E731  (the owner drops it)
    config = e2e_dir / f"{name}.yaml"
    config.write_text(config_text)
    port = port or free_port()
    child_env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "gateway_project.settings",
                 "GATEWAY_DATA_DIR": str(e2e_dir / "data"), "E2E_UPSTREAM_KEY": UPSTREAM_KEY,
                 "GATEWAY_SPEND_FLUSH_INTERVAL": "0.05", **(env or {})}
    child_env.pop("GATEWAY_MASTER_KEY", None)
    process = ServerProcess([sys.executable, "manage.py", "gateway", "--config", str(config), "--port", str(port),
                             "--migrate", "--workers", str(workers)], log_dir=e2e_dir, name=name, env=child_env,
                            cwd=ROOT)
    try:
        with process:
            process.wait_until_ready(f"http://127.0.0.1:{port}/health/liveliness", timeout=60)
            yield Gateway(f"http://127.0.0.1:{port}", process)
    finally:
        drop_database()


@pytest.fixture(scope="session")
def gateway(e2e_dir, upstream, azure_upstream, anthropic_upstream) -> Gateway:
    config = gateway_config(upstream.base_url, dead_port=free_port(), azure_base=azure_upstream.base_url,
                            anthropic_base=anthropic_upstream.base_url)
    with launch_gateway(e2e_dir, config) as live:
        yield live
