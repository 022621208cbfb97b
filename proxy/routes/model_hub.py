"""The model hub's JSON: /public/model_hub (public when enabled), /public/model_hub/info, /model_group/info."""
from __future__ import annotations

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Router

from proxy import model_hub
from proxy.pipeline import auth
from proxy.pipeline.context import RequestContext

router = Router(tags=["model hub"])


def _json(body) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), content_type="application/json")


@router.get("/public/model_hub", operation_id="public_model_hub", summary="Public model hub")
async def public_model_hub(request: HttpRequest) -> HttpResponse:
    """The model groups a caller may use, with providers, context windows, prices and limits. Without a key
    only when ``general_settings.enable_public_model_hub`` is on; with one, what that key may call."""
    return _json(model_hub.hub_entries(await model_hub.viewer(request)))


@router.get("/public/model_hub/info", operation_id="public_model_hub_info", summary="Model hub page details")
async def public_model_hub_info(request: HttpRequest) -> HttpResponse:
    await model_hub.viewer(request)  # same access as the hub itself
    return _json({"docs_title": settings.DOCS_TITLE, "custom_docs_description": settings.DOCS_DESCRIPTION,
                  "useful_links": {"API docs": "/", "Model hub": "/model_hub"}})


@router.get("/model_group/info", operation_id="model_group_info", summary="Model group details")
async def model_group_info(request: HttpRequest) -> HttpResponse:
    """Per public model name: providers, prices, limits, for the models the key may call."""
    ctx = RequestContext(request=request, call_type="model_group_info")
    await auth.authenticate(ctx)
    view = model_hub.HubView(principal=None if ctx.principal is auth.ANONYMOUS else ctx.principal)
    return _json({"data": model_hub.hub_entries(view)})
