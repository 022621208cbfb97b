"""The deployment files (Dockerfile, compose.yaml, deploy/nginx.conf) and the serving defaults."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management.base import CommandError

from proxy.management.commands.gateway import access_logged, worker_count

ROOT = Path(__file__).resolve().parents[2]


def compose_command() -> list[str] | None:
    """A real Compose implementation that validates a file without a Docker daemon: the Docker CLI's
    plugin (`docker compose`), else Compose v1 (`docker-compose`, Debian's package, which
    bin/install-test-deps installs); both check the file against the Compose specification's schema."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                 timeout=30).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


needs_compose = pytest.mark.skipif(compose_command() is None,
                                   reason="neither docker compose nor docker-compose is installed "
                                          "(bin/install-test-deps installs docker-compose)")


def compose_config(directory: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*compose_command(), "-f", "compose.yaml", "config", "--quiet"], cwd=directory,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


SECRETS = {"GATEWAY_MASTER_KEY": "sk-x", "GATEWAY_SECRET_KEY": "x", "POSTGRES_PASSWORD": "x"}


@needs_compose
def test_docker_compose_accepts_the_compose_file():
    result = compose_config(ROOT, SECRETS)
    assert result.returncode == 0, result.stderr


@needs_compose
def test_docker_compose_refuses_the_compose_file_without_its_secrets():
    result = compose_config(ROOT, {name: "" for name in SECRETS} | {"GATEWAY_SECRET_KEY": "x"})
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD" in result.stderr or "set GATEWAY_MASTER_KEY" in result.stderr


@needs_compose
def test_the_compose_validator_is_a_real_one(tmp_path):
    # The same file with one misspelt option and one dependency on a service that does not exist:
    # a validator that accepted it would prove nothing about ours.
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services["services"]["nginx"]["restart_policy"] = "always"
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(services))
    result = compose_config(tmp_path, SECRETS)
    assert result.returncode != 0 and "restart_policy" in result.stderr, result.stderr
    services["services"]["nginx"].pop("restart_policy")
    services["services"]["nginx"]["depends_on"] = ["gateway-3"]
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(services))
    result = compose_config(tmp_path, SECRETS)
    assert result.returncode != 0 and "gateway-3" in result.stderr, result.stderr


def test_compose_runs_two_instances_behind_nginx_with_celery_postgres_and_redis():
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert {"gateway-1", "gateway-2", "nginx", "celery-worker", "celery-beat", "postgres", "redis",
            "migrate"} <= set(services)
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert re.findall(r"server (gateway-\d):4000", nginx) == ["gateway-1", "gateway-2"]
    assert "proxy_buffering off" in nginx  # streams are relayed as they come
    beat = services["celery-beat"]["command"]
    assert beat[:4] == ["celery", "-A", "gateway_project", "beat"]


def test_the_image_runs_as_a_non_root_user_with_a_liveness_healthcheck(client):
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert re.search(r"^USER gateway$", dockerfile, re.M)
    assert "collectstatic" in dockerfile
    probe = re.search(r"^HEALTHCHECK .*?(/health/\w+)", dockerfile, re.M | re.S).group(1)
    assert client.get(probe).status_code == 200


def test_worker_count_defaults(settings):
    settings.GATEWAY_WORKERS = 0
    assert worker_count(3) == 3
    sqlite = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
    assert worker_count(None) == (1 if sqlite else len(os.sched_getaffinity(0)))
    settings.GATEWAY_WORKERS = 5
    assert worker_count(None) == 5
    with pytest.raises(CommandError):
        worker_count(-1)


def test_a_migration_failure_at_start_stops_the_command_with_the_error(tmp_path):
    # --migrate runs in a forked child (the serving process keeps none of the migration machinery):
    # its failure still stops the start, with the database's own error and a non-zero exit.
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/missing-dir/gateway.sqlite3",
           "GATEWAY_MASTER_KEY": "sk-1234", "DJANGO_SETTINGS_MODULE": "gateway_project.settings",
           "GATEWAY_DATA_DIR": str(tmp_path / "var")}
    env.pop("GATEWAY_CONFIG", None)
    done = subprocess.run([sys.executable, "manage.py", "gateway", "--port", "1", "--migrate"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)

    assert done.returncode == 1
    assert "unable to open database file" in done.stderr
    assert "applying the database migrations failed" in done.stderr


def test_the_access_log_is_on_only_where_it_is_printed():
    """uvicorn formats each request's access line (client address, quoted path) before the logger's level is
    looked at: below info it is turned off rather than formatted for nothing."""
    assert [access_logged(level) for level in ("debug", "info", "warning", "error", "critical")] == [
        True, True, False, False, False]
