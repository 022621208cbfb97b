"""What is audited, and the signal receivers that turn auditlog's entries into chained records.

Each app registers its models from its own ``AppConfig.ready()`` with ``register`` (secrets excluded
there); nothing else writes audit records, and no endpoint does.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from auditlog.context import auditlog_disabled
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from auditlog.signals import post_log, pre_log
from django.db import transaction
from django.db.models import Model, prefetch_related_objects
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save

from gateway_project.audit import services
from gateway_project.audit.actor import current_actor
from gateway_project.audit.services import changed
from gateway_project.config import get_config

# Kept by the gateway itself, not set by anyone: spend counters, budget resets, save times. Never
# recorded, so the spend writer and the budget-reset job leave no audit trail of their own.
BOOKKEEPING = ("updated_at", "spend", "budget_reset_at", "budget_epoch")


@dataclass(frozen=True)
class Audited:
    table: str
    values: Callable[[Any], dict[str, Any]]
    object_id: str
    exclude: frozenset[str]
    fields: tuple[str, ...]
    prefetch: tuple[str, ...]

    def snapshot(self, instance: Model) -> dict[str, Any]:
        """The row as the API shows it, less what is never recorded."""
        if self.prefetch:
            # On a copy, with the relations read afresh: the caller's instance may carry a stale cache.
            instance = copy.copy(instance)
            instance.__dict__.pop("_prefetched_objects_cache", None)
            prefetch_related_objects([instance], *self.prefetch)
        shown = {**self.values(instance), **{name: getattr(instance, name) for name in self.fields}}
        return {key: value for key, value in shown.items() if key not in self.exclude}

    def id_of(self, instance: Model) -> str:
        return str(getattr(instance, self.object_id))


_audited: dict[type[Model], Audited] = {}
_parts: dict[type[Model], str] = {}


def register(model: type[Model], *, table: str, values: Callable[[Any], dict[str, Any]], object_id: str = "pk",
             exclude: Iterable[str] = (), fields: Iterable[str] = (), prefetch: Iterable[str] = ()) -> None:
    """Record creates, updates and deletes of ``model`` as rows of ``table`` (the contract's name).

    ``values(row)`` is the row as the API shows it: a created row's ``updated_values``, a deleted
    row's ``before_value``; an update records the keys that changed. ``exclude`` names what is never
    recorded, as model fields (auditlog's diff) and as keys of ``values``: digests, password hashes.
    ``fields`` adds model fields the API view leaves out; ``prefetch`` names the relations ``values``
    reads; ``object_id`` the attribute that names the row (``username`` for users).
    """
    excluded = frozenset((*BOOKKEEPING, *exclude))
    auditlog.register(model, exclude_fields=sorted(excluded))
    _audited[model] = Audited(table=table, values=values, object_id=object_id, exclude=excluded,
                              fields=tuple(fields), prefetch=tuple(prefetch))
    uid = f"gateway-audit-{model._meta.label_lower}"
    pre_delete.connect(_before_delete, sender=model, dispatch_uid=uid)


def register_part(model: type[Model], *, parent: str) -> None:
    """Record changes to ``model`` rows (a team's memberships) as updates of the registered row their
    ``parent`` foreign key names. Rows that go because their parent or another row is deleted are not
    recorded: that deletion is."""
    _parts[model] = parent
    uid = f"gateway-audit-part-{model._meta.label_lower}"
    pre_save.connect(_part_before, sender=model, dispatch_uid=uid)
    pre_delete.connect(_part_before, sender=model, dispatch_uid=uid)
    post_save.connect(_part_after, sender=model, dispatch_uid=uid)
    post_delete.connect(_part_after, sender=model, dispatch_uid=uid)


def table_names() -> list[str]:
    return sorted({audited.table for audited in _audited.values()})


def enabled() -> bool:
    """``litellm_settings.store_audit_logs``, read at each change (switching it needs no restart),
    unless auditlog's ``disable_auditlog()`` is in force."""
    return get_config().litellm_settings.store_audit_logs and not auditlog_disabled.get()


def connect() -> None:
    """Called once, from the audit app's ``ready()``."""
    pre_log.connect(_switch, dispatch_uid="gateway-audit-switch")
    post_log.connect(_logged, dispatch_uid="gateway-audit-logged")
    pre_save.connect(_stamp_entry, sender=LogEntry, dispatch_uid="gateway-audit-stamp")


# --- Receivers -----------------------------------------------------------------------------------

def _switch(sender, **kwargs) -> bool | None:
    """auditlog asks before writing an entry; False means no entry."""
    return enabled() if sender in _audited else None


def _stamp_entry(sender, instance: LogEntry, **kwargs) -> None:
    if instance.pk is not None or instance.actor_id is not None:
        return
    actor = current_actor()
    if actor.user is not None:
        instance.actor = actor.user
        instance.actor_email = getattr(actor.user, "email", None) or None
    instance.remote_addr = instance.remote_addr or actor.remote_addr


def _before_delete(sender, instance: Model, **kwargs) -> None:
    # Taken before anything goes: by post_delete a team's memberships are already deleted.
    if enabled():
        instance._audit_before = _audited[sender].snapshot(instance)


def _logged(sender, instance: Model, action: int, log_entry: LogEntry | None = None, log_created: bool = False,
            instance_old: Model | None = None, **kwargs) -> None:
    audited = _audited.get(sender)
    if audited is None or not log_created:
        return
    if action == LogEntry.Action.CREATE:
        before, after = None, audited.snapshot(instance)
    elif action == LogEntry.Action.UPDATE:
        # auditlog logs an update from pre_save: the database still holds the old row.
        old = instance_old if instance_old is not None else type(instance)._default_manager.get(pk=instance.pk)
        before, after = changed(audited.snapshot(old), audited.snapshot(instance))
    elif action == LogEntry.Action.DELETE:
        before = instance.__dict__.pop("_audit_before", None) or audited.snapshot(instance)
        after = {}
    else:
        return
    record = services.audit_record_append(log_entry=log_entry, table=audited.table, action=action,
                                          object_id=audited.id_of(instance), before=before, after=after,
                                          actor=current_actor())
    _hold(instance, record.id)


def _hold(instance: Model, record_id: Any) -> None:
    """Remember on the row just saved (the very object) the record written for it, so that its parts
    saved next with it can join that record; forgotten at commit."""
    instance._audit_record = record_id
    transaction.on_commit(lambda: instance.__dict__.pop("_audit_record", None), robust=True)


def _is_direct(sender, origin: Any) -> bool:
    """Whether a part row is deleted by itself (or with its siblings), not by a cascade."""
    return isinstance(origin, sender) or getattr(origin, "model", None) is sender


def _parent_now(sender, instance: Model) -> tuple[Model, Audited] | None:
    """The part's parent as the database has it now (a fresh read: its view must show the change)."""
    field = sender._meta.get_field(_parts[sender])
    parent = field.related_model._default_manager.filter(pk=getattr(instance, field.attname)).first()
    return (parent, _audited[field.related_model]) if parent is not None else None


def _part_before(sender, instance: Model, **kwargs) -> None:
    if not enabled() or ("origin" in kwargs and not _is_direct(sender, kwargs["origin"])):
        return
    found = _parent_now(sender, instance)
    if found is not None:
        instance._audit_parent_before = found[1].snapshot(found[0])


def _part_after(sender, instance: Model, **kwargs) -> None:
    before = instance.__dict__.pop("_audit_parent_before", None)
    found = _parent_now(sender, instance) if before is not None else None
    if found is None:
        return
    parent, audited = found
    after = audited.snapshot(parent)
    if changed(before, after) == ({}, {}):
        return
    # The parent object the part was saved with (team_create's own team, say), if it holds a record.
    held = sender._meta.get_field(_parts[sender]).get_cached_value(instance, None)
    record = services.audit_part_change(parent=parent, table=audited.table, object_id=audited.id_of(parent),
                                        before=before, after=after, actor=current_actor(),
                                        join=getattr(held, "_audit_record", None))
    if held is not None:
        _hold(held, record.id)

