"""/spend/calculate: what a request or a response costs, without sending anything upstream."""
from __future__ import annotations

import orjson
from django.http import HttpRequest, HttpResponse
from ninja import Router

from gateway_project.errors import InvalidRequestError
from proxy.pipeline import auth
from proxy.pipeline.context import RequestContext
from proxy.runtime import get_runtime
from proxy.schemas import parse_json_object, require
from proxy.tokens import estimate_prompt_tokens
from spend.cost import cost, resolve_price

router = Router(tags=["spend"])


def _price_of(model: str):
    """A public model name uses its (first) deployment's price; anything else the price table."""
    routes = get_runtime().router.routes(model)
    return routes[0].price if routes else resolve_price(model=model)


def _usage_of(response: dict) -> tuple[int, int, int]:
    usage = response.get("usage")
    if not isinstance(usage, dict):
        raise InvalidRequestError("completion_response has no 'usage' object.", param="completion_response")
    details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    return (int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
            int(details.get("cached_tokens") or 0))


@router.post("/spend/calculate", summary="Cost of a request or a response")
async def spend_calculate(request: HttpRequest) -> HttpResponse:
    """``{"model", "messages"}``: the prompt's estimated cost. ``{"completion_response": {...}}``: the
    exact cost of a response from its usage. ``cost`` is null when the model has no known price."""
    ctx = RequestContext(request=request, call_type="spend_calculate")
    await auth.authenticate(ctx)
    body = parse_json_object(request.body)
    if isinstance(body.get("completion_response"), dict):
        response = body["completion_response"]
        model = body.get("model") or require(response, "model", str, "a string")
        prompt, completion, cached = _usage_of(response)
    else:
        model = require(body, "model", str, "a string")
        require(body, "messages", list, "an array")
        prompt, completion, cached = estimate_prompt_tokens(body), 0, 0
    value = cost(_price_of(model), prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached)
    return HttpResponse(orjson.dumps({"cost": value, "model": model, "prompt_tokens": prompt,
                                      "completion_tokens": completion}), content_type="application/json")
