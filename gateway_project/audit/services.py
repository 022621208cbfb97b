"""The hash chain of audit records: append (and amend) inside the writer's transaction, verify, prune.

Each record carries ``hash = sha256(prev_hash + canonical JSON of its row and auditlog's raw diff)``
and its position ``seq``. Appends lock the ``head`` mark, so they are serialised and the chain cannot
fork; retention deletes the oldest records and moves the ``pruned`` mark (a checkpoint) past them.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from auditlog.models import LogEntry
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Model
from django.utils import timezone

from gateway_project.audit.actor import Actor
from gateway_project.audit.models import AuditAction, AuditRecord, ChainMark
from gateway_project.audit.selectors import audit_row
from gateway_project.config import get_config
from gateway_project.durations import add_duration

logger = logging.getLogger("gateway.audit")


# --- Hashing -------------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    # A float that is a whole number may come back from PostgreSQL's jsonb as an int (1e16): hash both alike.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def canonical(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, record: AuditRecord) -> str:
    """The record's hash: it covers what /audit shows of it and auditlog's raw diff behind it."""
    content = {**audit_row(record), "changes": record.log_entry.changes}
    return hashlib.sha256((prev_hash + canonical(content)).encode()).hexdigest()


def as_json(value: Any) -> Any:
    """``value`` as a JSON column gives it back (datetimes as ISO strings), so it hashes the same later."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


# --- Appending -----------------------------------------------------------------------------------

def _locked_mark(name: str) -> ChainMark:
    mark = ChainMark.objects.select_for_update().filter(name=name).first()
    if mark is None:
        # The first record ever (or after a flush). A concurrent creator blocks on the same key and fails;
        # either way the row exists afterwards, and is then locked.
        try:
            with transaction.atomic():
                ChainMark.objects.create(name=name)
        except IntegrityError:
            pass
        mark = ChainMark.objects.select_for_update().get(name=name)
    return mark


