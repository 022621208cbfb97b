"""Shared helpers for guardrail tests: configs from YAML text, calls, running a coroutine."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from gateway_project.config import GatewayConfig, load_config
from guardrails.base import Call
from guardrails.remote.http import close_clients
from keys.cache import KeyRecord
from teams.cache import TeamRecord
from tests.servers.fake_upstream import StandInClient
from tests.servers.process import ServerProcess, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def chat(*contents: str, **fields: Any) -> dict[str, Any]:
    return {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": text} for text in contents], **fields}


def make_call(body: dict[str, Any], *, key=None, team=None, admin: bool = False,
              call_type: str = "chat") -> Call:
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    return Call(body=body, call_type=call_type, key=key, team=team, metadata=metadata, admin=admin)


def run(coroutine):
    """Run ``coroutine`` as the proxy would, then close the guardrail services' pooled clients.

    ``async_to_sync`` keeps database work (the customer cache) on the test's own connection."""

    async def main():
        try:
            return await coroutine
        finally:
            await close_clients()

    return async_to_sync(main)()


@pytest.fixture
def config_from(tmp_path: Path):
    """``config_from(yaml_text)``: the GatewayConfig of a config.yaml written to a temporary folder.
    Its ``environment_variables`` are exported as at start-up, and removed after the test."""
    saved = dict(os.environ)

    def load(text: str) -> GatewayConfig:
        path = tmp_path / "config.yaml"
        path.write_text(text)
        return load_config(path)

    yield load
    os.environ.clear()
    os.environ.update(saved)


def key_record(**fields: Any) -> KeyRecord:
    values = dict(token="digest", key_name="sk-...abcd", key_alias=None, team_id=None, user_id=None, user_role=None,
                  models=(), metadata={}, permissions={}, enforced_params=(), allowed_ips=(), allowed_routes=(),
                  tags=(), max_budget=None, spend=0.0, tpm_limit=None, rpm_limit=None, max_parallel_requests=None,
                  expires=None, blocked=False)
    return KeyRecord(**{**values, **fields})


def team_record(**fields: Any) -> TeamRecord:
    values = dict(team_id="team-1", team_alias=None, models=(), metadata={}, blocked=False, max_budget=None,
                  spend=0.0, tpm_limit=None, rpm_limit=None, max_parallel_requests=None)
    return TeamRecord(**{**values, **fields})


@contextmanager
def stand_in(log_dir: Path, module: str, *args: str):
    """A guardrail service stand-in on 127.0.0.1 (a real process), and its StandInClient."""
    port = free_port()
    server = ServerProcess([sys.executable, "-m", module, "--port", str(port), *args], log_dir=log_dir,
                           name=module.rsplit(".", 1)[-1], cwd=REPO_ROOT)
    with server:
        server.wait_until_ready(f"http://127.0.0.1:{port}/_stand_in/health", timeout=15)
        with StandInClient(f"http://127.0.0.1:{port}") as client:
            yield client
