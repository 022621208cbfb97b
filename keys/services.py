"""Writes to virtual keys. Each service is atomic; caches are invalidated on commit by the model
signals in ``keys/cache.py``."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from gateway_project.durations import add_duration
from gateway_project.errors import BadRequestError, NotFoundError
from keys.hashing import KEY_PREFIX, abbreviate, digest, generate_key, to_digest
from keys.models import VirtualKey
from teams.models import Team, User, UserRole

# Fields a caller may set on a key, as they are named on the wire and on the model.
KEY_FIELDS = (
    "key_alias", "models", "max_budget", "budget_duration", "spend", "metadata", "permissions",
    "tpm_limit", "rpm_limit", "max_parallel_requests", "model_max_budget", "model_rpm_limit",
    "model_tpm_limit", "guardrails", "blocked", "aliases", "config", "allowed_routes", "enforced_params",
    "allowed_ips", "tags", "soft_budget",
)


def _team(team_id: str | None) -> Team | None:
    if team_id is None:
        return None
    team = Team.objects.filter(team_id=team_id).first()
    if team is None:
        raise BadRequestError(f"Team not found, passed team_id={team_id}", param="team_id")
    return team


def _user(user_id: str | None) -> User | None:
    """The key's owner; like LiteLLM, an unknown user_id creates an internal user."""
    if user_id is None:
        return None
    user, created = User.objects.get_or_create(username=user_id, defaults={"role": UserRole.INTERNAL_USER})
    if created:
        user.set_unusable_password()  # API-created users sign in with keys or SSO, never a password
        user.save(update_fields=["password"])
    return user


def _expiry(duration: str | None, now: datetime) -> datetime | None:
    return add_duration(now, duration) if duration else None


def _budget_reset(fields: dict[str, Any], now: datetime) -> datetime | None:
    duration = fields.get("budget_duration")
    return add_duration(now, duration) if duration else None


def _save(key: VirtualKey) -> VirtualKey:
    try:
        with transaction.atomic():
            key.save()
    except IntegrityError:
        if key.key_alias and VirtualKey.objects.filter(key_alias=key.key_alias).exclude(token=key.token).exists():
            raise BadRequestError(f"Key with alias '{key.key_alias}' already exists.", param="key_alias") from None
        raise BadRequestError("A key with this value already exists.", param="key") from None
    return key


@transaction.atomic
def key_generate(*, actor: str | None, key: str | None = None, duration: str | None = None,
                 user_id: str | None = None, team_id: str | None = None, **fields: Any) -> tuple[VirtualKey, str]:
    """Create a key; return it with the raw ``sk-…`` secret, which is not stored and not shown again."""
    if key is not None and not key.startswith(KEY_PREFIX):
        raise BadRequestError("Invalid key format. LiteLLM Virtual Key must start with 'sk-'. "
                              f"Received: {abbreviate(key)}", param="key")
    raw = key or generate_key()
    now = timezone.now()
    token = digest(raw)
    if VirtualKey.objects.filter(token=token).exists():
        raise BadRequestError("A key with this value already exists.", param="key")
    record = VirtualKey(
        token=token, key_name=abbreviate(raw), team=_team(team_id), user=_user(user_id),
        expires=_expiry(duration, now), budget_reset_at=_budget_reset(fields, now),
        created_by=actor, updated_by=actor, **{name: fields[name] for name in KEY_FIELDS if name in fields},
    )
    return _save(record), raw


def key_get(*, key: str) -> VirtualKey:
    """The key named by a raw key or its digest, or NotFoundError."""
    record = VirtualKey.objects.select_related("team", "user").filter(token=to_digest(key)).first()
    if record is None:
        raise NotFoundError("Key not found in database", param="key")
    return record


