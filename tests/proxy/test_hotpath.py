"""The hot-path dispatch in-process (proxy/hotpath.py): the proxy's OpenAI routes skip Django's middleware
stack and request signals, yet answer exactly as Django's handler does. Driven through the real ASGI
application with ASGI messages; live-gateway checks are in tests/e2e/test_hotpath.py."""
from __future__ import annotations

import asyncio
from io import BytesIO

import orjson
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import BadHeaderError
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from gateway_project.asgi import application, django_application
from proxy.api import api as proxy_api
from proxy.hotpath import ON_DISCONNECT, HotPathDispatch, HotPathHandler, HotRequest, direct_operations
from tests.asgi import exchange
from tests.conftest import MASTER_KEY

MASTER = [("authorization", f"Bearer {MASTER_KEY}")]
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
                    "referrer-policy": "same-origin", "cross-origin-opener-policy": "same-origin"}


def call(app, method: str, path: str, headers=(), body: bytes = b""):
    return async_to_sync(exchange)(app, method, path, list(headers), body)


def as_django_sends_it(answer):
    """The hot path's answer less the content-length it adds to a buffered body (Django's handler leaves the
    server to send it chunked); the length must be the body's."""
    status, headers, body = answer
    headers = dict(headers)
    assert headers.pop("content-length") == str(len(body))
    return status, headers, body


@pytest.fixture(autouse=True)
def no_connection_tidying():
    """As Django's own test client does: the database connection is the test's (no close_old_connections on
    the requests Django's handler serves here)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def started():
    """How many times Django's request_started signal fired."""
    fired = []

    def receiver(**kwargs):
        fired.append(kwargs)

    request_started.connect(receiver)
    yield fired
    request_started.disconnect(receiver)


def test_a_proxy_route_does_not_go_through_djangos_request_cycle(started):
    status, _, _ = call(application, "GET", "/v1/models", MASTER)

    assert status == 200
    assert started == []


def test_other_routes_still_go_through_djangos_request_cycle(started):
    status, _, _ = call(application, "GET", "/health/liveliness")

    assert status == 200
    assert len(started) == 1


def test_a_path_param_route_takes_the_hot_path(started):
    status, _, body = call(application, "POST", "/engines/some-model/chat/completions", body=b"{}")

    assert status == 401 and b"No api key passed in" in body
    assert started == []


def test_a_path_outside_the_proxy_api_falls_through_to_django(started):
    status, _, _ = call(application, "POST", "/engines/some-model/not-a-route", body=b"{}")

    assert status == 404
    assert len(started) == 1


@pytest.mark.parametrize(("method", "path", "headers", "body"), [
    ("GET", "/v1/models", MASTER, b""),
    ("GET", "/model/info", MASTER, b""),
    ("POST", "/chat/completions", [], b'{"model": "fake-openai-endpoint"}'),
    ("POST", "/v1/chat/completions", [("authorization", "Basic abc")], b"{}"),
    ("GET", "/v1/chat/completions", MASTER, b""),
    ("POST", "/openai/deployments/some-model/embeddings", [], b"{}"),
], ids=["models", "model-info", "no-key", "malformed-key", "wrong-method", "path-param"])
def test_the_hot_path_answers_exactly_as_djangos_handler(method, path, headers, body):
    hot = call(HotPathDispatch(django_application, namespace=proxy_api.urls_namespace), method, path, headers, body)
    django = call(django_application, method, path, headers, body)

    assert as_django_sends_it(hot) == django
    assert SECURITY_HEADERS.items() <= hot[1].items()


def test_an_error_on_the_hot_path_is_the_contracts_json_with_the_security_headers():
    status, headers, body = call(application, "POST", "/v1/chat/completions", body=b"{}")

    assert status == 401
    assert headers["content-type"] == "application/json"
    assert body.startswith(b'{"error":')
    assert SECURITY_HEADERS.items() <= headers.items()


@pytest.mark.django_db
def test_an_unknown_key_is_looked_up_in_the_database_on_the_hot_path(started):
    status, _, body = call(application, "POST", "/chat/completions", [("authorization", "Bearer sk-not-a-key")],
                           b'{"model": "fake-openai-endpoint", "messages": []}')

    assert status == 401 and b"Invalid API key" in body
    assert started == []