def changed(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The keys whose values differ: (their old values, their new values)."""
    keys = [key for key in {**before, **after} if before.get(key) != after.get(key)]
    return {key: before.get(key) for key in keys}, {key: after.get(key) for key in keys}


def action_label(action: int, after: dict[str, Any]) -> str:
    if action == LogEntry.Action.CREATE:
        return AuditAction.CREATED
    if action == LogEntry.Action.DELETE:
        return AuditAction.DELETED
    if set(after) == {"blocked"}:
        return AuditAction.BLOCKED if after["blocked"] else AuditAction.UNBLOCKED
    return AuditAction.UPDATED


def _advance(head: ChainMark, record: AuditRecord) -> None:
    head.seq, head.hash = record.seq, record.hash
    head.save(update_fields=["seq", "hash", "updated_at"])


@transaction.atomic
def audit_record_append(*, log_entry: LogEntry, table: str, object_id: str, action: int,
                        before: dict[str, Any] | None, after: dict[str, Any], actor: Actor) -> AuditRecord:
    """Chain a record of ``log_entry`` (just written by auditlog) at the head.

    Runs inside the writer's transaction: the change, its entry and its record commit or roll back
    together. The head's row lock is held to the end of that transaction, so audited writes are
    serialised; they are management operations, and the proxy's hot path makes none.
    """
    head = _locked_mark(ChainMark.HEAD)
    record = AuditRecord(log_entry=log_entry, seq=head.seq + 1, updated_at=log_entry.timestamp,
                         changed_by=actor.changed_by, changed_by_api_key=actor.api_key,
                         action=action_label(action, after), table_name=table, object_id=object_id,
                         before_value=None if before is None else as_json(before), updated_values=as_json(after),
                         prev_hash=head.hash)
    record.hash = chain_hash(record.prev_hash, record)
    record.save(force_insert=True)
    _advance(head, record)
    return record


def _joinable(record_id: Any, head: ChainMark, actor: Actor) -> AuditRecord | None:
    """The record a part's change may join: still the chain's last, by the same actor, not a deletion."""
    record = AuditRecord.objects.select_related("log_entry").filter(id=record_id).first() if record_id else None
    if (record is None or record.hash != head.hash or record.action == AuditAction.DELETED
            or (record.changed_by, record.changed_by_api_key) != (actor.changed_by, actor.api_key)):
        return None
    return record


def _amend(record: AuditRecord, head: ChainMark, before: dict[str, Any], after: dict[str, Any]) -> AuditRecord:
    if record.action == AuditAction.CREATED:
        record.updated_values = as_json(after)
    else:
        old, new = (as_json(part) for part in changed(before, after))
        was, now = dict(record.before_value or {}), dict(record.updated_values)
        for key in new:
            was.setdefault(key, old[key])
            now[key] = new[key]
        record.before_value, record.updated_values = changed(was, now)
        record.action = action_label(LogEntry.Action.UPDATE, record.updated_values)
        entry = record.log_entry
        entry.changes = {**(entry.changes or {}), **{key: [was[key], now[key]] for key in new}}
        entry.save(update_fields=["changes"])
    record.hash = chain_hash(record.prev_hash, record)  # the head: no record links to it yet
    record.save(update_fields=["before_value", "updated_values", "action", "hash"])
    _advance(head, record)
    return record


@transaction.atomic
def audit_part_change(*, parent: Model, table: str, object_id: str, before: dict[str, Any],
                      after: dict[str, Any], actor: Actor, join: Any = None) -> AuditRecord:
    """Record a change to one of ``parent``'s parts (a team's member added, re-roled, removed) as an
    update of ``parent`` (``before`` and ``after`` are its whole view).

    ``join`` is the id of the record just written for ``parent`` in the same operation: when it is
    still the chain's last, the change joins it instead of following it. So a team created with its
    members is one record, as in the seed's example, and members added together are one update.
    """
    head = _locked_mark(ChainMark.HEAD)
    record = _joinable(join, head, actor)
    if record is not None:
        return _amend(record, head, before, after)
    old, new = changed(before, after)
    entry = LogEntry.objects.log_create(parent, action=LogEntry.Action.UPDATE,
                                        changes=as_json({key: [old[key], new[key]] for key in new}))
    return audit_record_append(log_entry=entry, table=table, object_id=object_id, action=LogEntry.Action.UPDATE,
                               before=old, after=new, actor=actor)


# --- Verifying -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    kind: str          # edited | deleted | reordered | broken
    seq: int           # position in the chain
    message: str
    record_id: str | None = None


def _span(first: int, last: int) -> str:
    return f"position {first} is" if first == last else f"positions {first}–{last} are"


@dataclass
class ChainWalk:
    """Checks records in chain order, from a known position (the checkpoint) on."""

    seq: int
    hash: str
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    _reordered: set[int] = field(default_factory=set)

    def step(self, record: AuditRecord) -> None:
        rid, gap = str(record.id), record.seq != self.seq + 1
        if gap:
            missing = _span(self.seq + 1, record.seq - 1)
            self.problems.append(Problem("deleted", self.seq + 1, f"{missing} missing (deleted)"))
        if chain_hash(record.prev_hash, record) != record.hash:
            self.problems.append(Problem("edited", record.seq, "its content no longer matches its hash (edited)", rid))
        if record.prev_hash != self.hash and not gap:
            self._check_link(record)
        self.seq, self.hash, self.checked = record.seq, record.hash, self.checked + 1

    def _check_link(self, record: AuditRecord) -> None:
        before = AuditRecord.objects.filter(hash=record.prev_hash).only("id", "seq").first()
        if before is not None and before.seq > record.seq:
            self._reordered |= {record.seq, before.seq}
            self.problems.append(Problem(
                "reordered", record.seq, f"it was chained after record {before.id}, which now comes later, at "
                f"position {before.seq} (reordered)", str(record.id)))
        elif before is not None and self._reordered & set(range(before.seq + 1, record.seq)):
            return  # the other side of a reordering already reported
        else:
            self.problems.append(Problem("broken", record.seq, "it does not follow the record before it: that "
                                         "record was replaced or its hash rewritten", str(record.id)))

    def finish(self, head: ChainMark) -> None:
        if self.seq < head.seq:
            self.problems.append(Problem("deleted", self.seq + 1, f"{_span(self.seq + 1, head.seq)} missing (deleted)"))
        elif self.hash != head.hash:
            self.problems.append(Problem("broken", self.seq, "the chain's head mark does not match its last record"))


@dataclass(frozen=True)
class ChainReport:
    start_seq: int       # the checkpoint: records up to here were pruned
    head_seq: int
    head_hash: str
    checked: int
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems


def _mark(name: str) -> ChainMark:
    return ChainMark.objects.filter(name=name).first() or ChainMark(name=name)


def audit_chain_verify() -> ChainReport:
    """Walk the chain from the checkpoint to the head; report every edited, deleted or reordered record.

    Retention waits while this runs (the ``pruned`` mark is locked); appends go on, and records
    appended after the walk started are left for the next run.
    """
    with transaction.atomic():
        pruned = _locked_mark(ChainMark.PRUNED)
        head = _mark(ChainMark.HEAD)
        walk = ChainWalk(seq=pruned.seq, hash=pruned.hash)
        records = (AuditRecord.objects.select_related("log_entry").filter(seq__gt=pruned.seq, seq__lte=head.seq)
                   .order_by("seq"))
        for record in records.iterator(chunk_size=1000):
            walk.step(record)
        walk.finish(head)
    return ChainReport(start_seq=pruned.seq, head_seq=head.seq, head_hash=head.hash, checked=walk.checked,
                       problems=walk.problems)


# --- Retention -----------------------------------------------------------------------------------

def retention_period() -> timedelta | None:
    """general_settings.maximum_audit_logs_retention_period as a length of time; None keeps everything."""
    period = get_config().general_settings.maximum_audit_logs_retention_period
    if not period:
        return None
    now = timezone.now()
    return add_duration(now, period) - now


class ChainBrokenError(Exception):
    """Retention found a tampered record among those it was about to delete, and stopped."""


def audit_logs_prune(*, older_than: timedelta | None = None, now: datetime | None = None,
                     batch_size: int | None = None) -> int:
    """Delete the audit records (with their auditlog entries) older than ``older_than`` (default: the
    configured retention period; none configured: keep everything); return how many went.

    Oldest first, ``batch_size`` records per short transaction: row locks on its own rows, never a
    table lock or one unbounded DELETE. Only a prefix of the chain goes, and each batch moves the
    ``pruned`` checkpoint to its last record, so what is left still verifies. A batch is verified before
    it is deleted: if it was tampered with, pruning stops (ChainBrokenError) rather than erase the evidence.
    """
    older_than = older_than if older_than is not None else retention_period()
    if older_than is None:
        return 0
    cutoff = (now or timezone.now()) - older_than
    batch_size = batch_size or settings.GATEWAY_RETENTION_BATCH_SIZE
    stop = _first_seq_to_keep(cutoff)
    deleted = 0
    while True:
        with transaction.atomic():
            count = _prune_batch(stop, batch_size)
        deleted += count
        if count < batch_size:
            break
    if deleted:
        logger.info("retention: deleted %d audit records older than %s", deleted, cutoff.isoformat())
    return deleted


def _first_seq_to_keep(cutoff: datetime) -> int:
    """The chain is cut before its first record young enough to keep. (Times are not strictly in chain
    order: a writer that waited for the head's lock may carry a slightly earlier time.)"""
    young = AuditRecord.objects.filter(updated_at__gte=cutoff).order_by("seq").values_list("seq", flat=True).first()
    # Nothing young: everything up to the head as it is now; records appended meanwhile are young.
    return young if young is not None else _mark(ChainMark.HEAD).seq + 1


def _prune_batch(stop: int, batch_size: int) -> int:
    mark = _locked_mark(ChainMark.PRUNED)
    batch = list(AuditRecord.objects.select_related("log_entry").filter(seq__gt=mark.seq, seq__lt=stop)
                 .order_by("seq")[:batch_size])
    if not batch:
        return 0
    walk = ChainWalk(seq=mark.seq, hash=mark.hash)
    for record in batch:
        walk.step(record)
    if walk.problems:
        first = walk.problems[0]
        raise ChainBrokenError(f"audit chain broken at position {first.seq}: {first.message}; retention stopped "
                               "(run manage.py audit_verify)")
    AuditRecord.objects.filter(seq__gt=mark.seq, seq__lte=batch[-1].seq).delete()
    LogEntry.objects.filter(pk__in=[record.log_entry_id for record in batch]).only("pk").delete()
    mark.seq, mark.hash = batch[-1].seq, batch[-1].hash
    mark.save(update_fields=["seq", "hash", "updated_at"])
    return len(batch)
