"""Pass-through endpoints (``general_settings.pass_through_endpoints``): a configured path forwarded as
it is to a fixed target, both bodies streamed, behind gateway keys when ``auth: true`` (one spend row
per call then). Mounted by ``gateway_project/urls.py`` after the gateway's own routes; docs/pass-through.md.

The target's host and base path come from config only. A client picks at most the sub-path under a
``/*`` endpoint, and that is refused (400) when any decoding of it could climb out of the base path.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
import unicodedata
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import unquote

import httpx2
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import URLPattern, re_path
from django.views.decorators.csrf import csrf_exempt

from gateway_project import draining
from gateway_project.config import ConfigError, get_config
from gateway_project.config.schema import PassThroughEndpoint
from gateway_project.errors import BadRequestError, GatewayError, UpstreamError, error_json
from keys.policy import KEY_HEADERS
from proxy.pipeline.auth import authenticate
from proxy.pipeline.context import RequestContext
from proxy.pipeline.limits import MB, response_limit_bytes, response_too_large
from proxy.pipeline.record import record_call
from proxy.runtime import get_runtime

logger = logging.getLogger("gateway.proxy")

CALL_TYPE = "pass_through_endpoint"
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "trailers", "transfer-encoding", "upgrade"})
# Describe the body being forwarded, or what the client can read back: sent even without forward_headers.
BODY_HEADERS = frozenset({"content-type", "content-encoding", "content-length", "accept", "accept-encoding"})
# The gateway's credentials (every header a key is read from) and session never reach a target;
# Host is the target's, and Expect was answered by the gateway's server already.
NEVER_FORWARDED = HOP_BY_HOP | frozenset(KEY_HEADERS) | {"host", "cookie", "expect"}
# A target must not set cookies on the gateway's origin (the admin's session lives there); the
# gateway's server writes its own Date.
NEVER_RELAYED = HOP_BY_HOP | {"set-cookie", "date"}
# TRACE would have a target echo the request back, configured credentials included; CONNECT opens a tunnel.
REFUSED_METHODS = frozenset({"TRACE", "CONNECT"})
CHUNK_SIZE = 64 * 1024
MAX_DECODINGS = 3   # a sub-path still changing after this many percent-decodings is refused


@dataclass(frozen=True)
class Mount:
    """A configured endpoint with its target parsed once, at start."""

    endpoint: PassThroughEndpoint
    target: httpx2.URL
    origin: str              # the pooled client's key: scheme://host[:port]
    base_path: bytes
    base_query: bytes
    headers: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, endpoint: PassThroughEndpoint) -> Mount:
        target = httpx2.URL(endpoint.target)
        path, _, query = target.raw_path.partition(b"?")
        return cls(endpoint=endpoint, target=target, origin=f"{target.scheme}://{target.netloc.decode('ascii')}",
                   base_path=path or b"/", base_query=query, headers=tuple(endpoint.headers.items()))


# Routing ----------------------------------------------------------------------------------------


def urlpatterns(endpoints: Iterable[PassThroughEndpoint] | None = None) -> list[URLPattern]:
    """One URL pattern per configured endpoint (none when config.yaml is invalid: gateway.E001 says why)."""
    if endpoints is None:
        try:
            endpoints = get_config().general_settings.pass_through_endpoints
        except ConfigError:
            return []
    patterns = []
    for endpoint in endpoints:
        if not endpoint.auth:
            logger.warning("pass-through endpoint %s is open (auth: false): anyone who reaches the gateway can "
                           "call its target with the configured headers", endpoint.path)
        patterns.append(re_path(_regex(endpoint), forward, kwargs={"mount": Mount.of(endpoint)},
                                name=f"pass-through {endpoint.path}"))
    return patterns


def _regex(endpoint: PassThroughEndpoint) -> str:
    prefix = re.escape(endpoint.prefix[1:])
    # DOTALL: a decoded newline in a sub-path must reach the check below (a 400), not fall to a 404.
    return rf"(?s)^{prefix}(?:/.*)?\Z" if endpoint.subpaths else rf"^{prefix}\Z"


# Paths ------------------------------------------------------------------------------------------


class UnsafePath(BadRequestError):
    param = "path"


def forwarded_subpath(raw_path: str, prefix: str) -> str:
    """The part of the raw (still percent-encoded) request path below ``prefix``, as it will be appended
    to the target's base path; raises UnsafePath when it is not safe to forward."""
    if raw_path != prefix and not raw_path.startswith(prefix + "/"):
        raise UnsafePath(f"Invalid pass-through path: it must start with {prefix} as written, not encoded")
    return checked_subpath(raw_path[len(prefix):])