def test_an_unknown_middleware_turns_the_dispatch_off(settings, started):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.common.CommonMiddleware"]
    dispatch = HotPathDispatch(django_application, namespace=proxy_api.urls_namespace)

    status, _, _ = call(dispatch, "GET", "/v1/models", MASTER)

    assert not dispatch.enabled
    assert status == 200 and len(started) == 1


CHAT = b'{"model": "fake-openai-endpoint", "messages": [{"role": "user", "content": "hi"}]}'
STREAM = b'{"model": "fake-openai-endpoint", "messages": [{"role": "user", "content": "hi"}], "stream": true}'


@pytest.fixture
def timeline(monkeypatch):
    """What happened, in order: the answer's body messages as the server is handed them, and the moment the
    call's spend record goes to the writer (kept in the list instead: no database here)."""
    events = []
    monkeypatch.setattr("proxy.pipeline.record.record", lambda entry: events.append(("recorded", entry.call_type)))
    return events


def call_in_order(app, events: list, body: bytes):
    def on_send(message) -> None:
        if message["type"] == "http.response.body":
            events.append(("body", message.get("body", b""), message.get("more_body", False)))

    async_to_sync(exchange)(app, "POST", "/v1/chat/completions",
                            [("authorization", f"Bearer {MASTER_KEY}"), ("content-type", "application/json")], body,
                            on_send=on_send)
    return [event[0] if event[0] == "recorded" else ("end" if not event[2] else "part") for event in events]


def test_a_buffered_answers_books_are_kept_once_it_is_sent(timeline):
    """In-process counters: the caller's next request cannot be read before the books are kept, so they
    wait for the answer's last byte instead of holding it back."""
    order = call_in_order(application, timeline, CHAT)

    assert order == ["end", "recorded"]
    assert b'"chat.completion"' in timeline[0][1]


def test_with_shared_counters_the_books_are_kept_before_the_answer(timeline, monkeypatch):
    """Counters that wait on the network (Redis): a caller's next call, perhaps to another instance, could
    come in while they are settled, so the answer waits for them."""
    from proxy.runtime import get_runtime

    async def counters():
        return get_runtime().counters

    monkeypatch.setattr(async_to_sync(counters)(), "never_waits", False)

    assert call_in_order(application, timeline, CHAT) == ["recorded", "end"]


def test_a_streams_end_leaves_with_done_before_its_books(timeline):
    """[DONE] and the end of the body in one message, then the stream's books. The fake model streams its
    whole answer in one final burst: the first event on its own, then the rest of it with [DONE]."""
    order = call_in_order(application, timeline, STREAM)

    assert order[-2:] == ["end", "recorded"] and set(order[:-2]) == {"part"}
    assert timeline[-2][1].endswith(b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')


def test_through_djangos_handler_a_stream_still_ends_and_is_recorded(timeline):
    """Django's own handler (the dispatch off) knows nothing of the last part: it sends the end after the
    stream's books, as before."""
    order = call_in_order(django_application, timeline, STREAM)

    assert order[-2:] == ["recorded", "end"]
    assert b"data: [DONE]\n\n" in b"".join(event[1] for event in timeline if event[0] == "body")


BIG_CHAT = orjson.dumps({"model": "fake-openai-endpoint",
                         "messages": [{"role": "user", "content": [
                             {"type": "text", "text": "what is in this picture?"},
                             {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 3_000_000}}]}]})


def test_a_chat_call_larger_than_djangos_form_limit_is_answered(timeline):
    """An image sent inline makes a body of megabytes: max_request_size_mb bounds it, not Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB, meant for forms)."""
    assert len(BIG_CHAT) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    status, _, body = call(application, "POST", "/v1/chat/completions",
                           [*MASTER, ("content-type", "application/json")], BIG_CHAT)

    assert status == 200 and orjson.loads(body)["object"] == "chat.completion"
    assert timeline == [("recorded", "acompletion")]


def test_through_djangos_handler_a_body_over_its_limit_is_a_413_not_a_500(timeline):
    status, headers, body = call(django_application, "POST", "/v1/chat/completions",
                                 [*MASTER, ("content-type", "application/json")], BIG_CHAT)

    assert status == 413 and headers["content-type"] == "application/json"
    assert orjson.loads(body)["error"]["message"].startswith("Request body is too large")
    assert timeline == []


