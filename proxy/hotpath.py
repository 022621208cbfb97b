"""The proxy's hot path, dispatched without Django's middleware stack and request signals.

Under ASGI, Django's handler runs every synchronous middleware (sessions, CSRF, auth, messages, security,
clickjacking) and the ``request_started`` / ``request_finished`` receivers in a worker thread, in a fresh
thread per request: a dozen thread hops for a call none of them does anything for. ``HotPathDispatch`` sits
in front of that handler (``gateway_project/asgi.py``) and serves the proxy's OpenAI routes
(``proxy.openapi.OPENAI_ROUTES``: chat/completions, completions, embeddings, models, model info) by calling
the same django-ninja view the URL resolves to, on the event loop, with what the middleware stack did for
those routes done inline:

- route control and IP allow-lists (``keys.middleware.check_route_policy``), before anything else;
- the audit actor's request (``gateway_project.audit.actor``);
- ``SecurityMiddleware`` (its SSL redirect when configured; nosniff, referrer and opener policy, HSTS
  headers) and ``XFrameOptionsMiddleware``, through their own ``process_request`` / ``process_response``;
- client disconnects cancel the call, as in Django's handler.

Sessions, CSRF, auth and messages have nothing to do on these routes (callers present a key, ninja views are
CSRF-exempt, no cookie is read or set). Everything else (the management API, the admin, docs, health,
pass-through endpoints, unknown paths) goes to Django's handler unchanged. A middleware in
``settings.MIDDLEWARE`` that this module does not know turns the dispatch off (logged at start-up), so
adding one can never be skipped silently. The request size, header size and concurrency limits are ASGI
middlewares outside both (``proxy/pipeline/limits.py``). Database reads on this path tidy their own
connection (``gateway_project.snapshots.snapshot_loader``), as ``request_started`` would have.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from contextlib import aclosing
from functools import cached_property, lru_cache
from io import BytesIO

import orjson
from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, ASGIRequest, get_script_prefix
from django.http import HttpResponse, HttpResponseBadRequest
from django.http.request import HttpHeaders
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, ResolverMatch, get_resolver, set_script_prefix
from django.utils.log import log_response
from ninja.operation import PathView

from gateway_project.audit.actor import serve_as, served
from gateway_project.errors import error_body
from keys.middleware import check_route_policy
from keys.policy import RouteSet
from proxy.answer import OwnHeaders
from proxy.openapi import OPENAI_ROUTES

logger = logging.getLogger("gateway.proxy")

# What the dispatch does in place of each middleware; anything else in MIDDLEWARE turns it off.
KNOWN_MIDDLEWARE = {
    "keys.middleware.RoutePolicyMiddleware": "check_route_policy, first",
    "django.middleware.security.SecurityMiddleware": "its process_request and process_response",
    "django.contrib.sessions.middleware.SessionMiddleware": "nothing: no session is read or written",
    "django.middleware.csrf.CsrfViewMiddleware": "nothing: ninja views are CSRF-exempt, no token is issued",
    "django.contrib.auth.middleware.AuthenticationMiddleware": "nothing: callers are identified by their key",
    "gateway_project.audit.actor.AuditActorMiddleware": "serve_as / served around the view",
    "django.contrib.messages.middleware.MessageMiddleware": "nothing: no messages on API routes",
    "django.middleware.clickjacking.XFrameOptionsMiddleware": "its process_response",
}
MAX_CACHED_PATHS = 4096
# The scope key under which our server hands the app a way to be called back when the client leaves
# (proxy.server.ON_DISCONNECT; not imported from there: that module points uvicorn at its own server on import).
ON_DISCONNECT = "gateway.on_disconnect"
# The headers those two middlewares set (and leave alone when an answer already has one of them).
SECURITY_HEADER_NAMES = ("X-Frame-Options", "Strict-Transport-Security", "X-Content-Type-Options", "Referrer-Policy",
                         "Cross-Origin-Opener-Policy")


def unknown_middleware() -> list[str]:
    return [name for name in settings.MIDDLEWARE if name not in KNOWN_MIDDLEWARE]


def _unused(request):  # the middlewares below are only asked for their request/response hooks
    raise AssertionError("not called")


class HotPathHandler(ASGIHandler):
    """Django's ASGI handler for the hot routes only: the same request parsing, disconnect handling and
    response sending, without the middleware chain, the per-request thread context and the request signals."""

    def __init__(self) -> None:  # no load_middleware(): the chain is what this handler leaves out
        self.security = SecurityMiddleware(_unused)
        self.xframe = XFrameOptionsMiddleware(_unused)
        self._security_headers: dict[tuple, list[tuple[bytes, bytes]]] = {}

    async def serve(self, match, scope, receive, send, direct: dict | None = None) -> None:
        body = await read_body(receive)
        if body is None:  # the client left before its request was in
            return
        prefix = get_script_prefix(scope)
        if prefix:   # none: Django's default ("/") holds, as the server's context never sets one (asgi.py)
            set_script_prefix(prefix)
        try:
            request = HotRequest(scope, body, prefix)
        except UnicodeDecodeError:  # a query string that is not UTF-8, as Django's handler refuses it
            await self.send_response(HttpResponseBadRequest(), send)
            return
        request.resolver_match = match
        # What the view leaves to do once the answer is out (proxy.pipeline: a buffered call's books).
        request.after_send = []
        # As Django's handler, a disconnect while the answer is being made cancels the call; but the call runs
        # in this task rather than a task of its own next to the listener's, joined by asyncio.wait: a task
        # and the wait's futures less per request. Served by our server (proxy/server.py), the connection
        # itself calls back when the client leaves; elsewhere a listener task waits on ``receive`` for it.
        call = asyncio.current_task()
        left: list[bool] = []   # the client left before its answer was complete

        def client_left() -> None:
            left.append(True)
            call.cancel()

        on_disconnect = scope.get(ON_DISCONNECT)
        if on_disconnect is not None:
            stop_listening = on_disconnect(client_left)
        else:
            stop_listening = asyncio.create_task(self._cancel_on_disconnect(receive, client_left)).cancel
        response = None
        try:
            response = await self.respond(request, match, direct)
            await self.send_response(response, send, getattr(response, "security_headers", ()))
        except asyncio.CancelledError:
            # The pipeline has recorded the call as cancelled. A client that left needs no answer; a cut at
            # shutdown (gateway_project.draining, uvicorn) goes on up: ConcurrencyLimit answers 503 then.
            if not left:
                raise
            call.uncancel()
        finally:
            stop_listening()
            # The jobs hold the call's context, which holds the request: dropped from it, so that the three
            # go when the call does (freed as their counts fall, not left as a cycle for the collector).
            jobs, request.after_send = request.after_send, ()
            for job in jobs:   # sent, failed to send, or cut off: the books are kept
                try:
                    await job()
                except Exception:
                    logger.exception("after answering %s %s", request.method, request.path)
        if response is not None:
            _close(response)

    async def send_response(self, response, send, extra_headers=()) -> None:
        """Django's ``send_response`` for what the proxy's routes answer, in fewer steps: a buffered body in
        one message whatever its size, with its ``content-length``; a stream's part marked as its last
        (``response.ended`` once handed out: the stream's own work after it, such as its books, does not hold
        the end of the answer back) leaves with the end of the body, in one write. No cookies are set on these
        routes. ``extra_headers`` (encoded) follow the response's own."""
        if response.cookies:
            return await super().send_response(response, send)
        wire = response.wire_headers() if isinstance(response, OwnHeaders) else None
        headers = wire if wire is not None else [(name.encode("ascii"), value.encode("latin1"))
                                                 for name, value in response.items()]
        headers += extra_headers
        if not response.streaming:
            # A buffered body's length is known: said up front (as LiteLLM's answers do), not in chunks.
            content = response.content
            if wire is not None or not response.has_header("Content-Length"):   # a ProxyAnswer sets none
                headers.append((b"content-length", str(len(content)).encode("ascii")))
            await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
            await send({"type": "http.response.body", "body": content})
            return
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        async with aclosing(aiter(response)) as content:
            async for part in content:
                if getattr(response, "ended", False):
                    await send({"type": "http.response.body", "body": part})
                    async for _ in content:   # the stream's own end (its books); nothing more is sent
                        pass
                    return
                if part:
                    await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body"})

    def security_headers(self, request) -> list[tuple[bytes, bytes]]:
        """What ``XFrameOptionsMiddleware`` and ``SecurityMiddleware`` add to an answer that has none of their
        headers, encoded: it depends on the request's scheme and the settings alone, so it is worked out, by
        the middlewares themselves on an empty response, once per scheme (and X_FRAME_OPTIONS)."""
        key = (request.is_secure(), getattr(settings, "X_FRAME_OPTIONS", None))
        found = self._security_headers.get(key)
        if found is None:
            probe = HttpResponse()
            own = set(probe.headers)
            probe = self.security.process_response(request, self.xframe.process_response(request, probe))
            found = self._security_headers[key] = [(name.encode("ascii"), value.encode("latin1"))
                                                   for name, value in probe.items() if name not in own]
        return found

    async def _cancel_on_disconnect(self, receive, client_left: Callable[[], None]) -> None:
        """Call ``client_left`` when the client disconnects (a server that does not call back itself)."""
        try:
            await self.listen_for_disconnect(receive)
        except RequestAborted:
            client_left()

    async def respond(self, request, match, direct: dict | None = None) -> HttpResponse:
        try:
            response = check_route_policy(request) or self.security.process_request(request)
            if response is None:
                token = serve_as(request)
                try:
                    operation = direct.get(request.method) if direct else None
                    if operation is None:
                        response = await match.func(request, *match.args, **match.kwargs)
                    else:   # what ninja's view would call, without its wrappers (see direct_operations)
                        view, api = operation
                        try:
                            response = await view(request, **match.kwargs)
                        except Exception as exc:   # the API's handlers answer it (and forget its frames)
                            response = api.on_exception(request, exc)
                finally:
                    served(token)
        except Exception:  # ninja renders the view's own errors; this is a bug in the dispatch itself
            logger.exception("unhandled error on %s %s", request.method, request.path)
            response = HttpResponse(orjson.dumps(error_body("Internal server error", status=500,
                                                            type="internal_server_error")),
                                    status=500, content_type="application/json")
        untouched = isinstance(response, OwnHeaders) and response.untouched   # none of those headers, surely
        if not untouched and any(name in response for name in SECURITY_HEADER_NAMES):
            response = self.xframe.process_response(request, response)
            response = self.security.process_response(request, response)
        else:   # what they would add, added as it is sent
            response.security_headers = self.security_headers(request)
        if response.status_code >= 400:  # as Django's handler does (django.request: 5xx at ERROR)
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        return response


