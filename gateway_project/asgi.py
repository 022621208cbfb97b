"""ASGI entry point: Django, plus a small lifespan handler that opens and closes the proxy runtime
(pooled upstream clients, the spend writer) and serves the admin's static files."""
from __future__ import annotations

import os

from gateway_project.bootstrap import prepare_environment

prepare_environment()  # USE_AWS_KMS decryption, before settings (a no-op when manage.py did it)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_application = get_asgi_application()

from proxy import runtime  # noqa: E402  (after Django is set up)
from proxy.pipeline.limits import ConcurrencyLimit, RequestSizeLimit  # noqa: E402


class LifespanApp:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await runtime.startup()
                except Exception as exc:  # start-up must fail loudly, not half-start
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await runtime.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


application = LifespanApp(ConcurrencyLimit(RequestSizeLimit(ASGIStaticFilesHandler(django_application))))
