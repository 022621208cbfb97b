"""The model hub: what a caller may call, with providers, context windows, prices and limits.

Shared by the JSON routes (``/public/model_hub``, ``/model_group/info``) and the HTML page
(``/model_hub``). Built from the runtime's router only (no database); upstream addresses and keys are
never part of an entry.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest

from gateway_project.config import get_config
from keys.policy import model_allowed, read_api_key
from proxy.pipeline import auth
from proxy.pipeline.context import Principal, RequestContext
from proxy.router import Route
from proxy.runtime import get_runtime

PER_MILLION = 1_000_000


@dataclass(frozen=True)
class HubView:
    """Who the hub is shown to: anyone (``principal`` None, the public list) or one authenticated caller."""

    principal: Principal | None

    @property
    def public(self) -> bool:
        return self.principal is None


async def viewer(request: HttpRequest) -> HubView:
    """A request with a key sees what that key may call (a bad key is refused, even when the hub is
    public); one without sees the public list when ``general_settings.enable_public_model_hub`` is on
    (or the path is listed in ``public_routes``), else is refused with the contract's 401."""
    if read_api_key(request.headers) is None and get_config().general_settings.enable_public_model_hub:
        return HubView(principal=None)
    ctx = RequestContext(request=request, call_type="model_hub")
    await auth.authenticate(ctx)
    return HubView(principal=None if ctx.principal is auth.ANONYMOUS else ctx.principal)


def _may_call(principal: Principal, model_group: str, groups) -> bool:
    key, team = principal.key, principal.team
    return ((key is None or model_allowed(model_group, key.models, groups))
            and (team is None or model_allowed(model_group, team.models, groups)))


def visible_groups(view: HubView) -> list[str]:
    router = get_runtime().router
    if view.public:
        listed = get_config().litellm_settings.public_model_groups
        return [name for name in router.model_names if not listed or name in listed]
    groups = router.access_groups
    return [name for name in router.model_names if _may_call(view.principal, name, groups)]


def _max(values) -> float | int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _sum(values) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _per_million(cost: float | None) -> float | None:
    return None if cost is None else round(cost * PER_MILLION, 6)


def group_info(name: str, routes: list[Route], public_groups: tuple[str, ...]) -> dict:
    """One model group as LiteLLM's ``ModelGroupInfo``: prices are the highest any of its deployments
    charges (what a call may cost), limits the sum over deployments, context windows the largest."""
    infos = [route.deployment.model_info.model_dump() for route in routes]
    params = [route.deployment.litellm_params for route in routes]
    prices = [route.price for route in routes]
    known = all(price is not None for price in prices)
    input_cost = max(p.input_cost_per_token for p in prices) if known else None
    output_cost = max(p.output_cost_per_token for p in prices) if known else None
    return {
        "model_group": name,
        "providers": sorted({route.provider_name for route in routes}),
        "mode": routes[0].deployment.model_info.mode,
        "max_input_tokens": _max(info.get("max_input_tokens") or info.get("max_tokens") for info in infos),
        "max_output_tokens": _max(info.get("max_output_tokens") for info in infos),
        "input_cost_per_token": input_cost,
        "output_cost_per_token": output_cost,
        "input_cost_per_million_tokens": _per_million(input_cost),
        "output_cost_per_million_tokens": _per_million(output_cost),
        "rpm": _sum(p.rpm for p in params),
        "tpm": _sum(p.tpm for p in params),
        "is_public_model_group": not public_groups or name in public_groups,
    }


def hub_entries(view: HubView) -> list[dict]:
    router = get_runtime().router
    public_groups = get_config().litellm_settings.public_model_groups
    return [group_info(name, router.routes(name), public_groups) for name in visible_groups(view)]
