"""/models and /v1/models: the models the calling key may use."""
from __future__ import annotations

import orjson
from django.http import HttpRequest, HttpResponse
from ninja import Router

from keys.policy import model_allowed
from proxy.pipeline import auth
from proxy.pipeline.context import RequestContext
from proxy.runtime import get_runtime

router = Router(tags=["models"])


async def list_models(request: HttpRequest) -> HttpResponse:
    """OpenAI's model list, narrowed to what the key and its team may call."""
    ctx = RequestContext(request=request, call_type="models")
    await auth.authenticate(ctx)
    runtime = get_runtime()
    key, team = ctx.principal.key, ctx.principal.team
    data = [
        {"id": name, "object": "model", "created": runtime.started_at,
         "owned_by": runtime.router.routes(name)[0].provider_name}
        for name in runtime.router.model_names
        if (key is None or model_allowed(name, key.models)) and (team is None or model_allowed(name, team.models))
    ]
    return HttpResponse(orjson.dumps({"object": "list", "data": data}), content_type="application/json")


for _path, _operation in (("/models", "models"), ("/v1/models", "v1_models")):
    router.add_api_operation(_path, ["GET"], list_models, operation_id=_operation, summary="List models")
