"""The proxy's answers (``ProxyAnswer``, buffered JSON; ``EventStream``, a relayed stream), whose own headers
(``x-litellm-*``, a stream's cache directives) wait to become Django headers until something asks for the
response's headers.

Django checks and stores each header as a response is made (``ResponseHeaders``): five to eight of them on
every call, a few microseconds warm and some tens cold, for headers that only the server will read. Served
by the hot path (``proxy.hotpath``), the answer's headers go out encoded in one step (``wire_headers``) and
are never turned into Django's; anywhere else (Django's handler, a middleware, a test reading
``response["x-litellm-call-id"]``) the first look at ``headers`` adds them, through Django's own checks, and
the answer is a Django response like any other.

Both are made without Django's constructors: what those set for these arguments (a content type, a status,
bytes or a relay) is set directly (``_made``), about a fifth of their cost — a few microseconds warm, some
tens on a cold call. ``tests/proxy/test_answer.py`` holds the attributes equal to what Django's own
constructors set, so a Django release that adds one fails there rather than here.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from functools import lru_cache
from http.cookies import SimpleCookie

from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import ResponseHeaders


JSON = "application/json"
EVENT_STREAM = "text/event-stream"


class OwnHeaders:
    """Mixed into a Django response class: ``own_headers`` kept apart until ``headers`` is looked at."""

    def _made(self, content_type: str, own_headers: dict[str, str]) -> None:
        """What ``HttpResponseBase.__init__(content_type=content_type)`` sets (no status, reason, charset or
        headers given), set directly; then ``own_headers`` kept apart. ``content_type`` is one of this
        module's constants: plain ASCII, checked once by the tests rather than on every call."""
        headers = ResponseHeaders.__new__(ResponseHeaders)
        headers._store = {"content-type": ("Content-Type", content_type)}
        self._django_headers = headers
        self._charset = None
        self._resource_closers = []
        self._handler_class = None
        self.cookies = SimpleCookie()
        self.closed = False
        self._reason_phrase = None
        self._own_headers = own_headers
        self._content_type = content_type

    @property
    def headers(self):
        own = self.__dict__.get("_own_headers")
        if own:   # first look: they become Django headers, with Django's checks (a bad value raises here)
            self._own_headers = None
            for name, value in own.items():
                self._django_headers[name] = value
        return self._django_headers

    @headers.setter
    def headers(self, value) -> None:
        self._django_headers = value

    @property
    def untouched(self) -> bool:
        """No one has looked at the headers yet: they are Content-Type and ours, nothing else."""
        return bool(self.__dict__.get("_own_headers")) and len(self._django_headers) == 1

    def wire_headers(self) -> list[tuple[bytes, bytes]] | None:
        """The headers as the server sends them (names and values encoded), when the response is untouched
        and all of ours are plain latin-1 without line breaks; else None (send ``items()``)."""
        if not self.untouched:
            return None
        own = self._own_headers
        try:
            values = [value.encode("latin-1") for value in own.values()]
        except UnicodeEncodeError:   # Django MIME-encodes these: leave it to it
            return None
        joined = b"".join(values)   # one look for a line break or NUL in any of them
        if b"\n" in joined or b"\r" in joined or b"\x00" in joined:
            return None
        headers = [(b"content-type", _ascii(self._content_type))]
        headers += zip(map(_ascii, own), values)
        return headers


@lru_cache(maxsize=256)
def _ascii(name: str) -> bytes:
    """A header name (ours: a handful of constants), or one of this module's content types, encoded."""
    return name.encode("ascii")


class ProxyAnswer(OwnHeaders, HttpResponse):
    """A buffered JSON answer."""

    def __init__(self, content: bytes, own_headers: dict[str, str], *, status: int = 200) -> None:
        # HttpResponse(content, content_type=JSON, status=status), as ``_made`` says.
        if not 100 <= status <= 599:
            raise ValueError("HTTP status code must be an integer from 100 to 599.")
        self._made(JSON, own_headers)
        self.status_code = status
        self._container = [bytes(content)]


class EventStream(OwnHeaders, StreamingHttpResponse):
    """A relayed stream (its content given by ``proxy.pipeline.upstream`` through ``relay``). ``ended`` turns
    true as its last part is handed out: what the relay does after it (closing the upstream, the call's books)
    need not hold back the end of the answer (proxy.hotpath).

    Iterated (``async for``, as the hot path and Django's handler do), it hands out the relay's own parts, which
    are bytes already, rather than through Django's two wrapping generators (``__aiter__`` and
    ``streaming_content``'s): two async generators less per stream, made, hooked into the event loop and
    finalised, and two frames less per part. Closing what is iterated closes the relay itself. Content set any
    other way (a middleware replacing ``streaming_content``) is iterated as Django does."""

    ended = False
    _parts: AsyncIterator[bytes] | None = None

    def __init__(self, own_headers: dict[str, str]) -> None:
        # StreamingHttpResponse(content_type=EVENT_STREAM), as ``_made`` says: no content until ``relay``.
        self._made(EVENT_STREAM, own_headers)
        self._iterator = iter(())
        self.is_async = False

    def relay(self, parts: AsyncIterator[bytes]) -> None:
        self.streaming_content = parts
        self._parts = parts

    def _set_streaming_content(self, value) -> None:   # every assignment of streaming_content
        super()._set_streaming_content(value)
        self._parts = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        parts, self._parts = self._parts, None   # once, as Django's own iteration
        return parts if parts is not None else super().__aiter__()