@pytest.mark.parametrize("query", [b"", b"a=1&b=%C3%A9"])
def test_the_hot_paths_request_has_djangos_meta_and_headers(query):
    scope = {"type": "http", "method": "post", "path": "/v1/chat/completions", "root_path": "", "query_string": query,
             "client": ("10.0.0.7", 4321), "server": ("127.0.0.1", 4000), "scheme": "http",
             "headers": [(b"host", b"gw:4000"), (b"content-type", b"application/json; charset=utf-8"),
                         (b"content-length", b"2"), (b"x-forwarded-for", b"1.1.1.1"),
                         (b"x-forwarded-for", b"2.2.2.2"), (b"x_forwarded_for", b"9.9.9.9"),
                         (b"User-Agent", b"sdk/1.0"), (b"authorization", b"Bearer sk-1")]}
    ours = HotRequest(scope, b"{}", "")
    djangos = ASGIRequest(scope, BytesIO(b"{}"))

    assert ours.META == djangos.META
    assert list(ours.headers.items()) == list(djangos.headers.items())
    assert ours.headers._store == djangos.headers._store   # built directly, as Django's mapping keeps it
    assert ours.headers["X-Forwarded-For"] == "1.1.1.1,2.2.2.2" and ours.headers["x_forwarded_for"] == "1.1.1.1,2.2.2.2"
    assert (ours.method, ours.path, ours.path_info, ours.content_type, ours.encoding, ours.GET.dict()) == (
        djangos.method, djangos.path, djangos.path_info, djangos.content_type, djangos.encoding, djangos.GET.dict())
    assert ours.body == djangos.body == b"{}" and ours.read() == b"{}"


@pytest.mark.parametrize("root_path, prefix", [("", "/"), ("/gateway", "/gateway/")])
def test_a_call_under_a_root_path_is_served_with_it_as_the_script_prefix(root_path, prefix, monkeypatch):
    """Behind a proxy that mounts the gateway under a path, the hot path resolves the route below it and the
    view sees it as Django's script prefix (what ``reverse`` puts in front of URLs); with no root path, Django's
    default."""
    from django.urls import get_script_prefix

    seen = []
    respond = HotPathHandler.respond

    async def watched(self, request, match, direct=None):
        seen.append((get_script_prefix(), request.path_info))
        return await respond(self, request, match, direct)

    monkeypatch.setattr(HotPathHandler, "respond", watched)
    status, _, body = async_to_sync(exchange)(application, "GET", f"{root_path}/v1/models", MASTER,
                                              scope={"root_path": root_path})

    assert status == 200 and orjson.loads(body)["object"] == "list"
    assert seen == [(prefix, "/v1/models")]


def test_the_proxy_operations_are_called_without_ninjas_view(timeline, monkeypatch):
    """ninja's view would add only its wrappers (and a response it does not use) to these operations."""
    from proxy.routes.chat import deployment_chat_completions

    dispatch = HotPathDispatch(django_application, namespace=proxy_api.urls_namespace)
    match = dispatch.match({"type": "http", "path": "/openai/deployments/fake-openai-endpoint/chat/completions",
                            "root_path": ""})
    assert direct_operations(match.func) == {"POST": (deployment_chat_completions, proxy_api)}

    built = []
    monkeypatch.setattr(type(proxy_api), "create_temporal_response",
                        lambda api, request: built.append(request.path))
    status, _, body = call(dispatch, "POST", "/openai/deployments/fake-openai-endpoint/chat/completions",
                           [*MASTER, ("content-type", "application/json")],
                           b'{"messages": [{"role": "user", "content": "hi"}]}')

    assert status == 200 and orjson.loads(body)["model"] == "fake-openai-endpoint"
    assert built == [] and timeline == [("recorded", "acompletion")]


