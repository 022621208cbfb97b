"""The model hub and the branded API docs on a live gateway: public and per-key views, the JSON routes,
the server-rendered page in headless Chromium, the OpenAPI spec and Swagger UI without any network."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import MASTER_KEY, ROOT, UPSTREAM_KEY, launch_gateway
from tests.servers.process import free_port

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TITLE, DESCRIPTION = "TotalGPT", "Sample Company Description"
# Screenshots kept for a person to look at (var/ is not committed).
ARTEFACTS = ROOT / "var" / "test-artifacts" / "model-hub"


def hub_config(dead_base: str) -> str:
    upstream = f"api_base: {dead_base}\n      api_key: os.environ/E2E_UPSTREAM_KEY"
    return f"""
model_list:
  - model_name: house-gpt
    litellm_params:
      model: openai/house-gpt
      {upstream}
      rpm: 60
      tpm: 100000
      input_cost_per_token: 0.0000025
      output_cost_per_token: 0.00001
    model_info:
      max_input_tokens: 128000
  - model_name: house-gpt
    litellm_params:
      model: openai/house-gpt-eu
      {upstream}
      rpm: 40
      tpm: 50000
      input_cost_per_token: 0.000002
      output_cost_per_token: 0.000012
    model_info:
      max_tokens: 8192
  - model_name: text-embedder
    litellm_params:
      model: openai/text-embedding-3-small
      {upstream}
    model_info:
      mode: embedding
  - model_name: internal-beta
    litellm_params:
      model: openai/house-beta
      {upstream}
    model_info:
      access_groups: [beta-models]
general_settings:
  master_key: {MASTER_KEY}
  enable_public_model_hub: true
litellm_settings:
  public_model_groups: [house-gpt, text-embedder]
