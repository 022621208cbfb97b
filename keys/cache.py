"""``key_lookup(token)``: the proxy's read of a virtual key, as a frozen snapshot.

No database query for a cached key. Any save or delete of a key (API, admin, a team's cascade)
invalidates its entry when the transaction commits.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from gateway_project.snapshots import SnapshotCache, invalidate_everywhere, register, snapshot_loader
from keys.hashing import digest
from keys.models import VirtualKey
from teams.cache import NO_LIMITS, Limits


@dataclass(frozen=True, slots=True)
class KeyRecord:
    token: str
    key_name: str
    key_alias: str | None
    team_id: str | None
    user_id: str | None
    user_role: str | None
    models: tuple[str, ...]
    metadata: dict[str, Any]
    permissions: dict[str, Any]
    enforced_params: tuple[str, ...]
    allowed_ips: tuple[str, ...]
    allowed_routes: tuple[str, ...]
    tags: tuple[str, ...]
    max_budget: float | None
    spend: float
    tpm_limit: int | None
    rpm_limit: int | None
    max_parallel_requests: int | None
    expires: datetime | None
    blocked: bool
    limits: Limits = NO_LIMITS
    # Per-model limits of this key: {"gpt-4o": 100}
    model_rpm_limit: dict[str, int] | None = None
    model_tpm_limit: dict[str, int] | None = None
    guardrails: tuple[str, ...] = ()

    @classmethod
    def from_model(cls, key: VirtualKey) -> KeyRecord:
        user = key.user
        return cls(
            token=key.token, key_name=key.key_name, key_alias=key.key_alias, team_id=key.team_id,
            user_id=user.username if user else None, user_role=user.role if user else None,
            models=tuple(key.models or ()), metadata=dict(key.metadata or {}),
            permissions=dict(key.permissions or {}), enforced_params=tuple(key.enforced_params or ()),
            allowed_ips=tuple(key.allowed_ips or ()), allowed_routes=tuple(key.allowed_routes or ()),
            tags=tuple(key.tags or ()), max_budget=key.max_budget, spend=key.spend,
            tpm_limit=key.tpm_limit, rpm_limit=key.rpm_limit,
            max_parallel_requests=key.max_parallel_requests, expires=key.expires, blocked=key.blocked,
            limits=Limits.of(key), model_rpm_limit=dict(key.model_rpm_limit or {}) or None,
            model_tpm_limit=dict(key.model_tpm_limit or {}) or None,
            guardrails=tuple(key.guardrails or ()),
        )


@snapshot_loader
def _load(token: str) -> KeyRecord | None:
    key = VirtualKey.objects.select_related("user").filter(token=token).first()
    return KeyRecord.from_model(key) if key else None


key_cache: SnapshotCache[KeyRecord] = register(SnapshotCache("key", _load, ttl=lambda: settings.GATEWAY_CACHE_TTL))


async def key_lookup(raw_key: str) -> KeyRecord | None:
    """The snapshot of the key ``raw_key``, or None when no such key exists."""
    return await key_cache.get(digest(raw_key))


def _on_key_write(sender, instance: VirtualKey, **kwargs) -> None:
    # Read the token now: Django clears a deleted instance's primary key before on_commit runs.
    token = instance.token
    transaction.on_commit(lambda: invalidate_everywhere(key_cache, token))


post_save.connect(_on_key_write, sender=VirtualKey, dispatch_uid="key_cache_save")
post_delete.connect(_on_key_write, sender=VirtualKey, dispatch_uid="key_cache_delete")


def _on_user_write(sender, instance, **kwargs) -> None:
    # A key's snapshot carries its user's role; a role change must reach cached keys too.
    def invalidate() -> None:
        for token in VirtualKey.objects.filter(user_id=instance.pk).values_list("token", flat=True):
            invalidate_everywhere(key_cache, token)

    transaction.on_commit(invalidate)


post_save.connect(_on_user_write, sender=settings.AUTH_USER_MODEL, dispatch_uid="key_cache_user_save")
