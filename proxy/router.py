"""Public model name → its deployments; which deployment takes a call, and which are cooling down.

State is per process (in-flight counts, latency averages, recent failures): each worker balances
and cools down on what it sees itself, which needs no coordination and reacts within one request.
"""
from __future__ import annotations

import hashlib
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway_project.config.schema import Deployment, Reliability
from proxy.http import ClientPool
from proxy.providers.registry import provider_class
from spend import alerts
from spend.cost import resolve_price
from spend.prices import Price

logger = logging.getLogger("gateway.router")

FAILURE_WINDOW = 60.0  # seconds: allowed_fails counts failures within this window
LATENCY_SMOOTHING = 0.3
MAX_REMEMBERED_GROUPS = 4096


@dataclass(eq=False)
class Route:
    """One deployment, ready to call, with what this process has seen of it."""

    id: str
    model_group: str
    deployment: Deployment
    provider: Any
    price: Price | None
    weight: float
    in_flight: int = 0
    latency: float | None = None
    cooldown_until: float = 0.0
    failures: deque = field(default_factory=deque)

    @property
    def upstream_model(self) -> str:
        return self.deployment.litellm_params.upstream_model

    @property
    def provider_name(self) -> str:
        return self.deployment.litellm_params.provider

    def cooling_down(self, now: float) -> bool:
        return self.cooldown_until > now


def deployment_id(deployment: Deployment) -> str:
    """``model_info.id`` when configured, else a stable digest of the deployment (secrets excluded)."""
    if deployment.model_info.id:
        return deployment.model_info.id
    params = deployment.litellm_params.model_dump(exclude={"api_key"})
    return hashlib.sha256(orjson.dumps([deployment.model_name, params], option=orjson.OPT_SORT_KEYS)).hexdigest()


def _price(deployment: Deployment) -> Price | None:
    params, info = deployment.litellm_params, deployment.model_info
    return resolve_price(
        model=info.base_model or params.upstream_model,
        input_cost_per_token=params.input_cost_per_token if params.input_cost_per_token is not None
        else info.input_cost_per_token,
        output_cost_per_token=params.output_cost_per_token if params.output_cost_per_token is not None
        else info.output_cost_per_token,
    )


def _weight(deployment: Deployment) -> float:
    """simple-shuffle weight: ``weight``, else rpm, else tpm, else 1."""
    params = deployment.litellm_params
    return float(params.weight or params.rpm or params.tpm or 1)