def checked_subpath(subpath: str) -> str:
    """``subpath`` unchanged if no decoding of it (up to MAX_DECODINGS deep) holds a dot segment, an
    empty segment (``//``), a backslash or a control character; raises UnsafePath otherwise.

    Every layer is checked because targets and the proxies in front of them differ in how often they
    decode: ``%252e%252e`` is harmless to one and ``..`` to the next.
    """
    if not subpath.isascii():
        raise UnsafePath("Invalid pass-through path: only ASCII (percent-encoded) paths are forwarded")
    layer = subpath
    for _ in range(MAX_DECODINGS + 1):
        _check_layer(layer)
        try:
            decoded = unquote(layer, errors="strict")
        except UnicodeDecodeError:
            raise UnsafePath("Invalid pass-through path: percent-encoding that is not UTF-8") from None
        if decoded == layer:
            return subpath
        layer = decoded
    raise UnsafePath("Invalid pass-through path: encoded too many times")


def _check_layer(text: str) -> None:
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise UnsafePath("Invalid pass-through path: control characters are not allowed")
    if "\\" in text:
        raise UnsafePath("Invalid pass-through path: backslashes are not allowed")
    segments = text.split("/")[1:]
    for index, segment in enumerate(segments):
        if not segment and index < len(segments) - 1:   # a trailing "/" is fine, "//" is not
            raise UnsafePath("Invalid pass-through path: empty segments ('//') are not allowed")
        # ";" starts path parameters on some servers ("..;/"); NFKC folds look-alikes such as "．．".
        if unicodedata.normalize("NFKC", segment.split(";", 1)[0]) in (".", ".."):
            raise UnsafePath("Invalid pass-through path: '.' and '..' segments are not allowed")


def target_url(mount: Mount, raw_path: str, query: bytes) -> httpx2.URL:
    """The URL to call: the configured target (+ the checked sub-path), the client's query appended."""
    path = mount.base_path
    if mount.endpoint.subpaths:
        subpath = forwarded_subpath(raw_path, mount.endpoint.prefix)
        if subpath:
            path = path.rstrip(b"/") + subpath.encode("ascii")
    query = b"&".join(part for part in (mount.base_query, query) if part)
    return mount.target.copy_with(raw_path=path + b"?" + query if query else path)


def _raw_path(request: HttpRequest) -> str:
    raw = getattr(request, "scope", {}).get("raw_path")
    return raw.decode("latin-1").partition("?")[0] if raw else request.path


def _raw_query(request: HttpRequest) -> bytes:
    scope = getattr(request, "scope", None)
    return scope.get("query_string", b"") if scope else request.META.get("QUERY_STRING", "").encode("latin-1")


def _client_headers(request: HttpRequest) -> list[tuple[str, str]]:
    scope = getattr(request, "scope", None)   # the raw list keeps repeated headers apart
    return _decoded(scope["headers"]) if scope else list(request.headers.items())


# Headers ----------------------------------------------------------------------------------------


def _connection_listed(headers: Iterable[tuple[str, str]]) -> set[str]:
    """Headers the sender named in Connection: hop-by-hop too (RFC 9110 §7.6.1)."""
    return {token.strip().lower() for name, value in headers if name == "connection" for token in value.split(",")}


