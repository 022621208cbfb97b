"""Frozen team and customer snapshots for the proxy; invalidated when a row changes."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from gateway_project.snapshots import SnapshotCache, invalidate_everywhere, register, snapshot_loader
from teams.callbacks import NO_TEAM_LOGGING, TeamLogging, team_logging_of
from teams.models import Customer, Team, User


@dataclass(frozen=True, slots=True)
class Limits:
    """Budget and rate limits of one level (key, team, user, customer), as admission reads them."""

    max_budget: float | None = None
    spend: float = 0.0
    budget_reset_at: datetime | None = None
    tpm_limit: int | None = None
    rpm_limit: int | None = None
    max_parallel_requests: int | None = None
    budget_epoch: int = 0

    @classmethod
    def of(cls, row) -> Limits:
        return cls(max_budget=row.max_budget, spend=row.spend, budget_reset_at=row.budget_reset_at,
                   tpm_limit=row.tpm_limit, rpm_limit=row.rpm_limit, max_parallel_requests=row.max_parallel_requests,
                   budget_epoch=row.budget_epoch)

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.max_budget, self.tpm_limit, self.rpm_limit, self.max_parallel_requests))


NO_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class UserRecord:
    user_id: str
    role: str
    models: tuple[str, ...]
    limits: Limits

    @classmethod
    def from_model(cls, user: User) -> UserRecord:
        return cls(user_id=user.username, role=user.role, models=tuple(user.models or ()), limits=Limits.of(user))


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
    limits: Limits = NO_LIMITS
    logging: TeamLogging = NO_TEAM_LOGGING   # parsed once per snapshot, read by spend.team_logging

    @classmethod
    def from_model(cls, team: Team) -> TeamRecord:
        return cls(team_id=team.team_id, team_alias=team.team_alias, models=tuple(team.models or ()),
                   metadata=dict(team.metadata or {}), blocked=team.blocked, max_budget=team.max_budget,
                   spend=team.spend, tpm_limit=team.tpm_limit, rpm_limit=team.rpm_limit,
                   max_parallel_requests=team.max_parallel_requests, limits=Limits.of(team),
                   logging=team_logging_of(team.metadata))


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    user_id: str
    blocked: bool
    models: tuple[str, ...]
    max_budget: float | None
    spend: float
    limits: Limits = NO_LIMITS

    @classmethod
    def from_model(cls, customer: Customer) -> CustomerRecord:
        return cls(user_id=customer.user_id, blocked=customer.blocked, models=tuple(customer.models or ()),
                   max_budget=customer.max_budget, spend=customer.spend, limits=Limits.of(customer))


@snapshot_loader
def _load_team(team_id: str) -> TeamRecord | None:
    team = Team.objects.filter(team_id=team_id).first()
    return TeamRecord.from_model(team) if team else None


@snapshot_loader
def _load_user(user_id: str) -> UserRecord | None:
    user = User.objects.filter(username=user_id).first()
    return UserRecord.from_model(user) if user else None


@snapshot_loader
def _load_customer(user_id: str) -> CustomerRecord | None:
    customer = Customer.objects.filter(user_id=user_id).first()
    return CustomerRecord.from_model(customer) if customer else None


def _ttl() -> float:
    return settings.GATEWAY_CACHE_TTL


team_cache: SnapshotCache[TeamRecord] = register(SnapshotCache("team", _load_team, ttl=_ttl))
customer_cache: SnapshotCache[CustomerRecord] = register(SnapshotCache("customer", _load_customer, ttl=_ttl))
user_cache: SnapshotCache[UserRecord] = register(SnapshotCache("user", _load_user, ttl=_ttl))


async def team_lookup(team_id: str) -> TeamRecord | None:
    return await team_cache.get(team_id)


async def customer_lookup(user_id: str) -> CustomerRecord | None:
    return await customer_cache.get(user_id)


async def user_lookup(user_id: str) -> UserRecord | None:
    return await user_cache.get(user_id)


# Ids are read at signal time: Django clears a deleted instance's primary key before on_commit runs.
def _on_team_write(sender, instance: Team, **kwargs) -> None:
    team_id = instance.team_id
    transaction.on_commit(lambda: invalidate_everywhere(team_cache, team_id))


def _on_customer_write(sender, instance: Customer, **kwargs) -> None:
    user_id = instance.user_id
    transaction.on_commit(lambda: invalidate_everywhere(customer_cache, user_id))


post_save.connect(_on_team_write, sender=Team, dispatch_uid="team_cache_save")
post_delete.connect(_on_team_write, sender=Team, dispatch_uid="team_cache_delete")
post_save.connect(_on_customer_write, sender=Customer, dispatch_uid="customer_cache_save")
post_delete.connect(_on_customer_write, sender=Customer, dispatch_uid="customer_cache_delete")


def _on_user_write(sender, instance: User, **kwargs) -> None:
    username = instance.username
    transaction.on_commit(lambda: invalidate_everywhere(user_cache, username))


post_save.connect(_on_user_write, sender=User, dispatch_uid="user_cache_save")
post_delete.connect(_on_user_write, sender=User, dispatch_uid="user_cache_delete")
