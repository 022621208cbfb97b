"""Fixtures for the background jobs: spend logs at given ages, a config with retention and alerts."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gateway_project.config import get_config, set_config
from gateway_project.config.schema import GatewayConfig, GeneralSettings
from spend import alerts
from spend.models import SpendLogTag
from tests.factories import SpendLogFactory
from tests.servers.fake_upstream import StandInClient
from tests.servers.process import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=timezone.utc)


def spend_log(*, age: timedelta = timedelta(0), now: datetime = NOW, tags: tuple[str, ...] = (), **fields):
    """A spend log that started ``age`` before ``now``, with its tag rows."""
    row = SpendLogFactory(start_time=now - age, request_tags=list(tags), **fields)
    SpendLogTag.objects.bulk_create([SpendLogTag(spend_log=row, tag=tag, spend=row.spend, start_time=row.start_time)
                                     for tag in tags])
    return row


@pytest.fixture
def general_settings():
    """``general_settings(**values)``: run the test with these general_settings (and a fresh alerter)."""
    before = get_config()

    def apply(**values) -> GatewayConfig:
        general = GeneralSettings.model_validate({**before.general_settings.model_dump(), **values})
        config = before.model_copy(update={"general_settings": general})
        set_config(config)
        alerts.stop()
        return config

    yield apply
    set_config(before)
    alerts.stop()


@contextmanager
def launch_webhook(log_dir: Path, name: str = "webhook") -> Iterator[StandInClient]:
    port = free_port()
    with ServerProcess([sys.executable, "-m", "tests.servers.fake_webhook", "--port", str(port)],
                       log_dir=log_dir, name=name, cwd=ROOT) as server:
        server.wait_until_ready(port)
        with StandInClient(f"http://127.0.0.1:{port}") as client:
            yield client