async def read_body(receive) -> bytes | None:
    """The request's body, whole, as bytes; None when the client disconnects first. Its size is already
    bounded by ``max_request_size_mb`` (``RequestSizeLimit`` runs before this); Django's own
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB) is for forms, and does not cap a chat call's images."""
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        if part := message.get("body"):
            parts.append(part)
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


class HotRequest(ASGIRequest):
    """Django's ``ASGIRequest`` for the hot routes, built in one pass over the scope: ``META`` and
    ``headers`` together (what Django builds in two, the second from the first), the body already read
    (no spooled file). The same names and values as Django's: a header whose name has an underscore is
    left out of both, repeated headers are joined with commas."""

    def __init__(self, scope, body: bytes, script_name: str) -> None:  # noqa: D107 (ASGIRequest's fields)
        self.scope = scope
        self._post_parse_error = False
        self._read_started = False
        self.resolver_match = None
        self.path = path = scope["path"]
        self.script_name = script_name
        self.path_info = path.removeprefix(script_name) if script_name else path
        self.method = scope["method"].upper()
        query_string = scope.get("query_string", "")
        if isinstance(query_string, bytes):
            query_string = query_string.decode()
        meta = {"REQUEST_METHOD": self.method, "QUERY_STRING": query_string, "SCRIPT_NAME": script_name,
                "PATH_INFO": self.path_info, "wsgi.multithread": True, "wsgi.multiprocess": True}
        if client := scope.get("client"):
            meta["REMOTE_ADDR"] = meta["REMOTE_HOST"] = client[0]
            meta["REMOTE_PORT"] = client[1]
        server = scope.get("server")
        meta["SERVER_NAME"], meta["SERVER_PORT"] = (server[0], str(server[1])) if server else ("unknown", "0")
        headers: dict[str, str] = {}   # lower-case name → value
        for raw_name, raw_value in scope.get("headers", ()):
            name = raw_name.decode("latin1").lower()
            if "_" in name:
                continue
            value = raw_value.decode("latin1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        store = {}   # HttpHeaders' own storage: lower-case name → (its title-case name, value)
        for name, value in headers.items():
            meta[_META_NAMES.get(name) or _meta_name(name)] = value
            store[name] = (_title(name), value)
        self.META = meta
        self.headers = _http_headers(store)
        self._set_content_type_params(meta)
        self._body = body

    @cached_property
    def _stream(self):  # what request.read() reads: the body, again
        return BytesIO(self._body)

    def close(self) -> None:
        if "_stream" in self.__dict__:
            self._stream.close()
        super(ASGIRequest, self).close()


_META_NAMES = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}


