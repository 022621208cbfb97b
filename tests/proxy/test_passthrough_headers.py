"""Which headers a pass-through endpoint sends to its target, and which it relays back."""
from proxy.routes.passthrough import outbound_headers, relayed_headers

CONFIGURED = (("Authorization", "Bearer target-secret"),)
CLIENT = [
    ("Host", "gateway.example"), ("Authorization", "Bearer sk-gateway-key"), ("x-litellm-api-key", "sk-gateway-key"),
    ("api-key", "sk-gateway-key"), ("x-api-key", "sk-gateway-key"), ("Cookie", "sessionid=admin"),
    ("Connection", "keep-alive, X-Hop"), ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Upgrade", "h2c"),
    ("Proxy-Authorization", "Basic eA=="), ("Expect", "100-continue"), ("X-Hop", "1"),
    ("Content-Type", "application/json"), ("Content-Length", "12"), ("Accept", "application/json"),
    ("X-Request-Id", "abc"), ("User-Agent", "curl/8"),
]


def names(headers) -> list[str]:
    return [name for name, _ in headers]


def test_without_forward_headers_only_the_body_headers_and_the_configured_ones_go():
    sent = outbound_headers(CLIENT, configured=CONFIGURED, forward_all=False)

    assert sent == [("content-type", "application/json"), ("content-length", "12"), ("accept", "application/json"),
                    ("accept-encoding", "identity"), ("Authorization", "Bearer target-secret")]


def test_with_forward_headers_the_client_headers_go_but_never_credentials_cookies_or_hop_by_hop():
    sent = dict(outbound_headers(CLIENT, configured=CONFIGURED, forward_all=True))

    assert sent["x-request-id"] == "abc" and sent["user-agent"] == "curl/8"
    for name in ("host", "cookie", "x-litellm-api-key", "api-key", "x-api-key", "connection", "keep-alive", "te",
                 "upgrade", "proxy-authorization", "expect", "x-hop"):
        assert name not in sent, name
    assert sent["Authorization"] == "Bearer target-secret"
    assert "sk-gateway-key" not in str(sent)


def test_configured_headers_replace_the_clients_whatever_the_case():
    sent = outbound_headers([("x-tenant", "client")], configured=(("X-Tenant", "configured"),), forward_all=True)

    assert sent == [("accept-encoding", "identity"), ("X-Tenant", "configured")]


def test_the_clients_accept_encoding_is_kept_so_a_compressed_body_is_one_it_can_read():
    sent = outbound_headers([("Accept-Encoding", "gzip")], configured=(), forward_all=False)

    assert sent == [("accept-encoding", "gzip")]


def test_a_chunked_body_goes_without_the_clients_content_length():
    sent = outbound_headers([("Transfer-Encoding", "chunked"), ("Content-Length", "5")], configured=(),
                            forward_all=True)

    assert "content-length" not in names(sent) and "transfer-encoding" not in names(sent)


def test_the_response_loses_hop_by_hop_headers_cookies_and_date_and_gains_a_sandbox():
    relayed = relayed_headers([
        ("Content-Type", "text/html"), ("Content-Length", "10"), ("Content-Encoding", "gzip"),
        ("Connection", "close, X-Hop"), ("X-Hop", "1"), ("Transfer-Encoding", "chunked"), ("Keep-Alive", "5"),
        ("Set-Cookie", "sessionid=evil; Path=/"), ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ("X-RateLimit-Remaining", "9"), ("Vary", "Accept"), ("Vary", "Origin")])

    assert relayed == {"content-type": "text/html", "content-length": "10", "content-encoding": "gzip",
                       "x-ratelimit-remaining": "9", "vary": "Accept, Origin", "content-security-policy": "sandbox"}


def test_a_targets_own_content_security_policy_is_kept_and_sandboxed():
    relayed = relayed_headers([("Content-Security-Policy", "default-src 'none'")])

    assert relayed["content-security-policy"] == "default-src 'none', sandbox"
