"""A serving process loads only what it uses (docs/performance.md, "Memory"): with the built-in demo config,
serving proxy calls never imports Celery, the management API's DRF views, SSO or JWT libraries, the secret
managers' or guardrails' SDKs, Redis, websockets or the migrations it applied at start; a management call still works, loading its part then.

The gateway is the real `manage.py gateway` (one worker, so this process serves), started through a small
wrapper that writes the names in ``sys.modules`` to a file when sent SIGUSR1, with those whose module
dictionary the garbage collector still walks (not frozen: gateway_project/heap.py). No sizes are asserted."""
from __future__ import annotations

import json
import os
import signal
import sys

import httpx2
import pytest

from tests.e2e.conftest import MASTER_KEY, ROOT, _fresh_database_url, wait_for
from tests.servers.process import ServerProcess, free_port

pytestmark = pytest.mark.e2e

# argv: <dump file prefix> <manage.py arguments...>; each SIGUSR1 writes <prefix>-<n>.json.
WRAPPER = """
import gc, json, runpy, signal, sys
prefix = sys.argv.pop(1)
dumps = [0]
def dump(signum, frame):
    dumps[0] += 1
    walked = {id(obj) for obj in gc.get_objects() if type(obj) is dict}
    modules = dict(sys.modules)
    with open(f"{prefix}-{dumps[0]}.json.tmp", "w") as f:
        json.dump({"loaded": sorted(modules),
                   "walked": sorted(name for name, module in modules.items()
                                    if id(getattr(module, "__dict__", None)) in walked)}, f)
    import os
    os.replace(f"{prefix}-{dumps[0]}.json.tmp", f"{prefix}-{dumps[0]}.json")
signal.signal(signal.SIGUSR1, dump)
sys.argv[0] = "manage.py"
runpy.run_path("manage.py", run_name="__main__")
"""

# Loaded only when configured or first used: (module, what would need it).
NOT_AT_START = {
    "celery": "background jobs through Redis (REDIS_URL)",
    "kombu": "background jobs through Redis (REDIS_URL)",
    "redis": "REDIS_URL",
    "rest_framework.serializers": "the management API (first management request)",
    "requests": "DRF's compat module, SSO, Google auth",
    "mozilla_django_oidc": "admin SSO (GATEWAY_OIDC_CLIENT_ID)",
    "jwt": "general_settings.enable_jwt_auth or SSO",
    "cryptography": "JWT auth, SSO, cloud SDKs",
    "websockets": "nothing: no WebSocket routes",
    "boto3": "AWS secret manager / KMS / Bedrock guardrails",
    "botocore": "AWS secret manager / KMS / Bedrock guardrails",
    "hvac": "HashiCorp Vault secrets",
    "google.auth": "Google secret manager / moderation",
    "azure": "Azure Key Vault",
    "detect_secrets": "the secret-detection guardrail",
    "django.db.migrations.executor": "migrations: --migrate applies them in a child process",
    "spend.migrations": "migrations: --migrate applies them in a child process",
}


def test_a_proxy_worker_with_the_demo_config_loads_no_unused_sdk_and_the_management_api_on_first_use(
        e2e_dir, tmp_path):
    database_url, drop = _fresh_database_url(e2e_dir)
    env = {**os.environ, "DATABASE_URL": database_url, "GATEWAY_MASTER_KEY": MASTER_KEY,
           "GATEWAY_DATA_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": "gateway_project.settings"}
    for name in ("REDIS_URL", "GATEWAY_CONFIG", "GATEWAY_WORKERS", "PROMETHEUS_MULTIPROC_DIR",
                 "GATEWAY_OIDC_CLIENT_ID", "USE_AWS_KMS"):
        env.pop(name, None)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    prefix = tmp_path / "modules"
    server = ServerProcess([sys.executable, "-c", WRAPPER, str(prefix), "gateway", "--port", str(port),
                            "--workers", "1", "--migrate", "--log-level", "warning"],
                           log_dir=e2e_dir, name="lean-worker", env=env, cwd=ROOT)

    dumps = iter(range(1, 1000))

    def modules() -> dict[str, set[str]]:
        os.kill(server.pid, signal.SIGUSR1)
        path = tmp_path / f"modules-{next(dumps)}.json"
        wait_for(path.exists)
        return {name: set(names) for name, names in json.loads(path.read_text()).items()}

    def loaded_modules() -> set[str]:
        return modules()["loaded"]

    def all_modules_frozen() -> bool:
        """Every module's dictionary out of the full collections' sight (frozen at start-up, or once loaded)."""
        return not modules()["walked"]

    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    body = {"model": "fake-openai-endpoint", "messages": [{"role": "user", "content": "hi"}]}
    try:
        with server, httpx2.Client(base_url=base, headers=headers, trust_env=False, timeout=30) as client:
            server.wait_until_ready(f"{base}/health/liveliness", timeout=120)
            assert client.post("/v1/chat/completions", json=body).status_code == 200
            assert client.post("/v1/chat/completions", json={**body, "stream": True}).status_code == 200
            assert client.get("/v1/models").status_code == 200

            at_start = loaded_modules()
            assert "proxy.hotpath" in at_start and "httpx2" in at_start  # the dump sees the serving process
            unexpected = {name: why for name, why in NOT_AT_START.items() if name in at_start}
            assert not unexpected, f"loaded by a proxy worker without being configured: {unexpected}"
            wait_for(all_modules_frozen)

            # The management API still answers from the same process, loading DRF on this first call.
            generated = client.post("/key/generate", json={"key_alias": "lean"})
            assert generated.status_code == 200, generated.text
            assert client.get("/key/info", params={"key": generated.json()["key"]}).status_code == 200
            assert "rest_framework.serializers" in loaded_modules()
            wait_for(all_modules_frozen)   # frozen once loaded: full collections do not walk DRF from now on
            assert client.get("/admin/login/").status_code == 200
        assert server.returncode == 0
    finally:
        drop()
