"""ASGI entry point: Django, plus a small lifespan handler that opens and closes the proxy runtime
(pooled upstream clients, the spend writer), the ASGI-level limits, the hot-path dispatch of the proxy's
OpenAI routes (``proxy/hotpath.py``), and the admin's static files."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from gateway_project.bootstrap import prepare_environment

prepare_environment()  # USE_AWS_KMS decryption, before settings (a no-op when manage.py did it)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")

import django  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.exceptions import RequestAborted  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402


class EndsQuietly:
    """Django's ASGI handler listens for the client's disconnect beside the view, and the server says
    ``http.disconnect`` once the answer is sent (uvicorn does, on every request). Django's listener then raises
    ``RequestAborted``, which the handler takes from the task and drops; taken that way its traceback holds the
    handler's frame, which holds the task, which holds the error: a reference cycle per request that kept the
    whole request and answer (its body too) until the cyclic collector came by. Here the listener just returns:
    the handler treats a finished listener as before (a view still running is cancelled)."""

    async def listen_for_disconnect(self, receive):
        try:
            await super().listen_for_disconnect(receive)
        except RequestAborted:
            return


class DjangoHandler(EndsQuietly, ASGIHandler):
    """``get_asgi_application()``'s handler, ending quietly."""


class StaticFilesHandler(EndsQuietly, ASGIStaticFilesHandler):
    """The admin's static files (``ASGIStaticFilesHandler``), ending quietly."""


django.setup(set_prefix=False)   # as get_asgi_application() does
django_application = DjangoHandler()

from gateway_project import draining, heap  # noqa: E402
from proxy import runtime  # noqa: E402  (after Django is set up)
from proxy.api import api as proxy_api  # noqa: E402
from proxy.hotpath import HotPathDispatch  # noqa: E402
from proxy.pipeline.limits import ConcurrencyLimit, RequestSizeLimit  # noqa: E402

logger = logging.getLogger("gateway")


class LifespanApp:
    """Start-up and shutdown of the proxy runtime. At shutdown the server has stopped accepting and waited
    (``GATEWAY_GRACEFUL_TIMEOUT``) for requests and streams to finish, cancelling the rest; those record
    their partial spend as they unwind, so they are awaited briefly before the spend buffer is flushed."""

    DRAIN_SECONDS = 5.0

    def __init__(self, app, limiter: ConcurrencyLimit | None = None) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        heap_keeper = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await runtime.startup()
                    heap.freeze_startup_heap()   # imports the URLconf: a broken one fails the start, not a request
                except Exception as exc:  # start-up must fail loudly, not half-start
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                heap_keeper = asyncio.create_task(heap.keep_imports_frozen())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if left := await draining.cancel_running(self.DRAIN_SECONDS):
                    logger.error("shutdown: %d calls did not unwind; their spend rows may be missing", left)
                if left := await draining.wait_closing(self.DRAIN_SECONDS):
                    logger.error("shutdown: %d calls were still being recorded; their spend rows may be missing",
                                 left)
                if self.limiter is not None and not await self.limiter.drained(self.DRAIN_SECONDS):
                    logger.error("shutdown: %d requests still unwinding; their spend rows may be missing",
                                 self.limiter.in_flight)
                await runtime.shutdown()
                if heap_keeper is not None:
                    heap_keeper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await heap_keeper
                await send({"type": "lifespan.shutdown.complete"})
                return


# The proxy's OpenAI routes skip Django's middleware stack and request signals (proxy/hotpath.py,
# docs/proxy.md "How a request is served"); everything else is Django's.
_limiter = ConcurrencyLimit(RequestSizeLimit(HotPathDispatch(StaticFilesHandler(django_application),
                                                             namespace=proxy_api.urls_namespace)))
application = LifespanApp(_limiter, limiter=_limiter)
