"""The HTTP protocol ``manage.py gateway`` serves with: uvicorn's httptools protocol, with a graceful shutdown
that does not reset a keep-alive connection a client is reusing at that moment."""
from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

IDLE_GRACE = 1.0   # seconds an idle keep-alive connection stays open once the worker starts to shut down


class GracefulHttpToolsProtocol(HttpToolsProtocol):
    """When a worker shuts down (SIGTERM, or SIGHUP replacing it by a new one), uvicorn closes each idle
    keep-alive connection at once. A client reusing the connection may have sent its next request already:
    the kernel answers it with a reset, and the client sees "connection reset by peer" for a call that never
    reached the gateway (a POST, which no client library retries on its own). Here an idle connection stays
    open for ``IDLE_GRACE``: a request already on its way is served, answered with ``Connection: close``, and
    the connection closes after it (the client's next request opens a connection to a live worker); one that
    stays idle is closed when the grace ends. A connection busy with a request is left to uvicorn (closed after
    its answer, as before)."""

    draining = False

    def shutdown(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self.draining = True
            self.loop.call_later(IDLE_GRACE, self._close_if_idle)
        else:
            super().shutdown()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.draining:
            self.cycle.keep_alive = False   # answered with Connection: close, then closed

    def _close_if_idle(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()