def test_an_operations_error_is_rendered_by_the_apis_handlers_as_through_ninja():
    """A body that is not JSON: the pipeline raises, the API's handler answers (as ninja's view would)."""
    hot = as_django_sends_it(call(HotPathDispatch(django_application, namespace=proxy_api.urls_namespace), "POST",
                                  "/v1/chat/completions", [*MASTER, ("content-type", "application/json")],
                                  b"not json"))
    django = call(django_application, "POST", "/v1/chat/completions",
                  [*MASTER, ("content-type", "application/json")], b"not json")

    assert hot[0] == 400 and hot[0] == django[0] and hot[2] == django[2]
    assert {k: v for k, v in hot[1].items() if not k.startswith("x-litellm")} == {
        k: v for k, v in django[1].items() if not k.startswith("x-litellm")}


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_security_headers_follow_the_settings_and_the_scheme(settings, scheme):
    """Worked out once per scheme by the middlewares themselves, and still what Django's handler sends."""
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.X_FRAME_OPTIONS = "SAMEORIGIN"

    async def exchange(app):
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": scheme, "path": "/v1/models", "raw_path": b"/v1/models", "query_string": b"",
                 "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 4000),
                 "headers": [(b"authorization", f"Bearer {MASTER_KEY}".encode())]}
        messages, pending = [], [{"type": "http.request", "body": b""}]

        async def receive():
            return pending.pop() if pending else await asyncio.Event().wait()

        async def send(message):
            messages.append(message)

        await app(scope, receive, send)
        headers = {name.decode().lower(): value.decode() for name, value in messages[0]["headers"]}
        headers.pop("content-length", None)  # the hot path's own (see as_django_sends_it)
        return headers

    fresh = ASGIHandler()   # its middlewares read these settings as they are made, as the dispatch's do
    hot = async_to_sync(exchange)(HotPathDispatch(fresh, namespace=proxy_api.urls_namespace))
    django = async_to_sync(exchange)(fresh)

    assert hot == django and hot["x-frame-options"] == "SAMEORIGIN"
    assert hot.get("strict-transport-security") == ("max-age=3600; includeSubDomains" if scheme == "https" else None)


def test_an_answers_own_headers_go_out_without_becoming_djangos(timeline, monkeypatch):
    """A ProxyAnswer's x-litellm headers are encoded as it is sent, never checked into Django's mapping; the
    same answer read anywhere else has them as Django headers."""
    from proxy.answer import ProxyAnswer

    looked = []
    original = ProxyAnswer.headers.fget
    monkeypatch.setattr(ProxyAnswer, "headers", property(
        lambda self: looked.append(bool(self.__dict__.get("_own_headers"))) or original(self), ProxyAnswer.headers.fset))
    status, headers, body = call(application, "POST", "/v1/chat/completions",
                                 [*MASTER, ("content-type", "application/json")], CHAT)

    assert status == 200 and headers["content-type"] == "application/json"
    assert headers["x-litellm-model-group"] == "fake-openai-endpoint" and len(headers["x-litellm-call-id"]) == 36
    assert SECURITY_HEADERS.items() <= headers.items() and headers["content-length"] == str(len(body))
    assert True not in looked   # never looked at while ours were kept apart

    django = call(django_application, "POST", "/v1/chat/completions",
                  [*MASTER, ("content-type", "application/json")], CHAT)
    assert {k for k in django[1]} == {k for k in headers} - {"content-length"}


def test_a_stream_is_iterated_as_its_relay_s_own_parts_and_closing_them_closes_the_relay():
    """No Django wrapping generators between the relay and the server; closing what is iterated (as the hot path
    and Django's handler do, with ``aclosing``) runs the relay's ``finally`` (its books) at once."""
    from contextlib import aclosing

    from proxy.answer import EventStream

    closed = []

    async def relay():
        try:
            yield b"data: 1\n\n"
            yield b"data: 2\n\n"
        finally:
            closed.append(True)

    async def first_part(response) -> bytes:
        async with aclosing(aiter(response)) as parts:
            return await anext(parts)

    response = EventStream({"x-litellm-call-id": "c"})
    parts = relay()
    response.relay(parts)
    assert aiter(response) is parts
    assert async_to_sync(first_part)(response) == b"data: 1\n\n" and closed == [True]


def test_a_stream_whose_content_was_replaced_serves_the_replacement():
    """A middleware that replaces ``streaming_content`` (compression, say) is what the client gets."""
    from proxy.answer import EventStream

    async def relay():
        yield b"raw"

    async def replaced():
        yield "changed"   # text: Django's own iteration makes it bytes

    async def parts(response) -> list[bytes]:
        return [part async for part in response]

    response = EventStream({})
    response.relay(relay())
    response.streaming_content = replaced()
    assert async_to_sync(parts)(response) == [b"changed"]


def test_an_answer_whose_header_is_not_plain_latin1_is_sent_as_django_would():
    from proxy.answer import ProxyAnswer

    plain = ProxyAnswer(b"{}", {"x-litellm-model-group": "gpt"})
    fancy = ProxyAnswer(b"{}", {"x-litellm-model-group": "模型"})
    broken = ProxyAnswer(b"{}", {"x-litellm-model-group": "a\r\nx-injected: 1"})

    assert plain.wire_headers() == [(b"content-type", b"application/json"), (b"x-litellm-model-group", b"gpt")]
    assert fancy.wire_headers() is None and fancy["x-litellm-model-group"] == "=?utf-8?b?5qih5Z6L?="
    assert broken.wire_headers() is None
    with pytest.raises(BadHeaderError):
        broken.headers
    assert plain["x-litellm-model-group"] == "gpt" and plain.wire_headers() is None   # looked at: Django's now


