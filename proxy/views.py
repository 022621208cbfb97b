"""The model hub page: a server-rendered table of the models a caller may use (plain Django view)."""
from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from gateway_project.errors import GatewayError, error_json
from proxy import model_hub


def _price(per_million: float | None) -> str:
    return "unknown" if per_million is None else f"{per_million:.6f}".rstrip("0").rstrip(".")


async def model_hub_page(request: HttpRequest) -> HttpResponse:
    """``/model_hub``: public when ``enable_public_model_hub`` is on, else for a key's holder (any of the
    key headers); refusals are the contract's error JSON."""
    try:
        view = await model_hub.viewer(request)
    except GatewayError as exc:
        return HttpResponse(error_json(exc), status=exc.status, content_type="application/json",
                            headers=exc.headers or None)
    html = render_to_string("proxy/model_hub.html", {
        "title": settings.DOCS_TITLE, "description": settings.DOCS_DESCRIPTION,
        "models": [{**entry, "input_price": _price(entry["input_cost_per_million_tokens"]),
                    "output_price": _price(entry["output_cost_per_million_tokens"])}
                   for entry in model_hub.hub_entries(view)],
        "public": view.public,
    })
    return HttpResponse(html, content_type="text/html; charset=utf-8")