@lru_cache(maxsize=1024)
def _meta_name(name: str) -> str:
    return "HTTP_" + name.upper().replace("-", "_")


@lru_cache(maxsize=1024)
def _title(name: str) -> str:
    return name.title()


def _http_headers(store: dict[str, tuple[str, str]]) -> HttpHeaders:
    """``HttpHeaders`` holding ``store`` (what ``CaseInsensitiveMapping`` keeps: lower-case name → (name as
    given, value)): as Django's, keyed ``User-Agent`` and case-insensitive, without building it a second time
    (tests/proxy/test_hotpath.py holds it equal to Django's own)."""
    mapping = HttpHeaders.__new__(HttpHeaders)
    mapping._store = store
    return mapping


def _close(response) -> None:
    """``response.close()`` without its ``request_finished`` signal: release what the response holds."""
    for closer in response._resource_closers:
        try:
            closer()
        except Exception:
            pass
    response._resource_closers.clear()
    response.closed = True


class HotPathDispatch:
    """ASGI app: the proxy's OpenAI routes to ``HotPathHandler``, everything else to ``app`` (Django)."""

    def __init__(self, app, namespace: str, routes: RouteSet = OPENAI_ROUTES) -> None:
        self.app = app
        self.namespace = namespace  # the proxy NinjaAPI's urls_namespace
        self.routes = routes
        self.handler = HotPathHandler()
        self.enabled = not unknown_middleware()
        if not self.enabled:
            logger.warning("hot-path dispatch off: settings.MIDDLEWARE has %s, which it does not know how to "
                           "apply; every request goes through Django's middleware stack",
                           ", ".join(unknown_middleware()))
        # (root path, path) → (URL match, its direct operations), or None: not a hot route
        self._matches: dict[tuple[str, str], tuple[ResolverMatch, dict] | None] = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and self.enabled:
            found = self.route(scope)
            if found is not None:
                await self.handler.serve(found[0], scope, receive, send, found[1])
                return
        await self.app(scope, receive, send)

    def match(self, scope) -> ResolverMatch | None:
        """The URL match when the path is a hot route and resolves, with the whole URLconf (so whatever
        comes first there still wins), to an async view of the proxy's API; None otherwise."""
        found = self.route(scope)
        return found[0] if found is not None else None

    def route(self, scope) -> tuple[ResolverMatch, dict] | None:
        """(``match``, its ``direct_operations``), worked out once per path."""
        key = (scope.get("root_path", ""), scope["path"])
        found = self._matches.get(key, False)
        if found is not False:
            return found
        prefix = get_script_prefix(scope)
        path_info = key[1].removeprefix(prefix) if prefix else key[1]
        found = None
        if self.routes.matches(path_info):
            try:
                resolved = get_resolver().resolve(path_info)
            except Resolver404:
                resolved = None
            if (resolved is not None and resolved.namespace == self.namespace
                    and iscoroutinefunction(resolved.func)):
                found = resolved
        if len(self._matches) >= MAX_CACHED_PATHS:  # paths naming a model are the caller's to vary
            self._matches.clear()
        route = self._matches[key] = (found, direct_operations(found.func)) if found is not None else None
        return route


def direct_operations(view) -> dict[str, tuple]:
    """{method: (operation function, its NinjaAPI)} of a proxy route that the hot path may call itself:
    what ninja's view would run (found through the view's ``PathView``), when ninja would add nothing but
    its wrappers: an async operation, no ninja auth or throttling (callers are authenticated by the
    pipeline), and no parameter but the request and string path parameters, passed as the URL gives them.
    Errors go to the API's own exception handlers, as ninja's would. Anything else (other methods, whose
    405 is ninja's, or a route these conditions do not hold for) goes through ninja's view. ninja's view
    otherwise builds a response per call it does not use, and a few layers of calls: ~40 us a request."""
    path_view = next((cell.cell_contents for cell in getattr(view, "__closure__", None) or ()
                      if isinstance(cell.cell_contents, PathView)), None)
    direct = {}
    for operation in path_view.operations if path_view is not None else ():
        parameters = list(inspect.signature(operation.view_func).parameters.values())[1:]
        if (operation.is_async and not operation.auth_callbacks and not operation.throttle_objects
                and operation.api is not None and all(p.annotation in (str, "str") for p in parameters)):
            for method in operation.methods:
                direct[method] = (operation.view_func, operation.api)
    return direct
