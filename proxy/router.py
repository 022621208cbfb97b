"""Public model name → its deployments, and the pick of one deployment for a call."""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

import orjson

from gateway_project.config.schema import Deployment
from proxy.http import ClientPool
from proxy.providers.registry import provider_class
from spend.cost import resolve_price
from spend.prices import Price


@dataclass(frozen=True, slots=True)
class Route:
    """One deployment, ready to call."""

    id: str
    model_group: str
    deployment: Deployment
    provider: Any
    price: Price | None

    @property
    def upstream_model(self) -> str:
        return self.deployment.litellm_params.upstream_model

    @property
    def provider_name(self) -> str:
        return self.deployment.litellm_params.provider


def deployment_id(deployment: Deployment) -> str:
    """``model_info.id`` when configured, else a stable digest of the deployment (secrets excluded)."""
    if deployment.model_info.id:
        return deployment.model_info.id
    params = deployment.litellm_params.model_dump(exclude={"api_key"})
    return hashlib.sha256(orjson.dumps([deployment.model_name, params], option=orjson.OPT_SORT_KEYS)).hexdigest()


def _price(deployment: Deployment) -> Price | None:
    params, info = deployment.litellm_params, deployment.model_info
    return resolve_price(
        model=params.upstream_model,
        input_cost_per_token=params.input_cost_per_token if params.input_cost_per_token is not None
        else info.input_cost_per_token,
        output_cost_per_token=params.output_cost_per_token if params.output_cost_per_token is not None
        else info.output_cost_per_token,
    )


class Router:
    def __init__(self, deployments: tuple[Deployment, ...], *, clients: ClientPool, default_timeout: float) -> None:
        self._groups: dict[str, list[Route]] = {}
        for deployment in deployments:
            params = deployment.litellm_params
            provider = provider_class(params.provider)(
                params, model_group=deployment.model_name, clients=clients, default_timeout=default_timeout)
            route = Route(id=deployment_id(deployment), model_group=deployment.model_name,
                          deployment=deployment, provider=provider, price=_price(deployment))
            self._groups.setdefault(deployment.model_name, []).append(route)

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(self._groups)

    def routes(self, model_group: str) -> list[Route]:
        return self._groups.get(model_group, [])

    def pick(self, model_group: str) -> Route | None:
        routes = self._groups.get(model_group)
        if not routes:
            return None
        return routes[0] if len(routes) == 1 else random.choice(routes)