@transaction.atomic
def key_update(*, actor: str | None, key: str, duration: str | None = None, **fields: Any) -> VirtualKey:
    record = key_get(key=key)
    record = VirtualKey.objects.select_for_update().get(token=record.token)
    now = timezone.now()
    if "team_id" in fields:
        record.team = _team(fields.pop("team_id"))
    if "user_id" in fields:
        record.user = _user(fields.pop("user_id"))
    if "expires" in fields:  # an explicit date (admin, API) wins over a duration
        record.expires = fields.pop("expires")
    elif duration is not None:
        record.expires = _expiry(duration, now)
    if "budget_duration" in fields and fields["budget_duration"] != record.budget_duration:
        record.budget_reset_at = _budget_reset(fields, now)
    for name in KEY_FIELDS:
        if name in fields:
            setattr(record, name, fields[name])
    record.updated_by = actor
    return _save(record)


@transaction.atomic
def key_delete(*, keys: list[str] | None = None, key_aliases: list[str] | None = None) -> list[str]:
    """Delete every named key, or none of them: an unknown key fails the whole request."""
    named = list(keys or []) + list(key_aliases or [])
    if not named:
        raise BadRequestError("Pass 'keys' or 'key_aliases' with at least one key.", param="keys")
    found = VirtualKey.objects.filter(token__in=[to_digest(k) for k in keys or []])
    by_alias = VirtualKey.objects.filter(key_alias__in=list(key_aliases or []))
    tokens = set(found.values_list("token", flat=True))
    aliases = set(by_alias.values_list("key_alias", flat=True))
    missing = [k for k in keys or [] if to_digest(k) not in tokens] + [a for a in key_aliases or [] if a not in aliases]
    if missing:
        raise NotFoundError(f"Key not found in database: {', '.join(abbreviate(m) if m.startswith(KEY_PREFIX) else m for m in missing)}",
                            param="keys")
    for record in list(found) + list(by_alias):
        record.delete()
    return named


@transaction.atomic
def key_block(*, actor: str | None, key: str) -> VirtualKey:
    """Block a key: from the commit on, the proxy and the management API refuse it."""
    return key_update(actor=actor, key=key, blocked=True)


@transaction.atomic
def key_unblock(*, actor: str | None, key: str) -> VirtualKey:
    return key_update(actor=actor, key=key, blocked=False)


def _locked_key(key: str) -> VirtualKey:
    record = VirtualKey.objects.select_for_update().filter(token=to_digest(key)).first()
    if record is None:
        raise NotFoundError("Key not found in database", param="key")
    return record


# Columns a regenerated key takes over from the key it replaces: all but its identity and timestamps.
_CARRIED_OVER = tuple(f.attname for f in VirtualKey._meta.concrete_fields
                      if f.attname not in ("token", "key_name", "created_at", "updated_at"))


@transaction.atomic
def key_regenerate(*, actor: str | None, key: str, new_key: str | None = None,
                   **fields: Any) -> tuple[VirtualKey, str]:
    """Give a key a new secret (``new_key``, or a generated one); return the key and the new raw
    secret, shown once. The digest is the primary key, so a new row takes over the old one's
    settings, spend, owner, alias and creation date, and the old row is deleted: its post_delete
    evicts it from the proxy's cache on commit, and the old secret stops working at once. ``fields``
    then change settings as ``key_update`` does."""
    if new_key is not None and not new_key.startswith(KEY_PREFIX):
        raise BadRequestError("Invalid key format. LiteLLM Virtual Key must start with 'sk-'. "
                              f"Received: {abbreviate(new_key)}", param="new_key")
    old = _locked_key(key)
    raw = new_key or generate_key()
    token = digest(raw)
    if VirtualKey.objects.filter(token=token).exists():
        raise BadRequestError("A key with this value already exists.", param="new_key")
    carried = {name: getattr(old, name) for name in _CARRIED_OVER}
    created_at = old.created_at
    old.delete()  # first: key_alias is unique
    VirtualKey(token=token, key_name=abbreviate(raw), **carried).save(force_insert=True)
    # auto_now_add stamps the insert time; the key keeps its creation date. A queryset update is safe
    # here: the row was inserted in this transaction and its post_save already queued the eviction.
    VirtualKey.objects.filter(token=token).update(created_at=created_at)
    return key_update(actor=actor, key=token, **fields), raw
