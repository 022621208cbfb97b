import pytest

from gateway_project.errors import AuthenticationError
from keys.policy import merge_spend_logs_metadata, merge_tags, model_allowed, read_api_key


def test_bearer_token_is_read_from_authorization():
    assert read_api_key({"authorization": "Bearer sk-abc"}) == "sk-abc"


def test_litellm_and_azure_headers_are_accepted():
    assert read_api_key({"x-litellm-api-key": "Bearer sk-abc"}) == "sk-abc"
    assert read_api_key({"api-key": "sk-azure"}) == "sk-azure"


def test_authorization_without_bearer_is_malformed():
    with pytest.raises(AuthenticationError, match="Malformed API Key"):
        read_api_key({"authorization": "sk-abc"})


def test_no_key_header_is_none():
    assert read_api_key({"content-type": "application/json"}) is None


@pytest.mark.parametrize("model, allowed, expected", [
    ("gpt-4o", [], True),
    ("gpt-4o", ["gpt-4o"], True),
    ("gpt-4o", ["claude"], False),
    ("gpt-4o", ["all-proxy-models"], True),
    ("openai/gpt-4o", ["openai/*"], True),
    ("anthropic/claude", ["openai/*"], False),
])
def test_model_allowed(model, allowed, expected):
    assert model_allowed(model, allowed) is expected


def test_tags_merge_in_order_without_duplicates():
    assert merge_tags(["a", "b"], ["b", "c"], None, ["d"]) == ["a", "b", "c", "d"]


def test_tags_ignore_values_that_are_not_lists():
    assert merge_tags("abc", ["x"], {"y": 1}) == ["x"]


def test_request_spend_logs_metadata_wins_and_key_beats_team():
    merged = merge_spend_logs_metadata({"a": "request"}, {"a": "key", "b": "key"}, {"b": "team", "c": "team"})

    assert merged == {"a": "request", "b": "key", "c": "team"}


from keys.policy import (RouteRules, RouteSet, client_ip, ip_allowed, missing_enforced_param,  # noqa: E402
                         networks)


def rules(trusted=(), use_xff=True):
    return RouteRules(public=RouteSet.of(()), admin_only=RouteSet.of(()), allowed=RouteSet.of(()),
                      allowed_ips=(), trusted_proxies=networks(trusted), use_x_forwarded_for=use_xff)


def test_route_set_matches_exact_wildcard_and_groups():
    routes = RouteSet.of(["/chat/completions", "/api/*", "LiteLLMRoutes.public_routes"])

    assert routes.matches("/chat/completions") and routes.matches("/api/anything/deep")
    assert routes.matches("/health/liveliness")
    assert not routes.matches("/embeddings") and not routes.matches("/chat/completions/x")


def test_x_forwarded_for_is_ignored_from_an_untrusted_peer():
    assert client_ip("198.51.100.7", "10.0.0.1", rules(trusted=["127.0.0.1"])) == "198.51.100.7"


def test_x_forwarded_for_is_ignored_without_trusted_proxies():
    assert client_ip("127.0.0.1", "10.0.0.1", rules(trusted=())) == "127.0.0.1"


def test_the_nearest_untrusted_hop_is_the_client():
    # client 203.0.113.5 → proxy 10.0.0.2 → trusted LB 127.0.0.1; the client forged a first entry.
    trusted = rules(trusted=["127.0.0.1", "10.0.0.0/8"])

    assert client_ip("127.0.0.1", "1.2.3.4, 203.0.113.5, 10.0.0.2", trusted) == "203.0.113.5"


def test_ip_allowed_by_network_and_refused_when_unparseable():
    allowed = networks(["10.1.0.0/16", "::1"])

    assert ip_allowed("10.1.2.3", allowed) and ip_allowed("::1", allowed)
    assert not ip_allowed("10.2.0.1", allowed) and not ip_allowed("not-an-ip", allowed)


def test_missing_enforced_params_use_the_bracket_notation():
    assert missing_enforced_param({"metadata": {}}, ["metadata.generation_name"]) == "[metadata][generation_name]"
    assert missing_enforced_param({}, ["user"]) == "user"
    assert missing_enforced_param({"user": "u", "metadata": {"generation_name": "g"}},
                                  ["user", "metadata.generation_name"]) is None


def test_an_access_group_name_grants_its_models():
    groups = {"beta-models": frozenset({"gpt-5", "claude-next"})}

    assert model_allowed("gpt-5", ["beta-models"], groups)
    assert not model_allowed("gpt-4o", ["beta-models"], groups)
