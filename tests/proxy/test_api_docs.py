"""The API docs in-process: Swagger UI at / and /docs from local assets, the spec at /openapi.json,
DOCS_FILTERED keeping only the OpenAI routes. (Branding by env on a live gateway: tests/e2e/test_model_hub.py.)"""
from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client, override_settings

OPENAI_PATHS = {"/chat/completions", "/v1/chat/completions", "/completions", "/v1/completions", "/embeddings",
                "/v1/embeddings", "/models", "/v1/models", "/openai/deployments/{model}/chat/completions",
                "/engines/{model}/chat/completions", "/model/info", "/v1/model/info", "/model_group/info"}


@pytest.fixture
def client() -> Client:
    return Client()


def spec_paths(client: Client) -> set[str]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return set(response.json()["paths"])


def test_spec_carries_the_configured_title_and_description_without_a_key(client):
    info = client.get("/openapi.json").json()["info"]

    assert info["title"] == settings.DOCS_TITLE and info["description"] == settings.DOCS_DESCRIPTION


def test_unfiltered_spec_lists_every_proxy_route(client):
    paths = spec_paths(client)

    assert OPENAI_PATHS <= paths
    assert {"/health", "/spend/calculate", "/public/model_hub", "/model_group/info"} <= paths


@override_settings(DOCS_FILTERED=True)
def test_docs_filtered_keeps_only_the_openai_routes(client):
    assert spec_paths(client) == OPENAI_PATHS | {"/openai/deployments/{model}/embeddings"}


@pytest.mark.parametrize("path", ["/", "/docs"])
def test_swagger_page_uses_local_assets(client, path):
    response = client.get(path)

    html = response.content.decode()
    assert response.status_code == 200
    assert f"<title>{settings.DOCS_TITLE}</title>" in html
    assert '<script src="/static/ninja/swagger-ui-bundle.js">' in html and '"url": "/openapi.json"' in html
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
