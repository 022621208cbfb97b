"""Management-side reads of keys: filtered, paginated, serialized to the contract's shapes."""
from __future__ import annotations

import math
from typing import Any

from django.db.models import Q, QuerySet

from keys.hashing import to_digest
from keys.models import VirtualKey


def key_info_dict(key: VirtualKey) -> dict[str, Any]:
    """A key as ``/key/info`` shows it: every setting, never the raw key."""
    return {
        "key_name": key.key_name,
        "key_alias": key.key_alias,
        "token_id": key.token,
        "spend": key.spend,
        "max_budget": key.max_budget,
        "budget_duration": key.budget_duration,
        "budget_reset_at": key.budget_reset_at,
        "soft_budget": key.soft_budget,
        "expires": key.expires,
        "models": key.models,
        "aliases": key.aliases,
        "config": key.config,
        "user_id": key.user.username if key.user_id else None,
        "team_id": key.team_id,
        "permissions": key.permissions,
        "metadata": key.metadata,
        "tags": key.tags,
        "guardrails": key.guardrails,
        "enforced_params": key.enforced_params,
        "allowed_ips": key.allowed_ips,
        "allowed_routes": key.allowed_routes,
        "tpm_limit": key.tpm_limit,
        "rpm_limit": key.rpm_limit,
        "max_parallel_requests": key.max_parallel_requests,
        "model_max_budget": key.model_max_budget,
        "model_rpm_limit": key.model_rpm_limit,
        "model_tpm_limit": key.model_tpm_limit,
        "blocked": key.blocked,
        "created_by": key.created_by,
        "updated_by": key.updated_by,
        "created_at": key.created_at,
        "updated_at": key.updated_at,
    }


def key_list(*, user_id: str | None = None, team_id: str | None = None, key_alias: str | None = None,
             key_hash: str | None = None) -> QuerySet[VirtualKey]:
    keys = VirtualKey.objects.select_related("user").order_by("-created_at", "token")
    if user_id is not None:
        keys = keys.filter(user__username=user_id)
    if team_id is not None:
        keys = keys.filter(team_id=team_id)
    if key_alias is not None:
        keys = keys.filter(key_alias=key_alias)
    if key_hash is not None:
        keys = keys.filter(token=key_hash)
    return keys


def keys_named(*, keys: list[str] | None = None, key_aliases: list[str] | None = None) -> list[VirtualKey]:
    """The existing keys among those named by raw key, digest or alias, with their users."""
    tokens = [to_digest(k) for k in keys or []]
    named = Q(token__in=tokens) | Q(key_alias__in=list(key_aliases or []))
    return list(VirtualKey.objects.select_related("user").filter(named))


def paginate(queryset: QuerySet, *, page: int, size: int) -> tuple[list, int, int]:
    """One page of ``queryset`` with the total count and the number of pages."""
    total = queryset.count()
    rows = list(queryset[(page - 1) * size: page * size])
    return rows, total, max(1, math.ceil(total / size))