"""


@pytest.fixture(scope="module")
def dead_base() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


@pytest.fixture(scope="module")
def hub(e2e_dir, dead_base):
    env = {"DOCS_TITLE": TITLE, "DOCS_DESCRIPTION": DESCRIPTION, "DOCS_FILTERED": "True"}
    with launch_gateway(e2e_dir, hub_config(dead_base), name="model-hub", env=env) as live:
        yield live


def by_name(entries: list[dict]) -> dict[str, dict]:
    return {entry["model_group"]: entry for entry in entries}


def assert_no_upstream_secrets(text: str, dead_base: str) -> None:
    assert UPSTREAM_KEY not in text
    assert dead_base.split("//")[1].split("/")[0] not in text  # host:port of the upstream
    assert "api_base" not in text and "api_key" not in text


# --- JSON ---------------------------------------------------------------------------------------------------

def test_public_hub_lists_the_public_groups_with_prices_limits_and_context(hub, dead_base):
    response = hub.http.get("/public/model_hub")

    assert response.status_code == 200, response.text
    models = by_name(response.json())
    assert sorted(models) == ["house-gpt", "text-embedder"]
    gpt = models["house-gpt"]
    assert gpt["providers"] == ["openai"] and gpt["mode"] == "chat"
    # The highest price any deployment charges; limits summed; the largest context window.
    assert gpt["input_cost_per_million_tokens"] == 2.5 and gpt["output_cost_per_million_tokens"] == 12.0
    assert gpt["input_cost_per_token"] == pytest.approx(2.5e-6)
    assert (gpt["rpm"], gpt["tpm"], gpt["max_input_tokens"]) == (100, 150000, 128000)
    embedder = models["text-embedder"]
    assert embedder["mode"] == "embedding"
    assert embedder["input_cost_per_million_tokens"] == 0.02  # from the built-in price table
    assert embedder["rpm"] is None and embedder["is_public_model_group"] is True
    assert_no_upstream_secrets(response.text, dead_base)


def test_with_a_key_the_hub_shows_what_that_key_may_call(hub, dead_base):
    beta_key = hub.new_key(models=["beta-models"])          # an access group
    gpt_key = hub.new_key(models=["house-gpt"])

    beta = hub.http.get("/public/model_hub", headers={"Authorization": f"Bearer {beta_key}"})
    info = hub.http.get("/model_group/info", headers={"Authorization": f"Bearer {gpt_key}"})
    admin = hub.admin("GET", "/model_group/info")

    assert [m["model_group"] for m in beta.json()] == ["internal-beta"]
    assert beta.json()[0]["is_public_model_group"] is False
    assert [m["model_group"] for m in info.json()["data"]] == ["house-gpt"]
    assert sorted(by_name(admin.json()["data"])) == ["house-gpt", "internal-beta", "text-embedder"]
    assert_no_upstream_secrets(admin.text, dead_base)


def test_a_bad_key_is_refused_even_when_the_hub_is_public(hub):
    response = hub.http.get("/public/model_hub", headers={"Authorization": "Bearer sk-not-a-key"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "401"


def test_model_group_info_needs_a_key(hub):
    response = hub.http.get("/model_group/info")

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Authentication Error, No api key passed in."


def test_hub_info_carries_the_docs_branding(hub):
    body = hub.http.get("/public/model_hub/info").json()

    assert body["docs_title"] == TITLE and body["custom_docs_description"] == DESCRIPTION


def test_without_enable_public_model_hub_the_hub_needs_a_key(gateway):
    for path in ("/public/model_hub", "/model_hub"):
        response = gateway.http.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["type"] == "auth_error"
    key = gateway.new_key(models=["claude"])
    listed = gateway.http.get("/public/model_hub", headers={"x-litellm-api-key": key})
    page = gateway.http.get("/model_hub", headers={"Authorization": f"Bearer {key}"})
    assert [m["model_group"] for m in listed.json()] == ["claude"]
    assert page.status_code == 200 and 'data-model="claude"' in page.text
    assert 'data-model="gpt-3.5-turbo"' not in page.text


# --- The page ---------------------------------------------------------------------------------------------------

def test_hub_page_is_server_rendered_and_self_contained(hub, dead_base):
    response = hub.http.get("/model_hub")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert f"<title>Model hub | {TITLE}</title>" in html and DESCRIPTION in html
    assert 'data-model="house-gpt"' in html and 'data-model="text-embedder"' in html
    assert 'data-model="internal-beta"' not in html
    assert '<td class="number">2.5</td>' in html and '<td class="number">12</td>' in html  # $ per 1M tokens
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert_no_upstream_secrets(html, dead_base)


def chromium(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-dev-shm-usage", "--proxy-server=direct://", *args],
                          capture_output=True, text=True, timeout=timeout)


needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="chromium is not installed (bin/install-test-deps installs it)")


@needs_chromium
def test_hub_page_in_headless_chromium(hub):
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTEFACTS / "model_hub.png"
    screenshot.unlink(missing_ok=True)
    url = f"{hub.base_url}/model_hub"

    dom = chromium("--dump-dom", url)
    shot = chromium(f"--screenshot={screenshot}", "--window-size=1280,600", "--hide-scrollbars", url)

    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<tr data-model="house-gpt">' in dom.stdout and '<tr data-model="text-embedder">' in dom.stdout
    assert "internal-beta" not in dom.stdout
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 5000


# --- The API docs ------------------------------------------------------------------------------------------------

def test_openapi_spec_is_branded_and_filtered(hub):
    response = hub.http.get("/openapi.json")

    assert response.status_code == 200
    spec = response.json()
    assert spec["info"]["title"] == TITLE and spec["info"]["description"] == DESCRIPTION
    paths = set(spec["paths"])
    assert {"/chat/completions", "/v1/chat/completions", "/embeddings", "/models", "/model_group/info"} <= paths
    assert not paths & {"/health", "/spend/calculate", "/public/model_hub", "/health/liveliness"}


@needs_chromium
def test_swagger_ui_renders_from_local_assets(hub):
    """The Swagger page at / loads its script and styles from the gateway itself and renders the spec:
    with no network but 127.0.0.1, the title only appears once the local bundle fetched /openapi.json."""
    page = hub.http.get("/")
    for asset in ("/static/ninja/swagger-ui-bundle.js", "/static/ninja/swagger-ui.css"):
        assert asset in page.text
        assert hub.http.get(asset).status_code == 200, asset
    assert "cdn" not in page.text.lower()

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTEFACTS / "swagger.png"
    screenshot.unlink(missing_ok=True)
    dom = chromium("--virtual-time-budget=10000", "--dump-dom", f"{hub.base_url}/")
    chromium("--virtual-time-budget=10000", f"--screenshot={screenshot}", "--window-size=1280,900",
             f"{hub.base_url}/")

    assert dom.returncode == 0, dom.stderr[-2000:]
    assert TITLE in dom.stdout and DESCRIPTION in dom.stdout and "/v1/chat/completions" in dom.stdout
    assert screenshot.exists()
