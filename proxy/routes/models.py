"""/models, /v1/models and /model/info: the models the calling key may use."""
from __future__ import annotations

import re

import orjson
from django.http import HttpRequest, HttpResponse
from ninja import Router

from keys.policy import model_allowed
from proxy.pipeline import auth
from proxy.pipeline.context import Principal, RequestContext
from proxy.router import Route
from proxy.runtime import get_runtime
from teams.models import UserRole

router = Router(tags=["models"])

# Never shown: upstream credentials, whatever the provider calls them.
_SECRET_PARAM = re.compile(r"key|secret|token|password|credential", re.IGNORECASE)


def _may_call(principal: Principal, model_group: str) -> bool:
    key, team = principal.key, principal.team
    groups = get_runtime().router.access_groups
    return ((key is None or model_allowed(model_group, key.models, groups))
            and (team is None or model_allowed(model_group, team.models, groups)))


async def _principal(request: HttpRequest) -> Principal:
    ctx = RequestContext(request=request, call_type="models")
    await auth.authenticate(ctx)
    return ctx.principal


def _json(body) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), content_type="application/json")


async def list_models(request: HttpRequest) -> HttpResponse:
    """OpenAI's model list, narrowed to what the key and its team may call."""
    principal = await _principal(request)
    runtime = get_runtime()
    data = [{"id": name, "object": "model", "created": runtime.started_at,
             "owned_by": runtime.router.routes(name)[0].provider_name}
            for name in runtime.router.model_names if _may_call(principal, name)]
    return _json({"object": "list", "data": data})


def _deployment_info(route: Route, *, admin: bool) -> dict:
    params = route.deployment.litellm_params.model_dump(exclude_none=True)
    shown = {k: v for k, v in params.items() if not _SECRET_PARAM.search(k) and (admin or k != "api_base")}
    info = route.deployment.model_info.model_dump(exclude_none=True)
    info.update(id=route.id, litellm_provider=route.provider_name, mode=route.deployment.model_info.mode,
                input_cost_per_token=route.price.input_cost_per_token if route.price else None,
                output_cost_per_token=route.price.output_cost_per_token if route.price else None,
                rpm=params.get("rpm"), tpm=params.get("tpm"))
    return {"model_name": route.model_group, "litellm_params": shown, "model_info": info}


async def model_info(request: HttpRequest) -> HttpResponse:
    """Each deployment the key may call: provider, limits, prices. Upstream keys are never shown;
    upstream addresses only to proxy admins."""
    principal = await _principal(request)
    admin = principal.role == UserRole.PROXY_ADMIN
    runtime = get_runtime()
    data = [_deployment_info(route, admin=admin) for name in runtime.router.model_names
            if _may_call(principal, name) for route in runtime.router.routes(name)]
    return _json({"data": data})


for _path, _operation in (("/models", "models"), ("/v1/models", "v1_models")):
    router.add_api_operation(_path, ["GET"], list_models, operation_id=_operation, summary="List models")
for _path, _operation in (("/model/info", "model_info"), ("/v1/model/info", "v1_model_info")):
    router.add_api_operation(_path, ["GET"], model_info, operation_id=_operation, summary="Deployment details")