def outbound_headers(client_headers: Iterable[tuple[str, str]], *, configured: Iterable[tuple[str, str]],
                     forward_all: bool) -> list[tuple[str, str]]:
    """What the target receives: the body's own headers, the client's others only with ``forward_all``,
    never gateway credentials or hop-by-hop ones; configured headers last, replacing the client's."""
    client_headers = [(name.lower(), value) for name, value in client_headers]
    configured = list(configured)
    dropped = NEVER_FORWARDED | _connection_listed(client_headers) | {name.lower() for name, _ in configured}
    names = {name for name, _ in client_headers}
    if "transfer-encoding" in names:
        dropped |= {"content-length"}   # the body arrived chunked: the client's length is not its framing
    kept = [(name, value) for name, value in client_headers
            if name not in dropped and not name.startswith("proxy-") and (forward_all or name in BODY_HEADERS)]
    if "accept-encoding" not in names:
        # The body is relayed undecoded: without this the HTTP client would ask for gzip on the
        # client's behalf and a client that cannot read it would get it.
        kept.append(("accept-encoding", "identity"))
    return kept + configured


def relayed_headers(target_headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The target's response headers the client gets (repeated ones joined, as HTTP allows)."""
    target_headers = [(name.lower(), value) for name, value in target_headers]
    dropped = NEVER_RELAYED | _connection_listed(target_headers)
    relayed: dict[str, str] = {}
    for name, value in target_headers:
        if name not in dropped and not name.startswith("proxy-"):
            relayed[name] = f"{relayed[name]}, {value}" if name in relayed else value
    # Served from the gateway's origin: a browser must not run what a target sends in it.
    policy = relayed.get("content-security-policy")
    relayed["content-security-policy"] = f"{policy}, sandbox" if policy else "sandbox"
    return relayed


def _decoded(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]


# The view ---------------------------------------------------------------------------------------


@csrf_exempt
async def forward(request: HttpRequest, mount: Mount) -> HttpResponse:
    ctx = RequestContext(request=request, call_type=CALL_TYPE)
    ctx.model_group = mount.endpoint.path
    relaying = False
    try:
        if mount.endpoint.auth:
            await authenticate(ctx)
        if request.method in REFUSED_METHODS:
            raise GatewayError(f"Method {request.method} is not forwarded", status=405,
                               type="invalid_request_error")
        url = target_url(mount, _raw_path(request), _raw_query(request))
        upstream = await _send(ctx, mount, request, url)
        response = await _respond(ctx, upstream)
        relaying = True
        return response
    except GatewayError as exc:
        ctx.error = exc
        return HttpResponse(error_json(exc), status=exc.status, content_type="application/json",
                            headers=exc.headers or None)
    except Exception:
        logger.exception("pass-through endpoint %s: unexpected error", mount.endpoint.path)
        ctx.error = GatewayError("Internal server error")
        return HttpResponse(error_json(ctx.error), status=500, content_type="application/json")
    finally:
        if not relaying:
            record_call(ctx)   # a relayed response records when its last byte is sent


async def _send(ctx: RequestContext, mount: Mount, request: HttpRequest, url: httpx2.URL) -> httpx2.Response:
    client = get_runtime().clients.get(mount.origin)
    headers = outbound_headers(_client_headers(request), configured=mount.headers,
                               forward_all=mount.endpoint.forward_headers)
    outbound = client.build_request(request.method, url, headers=headers, content=_request_body(request))
    ctx.upstream_started = time.perf_counter()
    try:
        return await client.send(outbound, stream=True)
    except httpx2.TimeoutException:
        raise UpstreamError(f"Pass-through endpoint {mount.endpoint.path}: the target did not answer in time",
                            status=408, type="timeout") from None
    except httpx2.HTTPError as exc:
        # The exception's text may name the target: only its class is logged, nothing reaches the client.
        logger.warning("pass-through endpoint %s: target unreachable (%s)", mount.endpoint.path, type(exc).__name__)
        raise UpstreamError(f"Pass-through endpoint {mount.endpoint.path}: the target could not be reached",
                            status=502, type="api_connection_error") from None


def _request_body(request: HttpRequest) -> AsyncIterator[bytes] | None:
    """The client's body, read from Django's spool in chunks (never joined into one bytes object)."""
    length = request.META.get("CONTENT_LENGTH", "")
    if length == "0" or (not length.isdigit() and "transfer-encoding" not in request.headers):
        return None
    # Django spools a body over FILE_UPLOAD_MAX_MEMORY_SIZE to disk: those reads go to a thread.
    on_disk = not length.isdigit() or int(length) > settings.FILE_UPLOAD_MAX_MEMORY_SIZE

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := (await asyncio.to_thread(request.read, CHUNK_SIZE) if on_disk else request.read(CHUNK_SIZE)):
            yield chunk

    return chunks()


async def _respond(ctx: RequestContext, upstream: httpx2.Response) -> StreamingHttpResponse:
    if upstream.status_code >= 400:   # relayed as it is; only the spend row notes the failure
        ctx.error = UpstreamError(f"the pass-through target answered {upstream.status_code}",
                                  status=upstream.status_code)
    limit = response_limit_bytes()
    declared = upstream.headers.get("content-length", "")
    if limit is not None and declared.isdigit() and int(declared) > limit:
        await upstream.aclose()
        raise response_too_large(int(declared), limit / MB)
    headers = relayed_headers(_decoded(upstream.headers.raw))
    response = StreamingHttpResponse(_relay(ctx, upstream, limit), status=upstream.status_code,
                                     reason=upstream.reason_phrase or None)
    if "content-type" not in headers:
        del response.headers["Content-Type"]   # Django's text/html default would be a lie
    for name, value in headers.items():
        response.headers[name] = value
    response.headers["x-litellm-call-id"] = ctx.call_id
    return response


async def _relay(ctx: RequestContext, upstream: httpx2.Response, limit: int | None) -> AsyncIterator[bytes]:
    """The target's body, undecoded, chunk by chunk as it arrives; records the call when it ends."""
    relayed = 0
    task = draining.track()  # cancelled at shutdown if still running past the graceful timeout
    try:
        async for chunk in upstream.aiter_raw():
            if ctx.completion_start_time is None:
                ctx.completion_start_time = datetime.now(timezone.utc)
            relayed += len(chunk)
            if limit is not None and relayed > limit:
                raise response_too_large(relayed, limit / MB)
            yield chunk
    except BaseException as exc:
        # Headers are gone: the connection is cut (re-raised), so the client sees an incomplete body.
        cancelled = isinstance(exc, (asyncio.CancelledError, GeneratorExit))
        if isinstance(exc, GatewayError):
            ctx.error = exc
        elif ctx.error is None:
            ctx.error = UpstreamError("the pass-through relay ended before the body was complete",
                                      status=499 if cancelled else 502, type="stream_interrupted")
        if isinstance(exc, httpx2.HTTPError):
            logger.warning("pass-through endpoint %s: the target's body broke off (%s)", ctx.model_group,
                           type(exc).__name__)
        raise
    finally:
        draining.untrack(task)
        ctx.upstream_seconds = time.perf_counter() - (ctx.upstream_started or ctx.started)
        # The client may hang up now that it has the body: the call is recorded all the same.
        await draining.to_the_end(_close_relay(ctx, upstream))


async def _close_relay(ctx: RequestContext, upstream: httpx2.Response) -> None:
    try:
        await upstream.aclose()
    finally:
        record_call(ctx)


__all__ = ["Mount", "checked_subpath", "forwarded_subpath", "outbound_headers", "relayed_headers",
           "target_url", "urlpatterns"]
