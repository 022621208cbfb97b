"""Frozen team and customer snapshots for the proxy; invalidated when a row changes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from gateway_project.snapshots import SnapshotCache
from teams.models import Customer, Team


@dataclass(frozen=True, slots=True)
class TeamRecord:
    team_id: str
    team_alias: str | None
    models: tuple[str, ...]
    metadata: dict[str, Any]
    blocked: bool
    max_budget: float | None
    spend: float
    tpm_limit: int | None
    rpm_limit: int | None
    max_parallel_requests: int | None

    @classmethod
    def from_model(cls, team: Team) -> TeamRecord:
        return cls(team_id=team.team_id, team_alias=team.team_alias, models=tuple(team.models or ()),
                   metadata=dict(team.metadata or {}), blocked=team.blocked, max_budget=team.max_budget,
                   spend=team.spend, tpm_limit=team.tpm_limit, rpm_limit=team.rpm_limit,
                   max_parallel_requests=team.max_parallel_requests)


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    user_id: str
    blocked: bool
    models: tuple[str, ...]
    max_budget: float | None
    spend: float

    @classmethod
    def from_model(cls, customer: Customer) -> CustomerRecord:
        return cls(user_id=customer.user_id, blocked=customer.blocked, models=tuple(customer.models or ()),
                   max_budget=customer.max_budget, spend=customer.spend)


@sync_to_async
def _load_team(team_id: str) -> TeamRecord | None:
    team = Team.objects.filter(team_id=team_id).first()
    return TeamRecord.from_model(team) if team else None


@sync_to_async
def _load_customer(user_id: str) -> CustomerRecord | None:
    customer = Customer.objects.filter(user_id=user_id).first()
    return CustomerRecord.from_model(customer) if customer else None


def _ttl() -> float:
    return settings.GATEWAY_CACHE_TTL


team_cache: SnapshotCache[TeamRecord] = SnapshotCache("team", _load_team, ttl=_ttl)
customer_cache: SnapshotCache[CustomerRecord] = SnapshotCache("customer", _load_customer, ttl=_ttl)


async def team_lookup(team_id: str) -> TeamRecord | None:
    return await team_cache.get(team_id)


async def customer_lookup(user_id: str) -> CustomerRecord | None:
    return await customer_cache.get(user_id)


# Ids are read at signal time: Django clears a deleted instance's primary key before on_commit runs.
def _on_team_write(sender, instance: Team, **kwargs) -> None:
    team_id = instance.team_id
    transaction.on_commit(lambda: team_cache.invalidate(team_id))


def _on_customer_write(sender, instance: Customer, **kwargs) -> None:
    user_id = instance.user_id
    transaction.on_commit(lambda: customer_cache.invalidate(user_id))


post_save.connect(_on_team_write, sender=Team, dispatch_uid="team_cache_save")
post_delete.connect(_on_team_write, sender=Team, dispatch_uid="team_cache_delete")
post_save.connect(_on_customer_write, sender=Customer, dispatch_uid="customer_cache_save")
post_delete.connect(_on_customer_write, sender=Customer, dispatch_uid="customer_cache_delete")