class NoHealthyDeployment(Exception):
    """Every deployment of the group is cooling down; ``retry_after`` seconds until the first is back."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class Router:
    def __init__(self, deployments: tuple[Deployment, ...], *, clients: ClientPool, default_timeout: float,
                 strategy: str = "simple-shuffle", reliability: Reliability | None = None) -> None:
        self.strategy = strategy
        self.reliability = reliability
        self._groups: dict[str, list[Route]] = {}
        self._worst_prices: dict[str, Price | None] = {}
        self._output_caps: dict[str, int | None] = {}
        for deployment in deployments:
            params = deployment.litellm_params
            provider = provider_class(params.provider)(
                params, model_group=deployment.model_name, clients=clients, default_timeout=default_timeout)
            route = Route(id=deployment_id(deployment), model_group=deployment.model_name, deployment=deployment,
                          provider=provider, price=_price(deployment), weight=_weight(deployment))
            self._groups.setdefault(deployment.model_name, []).append(route)
        groups: dict[str, set[str]] = {}
        for deployment in deployments:
            for group in deployment.model_info.access_groups:
                groups.setdefault(group, set()).add(deployment.model_name)
        self._access_groups = {name: frozenset(models) for name, models in groups.items()}

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(self._groups)

    @property
    def access_groups(self) -> dict[str, frozenset[str]]:
        """Access group name → the public model names it grants."""
        return self._access_groups

    def routes(self, model_group: str) -> list[Route]:
        return self._groups.get(model_group, [])

    def has(self, model_group: str) -> bool:
        return model_group in self._groups

    def worst_price(self, model_group: str) -> Price | None:
        """The highest price a call to the group can incur, fallbacks included (for budget reservations);
        None when any deployment that could answer has no known price."""
        found = self._worst_prices.get(model_group, False)
        if found is False:   # the groups do not change once the router is made: worked out once per group
            found = self._remember(self._worst_prices, model_group, self._worst_price(model_group))
        return found

    def _worst_price(self, model_group: str) -> Price | None:
        groups = [model_group]
        if self.reliability is not None:
            for table in (self.reliability.fallbacks, self.reliability.context_window_fallbacks):
                groups += table.get(model_group, ())
            groups += self.reliability.default_fallbacks
        routes = [route for group in groups for route in self._groups.get(group, ())]
        if not routes or any(route.price is None for route in routes):
            return None
        return Price(input_cost_per_token=max(r.price.input_cost_per_token for r in routes),
                     output_cost_per_token=max(r.price.output_cost_per_token for r in routes))

    def output_cap(self, model_group: str) -> int | None:
        found = self._output_caps.get(model_group, False)
        if found is False:
            caps = [r.deployment.model_info.max_tokens for r in self._groups.get(model_group, ())]
            found = self._remember(self._output_caps, model_group, max(caps) if caps and all(caps) else None)
        return found

    @staticmethod
    def _remember(table: dict, model_group: str, value):
        if len(table) >= MAX_REMEMBERED_GROUPS:   # names a caller sends for groups that do not exist
            table.clear()
        table[model_group] = value
        return value

    def pick(self, model_group: str, *, exclude: frozenset[str] = frozenset()) -> Route | None:
        """A deployment for one attempt: not cooling down, preferably not tried yet in this call.

        None when the group does not exist; NoHealthyDeployment when all of it is cooling down.
        """
        routes = self._groups.get(model_group)
        if not routes:
            return None
        now = time.monotonic()
        healthy = [r for r in routes if not r.cooling_down(now)]
        if not healthy:
            raise NoHealthyDeployment(min(r.cooldown_until for r in routes) - now)
        untried = [r for r in healthy if r.id not in exclude] or healthy
        if len(untried) == 1:
            return untried[0]
        return self._choose(untried)

    def _choose(self, routes: list[Route]) -> Route:
        if self.strategy == "least-busy":
            fewest = min(r.in_flight for r in routes)
            return random.choice([r for r in routes if r.in_flight == fewest])
        if self.strategy == "latency-based-routing":
            unmeasured = [r for r in routes if r.latency is None]
            if unmeasured:
                return random.choice(unmeasured)
            return min(routes, key=lambda r: r.latency)
        return random.choices(routes, weights=[r.weight for r in routes])[0]

    # What happened on a call -------------------------------------------------------------------

    def started(self, route: Route) -> None:
        route.in_flight += 1

    def finished(self, route: Route) -> None:
        route.in_flight = max(0, route.in_flight - 1)

    def succeeded(self, route: Route, seconds: float) -> None:
        if route.latency is None:
            route.latency = seconds
        else:
            route.latency += LATENCY_SMOOTHING * (seconds - route.latency)

    def failed(self, route: Route) -> bool:
        """Count a failure; cool the deployment down past ``allowed_fails`` a minute. True if it did."""
        if self.reliability is None or len(self._groups.get(route.model_group, ())) < 2:
            return False  # a lone deployment has nothing to switch to: retries and fallbacks handle it
        now = time.monotonic()
        failures = route.failures
        failures.append(now)
        while failures and failures[0] < now - FAILURE_WINDOW:
            failures.popleft()
        if len(failures) > self.reliability.allowed_fails and self.reliability.cooldown_time > 0:
            route.cooldown_until = now + self.reliability.cooldown_time
            logger.warning("model group %s: deployment %s (%s) cools down for %gs after %d failure(s) within %gs",
                           route.model_group, route.id[:12], route.deployment.litellm_params.model,
                           self.reliability.cooldown_time, len(failures), FAILURE_WINDOW)
            alerts.deployment_failing(model_group=route.model_group, deployment_id=route.id,
                                      model=route.deployment.litellm_params.model, failures=len(failures),
                                      cooldown=self.reliability.cooldown_time)
            failures.clear()
            return True
        return False