def test_a_streams_own_headers_go_out_as_djangos_handler_sends_them(timeline):
    hot = call(application, "POST", "/v1/chat/completions", [*MASTER, ("content-type", "application/json")], STREAM)
    django = call(django_application, "POST", "/v1/chat/completions",
                  [*MASTER, ("content-type", "application/json")], STREAM)

    for status, headers, body in (hot, django):
        assert status == 200 and body.endswith(b"data: [DONE]\n\n")
        assert (headers["content-type"], headers["cache-control"], headers["x-accel-buffering"]) == (
            "text/event-stream", "no-cache", "no")
        assert headers["x-litellm-model-group"] == "fake-openai-endpoint" and "content-length" not in headers
    assert set(hot[1]) == set(django[1])
    assert {k: v for k, v in hot[1].items() if k not in ("x-litellm-call-id",)} == {
        k: v for k, v in django[1].items() if k not in ("x-litellm-call-id",)}


def test_a_served_call_leaves_nothing_for_the_cyclic_collector(timeline):
    """The request, its context and its books go as the call ends, freed as their counts fall: left in a
    reference cycle, every call added to the full collections that pause the event loop (one a second at
    1,000 calls/s, 20-50 ms each)."""
    import gc

    for body in (CHAT, STREAM, CHAT):   # the first calls warm the caches up
        call(application, "POST", "/v1/chat/completions", [*MASTER, ("content-type", "application/json")], body)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for body in (CHAT, STREAM, b"not json", b'{"model": "no-such-model", "messages": []}'):   # answers, refusals
            call(application, "POST", "/v1/chat/completions", [*MASTER, ("content-type", "application/json")], body)
        gc.collect()
        left = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()

    assert not left & {"HotRequest", "RequestContext", "ProxyAnswer", "EventStream", "Principal", "HttpResponse",
                       "InvalidRequestError"}, left


def test_a_request_through_djangos_handler_leaves_nothing_for_the_cyclic_collector(timeline):
    """With the hot-path dispatch off (Django's handler, ninja's view), an answered error's traceback held the
    frames that hold the call's context, which holds the error: the API's handlers now forget the frames. And
    Django's handler itself left a cycle on every request it served (its disconnect listener's RequestAborted,
    gateway_project.asgi.EndsQuietly): the answer, body and all, waited for the collector. (The request object
    is still in cycles of Django's own making: the messages storage and the lazy user refer back to it.)"""
    import gc

    headers = [*MASTER, ("content-type", "application/json")]
    requests = [("POST", "/v1/chat/completions", b"not json", 400),
                ("POST", "/v1/chat/completions", b'{"model": "no-such-model", "messages": []}', 400),
                ("GET", "/v1/models", b"", 200)]           # ninja's view through Django's handler
    for method, path, body, _ in requests:   # warm up
        call(django_application, method, path, headers, body)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for method, path, body, status in requests:
            assert call(django_application, method, path, headers, body)[0] == status, path
        gc.collect()
        left = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()

    assert not left & {"RequestContext", "InvalidRequestError", "BadRequestError", "NotFoundError", "RequestAborted",
                       "HttpResponse", "traceback", "frame", "Task"}, sorted(left)


def test_served_by_a_server_that_calls_back_on_disconnect_no_listener_task_is_made(monkeypatch):
    """Our server (proxy/server.py) hands the app a callback registration in the scope; then the call is
    cancelled by the connection itself should the client leave, and nothing waits on ``receive`` beside it."""
    listeners, hooks = [], []
    monkeypatch.setattr(HotPathHandler, "_cancel_on_disconnect",
                        lambda self, receive, client_left: listeners.append(client_left) or asyncio.sleep(0))

    def on_disconnect(callback):
        hooks.append("registered")
        return lambda: hooks.append("forgotten")

    status, _, _ = async_to_sync(exchange)(application, "POST", "/v1/chat/completions",
                                           MASTER + [("content-type", "application/json")], CHAT,
                                           scope={ON_DISCONNECT: on_disconnect})

    assert status == 200
    assert hooks == ["registered", "forgotten"] and listeners == []
