"""Which sub-paths a pass-through endpoint forwards, and the target URL it builds from them."""
import pytest

from gateway_project.config.schema import PassThroughEndpoint
from proxy.routes.passthrough import Mount, UnsafePath, checked_subpath, forwarded_subpath, target_url


def mount(path: str = "/api/*", target: str = "https://target.example/base", **fields) -> Mount:
    return Mount.of(PassThroughEndpoint(path=path, target=target, **fields))


@pytest.mark.parametrize("subpath", [
    "", "/", "/v1/rerank", "/v1/models/", "/a%2Fb", "/models/meta-llama%2FLlama-3", "/file.name.json",
    "/.well-known", "/a..b", "/...", "/x;v=1", "/%3Fnot-a-query", "/caf%C3%A9", "/a%20b",
])
def test_ordinary_sub_paths_are_forwarded_unchanged(subpath):
    assert checked_subpath(subpath) == subpath


@pytest.mark.parametrize("subpath", [
    "/..", "/../admin", "/x/../../y", "/.", "/./x",
    "/%2e%2e/x", "/%2E%2e/x", "/%2e%2E", "/.%2e/x", "/%2e./x",
    "/..%2fadmin", "/..%2Fadmin", "/x/..%2f..%2fkey",
    "/%252e%252e/x", "/%25252e%25252e/x", "/..%252fadmin",
    "/..;/admin", "/..;jsessionid=1/admin", "/%2e%2e%3b/admin",
    "/%EF%BC%8E%EF%BC%8E/admin", "/\uff0e\uff0e/admin",
])
def test_dot_segments_are_refused_in_any_encoding(subpath):
    with pytest.raises(UnsafePath):
        checked_subpath(subpath)


@pytest.mark.parametrize("subpath", [
    "/a\\b", "/..\\admin", "/%5c%5cevil.example", "/%5C..%5Cadmin", "/%255c",
])
def test_backslashes_are_refused_in_any_encoding(subpath):
    with pytest.raises(UnsafePath, match="backslash"):
        checked_subpath(subpath)


@pytest.mark.parametrize("subpath", [
    "//evil.example/x", "/x//y", "/%2F%2Fevil.example", "/%2f/evil", "/http://evil.example/x",
    "/http:%2F%2Fevil.example", "/https:%252F%252Fevil.example",
])
def test_empty_segments_that_could_name_another_host_are_refused(subpath):
    with pytest.raises(UnsafePath, match="empty segments"):
        checked_subpath(subpath)


@pytest.mark.parametrize("subpath", ["/x%00", "/x%0d%0aX-Injected: 1", "/x%09y", "/x%7f", "/x%250a"])
def test_control_characters_are_refused_in_any_encoding(subpath):
    with pytest.raises(UnsafePath, match="control"):
        checked_subpath(subpath)


@pytest.mark.parametrize("subpath", ["/%c0%ae%c0%ae/admin", "/%ff", "/caf\u00e9", "/%2525252e"])
def test_overlong_invalid_raw_non_ascii_or_endlessly_encoded_paths_are_refused(subpath):
    with pytest.raises(UnsafePath):
        checked_subpath(subpath)


def test_a_path_must_start_with_the_prefix_as_written():
    assert forwarded_subpath("/api/x", "/api") == "/x"
    assert forwarded_subpath("/api", "/api") == ""
    for path in ("/%61pi/x", "/apix", "/API/x"):
        with pytest.raises(UnsafePath):
            forwarded_subpath(path, "/api")


def test_the_sub_path_goes_under_the_target_base_path_with_both_queries():
    url = target_url(mount(target="https://target.example/base/?api-version=1"), "/api/v1/rerank", b"top_n=3")

    assert str(url) == "https://target.example/base/v1/rerank?api-version=1&top_n=3"


def test_the_bare_prefix_calls_the_target_itself():
    assert str(target_url(mount(), "/api", b"")) == "https://target.example/base"
    assert str(target_url(mount(target="https://target.example"), "/api/", b"")) == "https://target.example/"


def test_an_exact_endpoint_ignores_the_request_path():
    exact = mount(path="/v1/rerank", target="https://api.cohere.com/v1/rerank")

    assert str(target_url(exact, "/v1/rerank", b"a=1")) == "https://api.cohere.com/v1/rerank?a=1"


def test_include_subpath_works_like_a_trailing_star():
    url = target_url(mount(path="/bria", include_subpath=True, target="https://engine.example"), "/bria/v1/x", b"")

    assert str(url) == "https://engine.example/v1/x"


def test_the_host_and_port_always_come_from_the_target():
    url = target_url(mount(target="http://127.0.0.1:8080/base"), "/api/@evil.example/x", b"next=http://evil")

    assert (url.host, url.port, url.raw_path) == ("127.0.0.1", 8080, b"/base/@evil.example/x?next=http://evil")


def test_percent_encoding_is_forwarded_as_the_client_wrote_it():
    url = target_url(mount(), "/api/models/meta-llama%2FLlama-3", b"q=a%26b")

    assert url.raw_path == b"/base/models/meta-llama%2FLlama-3?q=a%26b"
