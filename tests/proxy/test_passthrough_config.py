"""general_settings.pass_through_endpoints: what config.yaml accepts, and the errors that name the entry."""
import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from gateway_project.config import ConfigError, load_config
from gateway_project.config.schema import GeneralSettings, PassThroughEndpoint


def settings_with(*entries: dict) -> GeneralSettings:
    return GeneralSettings(pass_through_endpoints=entries)


def config_error(tmp_path, entries: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(f"general_settings:\n  pass_through_endpoints:\n{entries}")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


def test_an_entry_is_typed_with_litellm_defaults():
    [entry] = settings_with({"path": "/v1/rerank", "target": "https://api.cohere.com/v1/rerank"}).pass_through_endpoints

    assert isinstance(entry, PassThroughEndpoint)
    assert (entry.auth, entry.forward_headers, entry.subpaths, entry.headers) == (False, False, False, {})


def test_a_trailing_star_or_include_subpath_forwards_sub_paths():
    star, flag = settings_with({"path": "/bria/*", "target": "https://a.example"},
                               {"path": "/mistral", "target": "https://b.example", "include_subpath": True},
                               ).pass_through_endpoints

    assert (star.prefix, star.subpaths, flag.prefix, flag.subpaths) == ("/bria", True, "/mistral", True)


def test_an_embedded_environment_reference_in_a_header_is_resolved_at_load(tmp_path, monkeypatch):
    monkeypatch.setenv("COHERE_KEY_FOR_TEST", "co-secret")
    path = tmp_path / "config.yaml"
    path.write_text("""
general_settings:
  pass_through_endpoints:
    - path: /v1/rerank
      target: https://api.cohere.com/v1/rerank
      headers: {Authorization: "bearer os.environ/COHERE_KEY_FOR_TEST", X-Whole: os.environ/COHERE_KEY_FOR_TEST}
""")

    [entry] = load_config(path).general_settings.pass_through_endpoints

    assert entry.headers == {"Authorization": "bearer co-secret", "X-Whole": "co-secret"}


def test_a_missing_header_secret_names_the_entry_and_the_variable(tmp_path):
    message = config_error(tmp_path, """
    - path: /v1/rerank
      target: https://api.cohere.com/v1/rerank
      headers: {Authorization: "bearer os.environ/NOT_SET_FOR_PASSTHROUGH_TEST"}
""")

    assert "general_settings.pass_through_endpoints.0.headers" in message
    assert "NOT_SET_FOR_PASSTHROUGH_TEST is not set" in message


@pytest.mark.parametrize(("entry", "where", "says"), [
    ("{path: v1/rerank, target: 'https://a.example'}", "0.path", "starts with '/'"),
    ("{path: /v1/../rerank, target: 'https://a.example'}", "0.path", "plain segments"),
    ("{path: '/v1//rerank', target: 'https://a.example'}", "0.path", "plain segments"),
    ("{path: /v1/rerank/, target: 'https://a.example'}", "0.path", "plain segments"),
    ("{path: '/v1/*/x', target: 'https://a.example'}", "0.path", "plain segments"),
    ("{path: /v1/%72erank, target: 'https://a.example'}", "0.path", "plain segments"),
    ("{path: /x, target: 'ftp://a.example'}", "0.target", "http:// or https://"),
    ("{path: /x, target: '/relative'}", "0.target", "http:// or https://"),
    ("{path: /x, target: 'https://user:pw@a.example'}", "0.target", "credentials"),
    ("{path: /x, target: 'https://a.example:99999'}", "0.target", "not a valid URL"),
    ("{path: /x, target: 'https://a.example', headers: {Host: evil.example}}", "0.headers", "cannot be configured"),
    ("{path: /x, target: 'https://a.example', headers: {'Bad Name': v}}", "0.headers", "cannot be configured"),
])
def test_a_bad_entry_is_a_config_error_naming_its_field(tmp_path, entry, where, says):
    message = config_error(tmp_path, f"    - {entry}\n")

    assert f"general_settings.pass_through_endpoints.{where}" in message
    assert says in message


@pytest.mark.parametrize("path", [
    "/", "/*", "/chat/completions", "/v1/chat/completions", "/key/generate", "/key/*", "/admin", "/admin/*",
    "/v1/*", "/v1/models", "/spend/logs", "/health/readiness", "/openai/deployments/x/chat/completions",
])
def test_a_path_that_shadows_the_gateways_own_routes_is_refused(tmp_path, path):
    message = config_error(tmp_path, f"    - {{path: '{path}', target: 'https://a.example'}}\n")

    assert f"entry 0 ('{path}') shadows the gateway's own routes" in message


@pytest.mark.parametrize("path", ["/v1/rerank", "/v1/rerank/*", "/cohere/*", "/bria", "/v2/chat/completions"])
def test_a_path_beside_the_gateways_routes_is_accepted(path):
    assert settings_with({"path": path, "target": "https://a.example"}).pass_through_endpoints[0].path == path


@pytest.mark.parametrize(("first", "second", "says"), [
    ("/v1/rerank", "/v1/rerank", "duplicates '/v1/rerank'"),
    ("/cohere", "/cohere/*", "duplicates '/cohere'"),
    ("/cohere/*", "/cohere/v1/rerank", "overlaps '/cohere/*'"),
    ("/cohere/v1/rerank", "/cohere/*", "overlaps '/cohere/v1/rerank'"),
])
def test_duplicate_or_overlapping_paths_are_refused(tmp_path, first, second, says):
    message = config_error(tmp_path, f"    - {{path: '{first}', target: 'https://a.example'}}\n"
                                     f"    - {{path: '{second}', target: 'https://b.example'}}\n")

    assert f"entry 1 ('{second}') {says}" in message


def _route_prefixes(patterns, prefix: str = ""):
    """The literal start of every route the URLconf serves ('key/', 'v1/chat/completions', …)."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _route_prefixes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and not (pattern.name or "").startswith("pass-through"):
            yield re.split(r"[<(^$?*\[\\]", route, maxsplit=1)[0]


def test_every_route_the_gateway_serves_is_protected_from_shadowing():
    """GATEWAY_ROUTES in the schema must cover the URLconf: a new gateway route is added there too."""
    unprotected = []
    for literal in sorted(set(_route_prefixes(get_resolver().url_patterns))):
        path = "/" + literal.rstrip("/")
        try:
            settings_with({"path": path, "target": "https://a.example"})
        except ValueError:
            continue
        unprotected.append(path)

    assert unprotected == []
