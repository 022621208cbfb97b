"""Audit retention: the oldest records go in batches, and the chain still verifies from a checkpoint."""
from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from gateway_project.audit import tasks
from gateway_project.audit.models import AuditRecord, ChainMark
from gateway_project.audit.services import ChainBrokenError, audit_chain_verify, audit_logs_prune
from teams.services import customer_create

DAY = timedelta(days=1)


@pytest.fixture
def old_and_new(audit_on):
    """Five records, then a moment ``now`` a day after the third: 1–3 are a day old, 4–5 younger."""
    for user_id in ("end-1", "end-2", "end-3"):
        customer_create(user_id=user_id)
    split = timezone.now()
    for user_id in ("end-4", "end-5"):
        customer_create(user_id=user_id)
    return split + DAY


def test_prune_deletes_exactly_the_records_older_than_the_period(old_and_new):
    deleted = audit_logs_prune(older_than=DAY, now=old_and_new)

    assert deleted == 3
    assert list(AuditRecord.objects.order_by("seq").values_list("object_id", flat=True)) == ["end-4", "end-5"]
    assert LogEntry.objects.count() == 2


def test_prune_moves_the_checkpoint_to_the_last_record_it_deleted(old_and_new):
    third_hash = AuditRecord.objects.get(seq=3).hash

    audit_logs_prune(older_than=DAY, now=old_and_new)

    mark = ChainMark.objects.get(name="pruned")
    assert (mark.seq, mark.hash) == (3, third_hash)


def test_the_chain_verifies_after_pruning(old_and_new):
    audit_logs_prune(older_than=DAY, now=old_and_new)

    report = audit_chain_verify()
    assert report.ok and (report.start_seq, report.checked, report.head_seq) == (3, 2, 5)


def test_pruning_again_after_new_records_still_verifies(old_and_new):
    audit_logs_prune(older_than=DAY, now=old_and_new)
    customer_create(user_id="end-6")

    audit_logs_prune(older_than=timedelta(0))

    assert not AuditRecord.objects.exists()
    assert audit_chain_verify().ok and ChainMark.objects.get(name="pruned").seq == 6


def test_prune_deletes_in_batches_of_bounded_statements(old_and_new):
    with CaptureQueriesContext(connection) as queries:
        deleted = audit_logs_prune(older_than=DAY, now=old_and_new, batch_size=2)

    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    record_deletes = [sql for sql in deletes if AuditRecord._meta.db_table in sql]
    assert deleted == 3 and len(record_deletes) == 2
    assert all("WHERE" in sql for sql in deletes)
    assert not any("LOCK TABLE" in q["sql"].upper() for q in queries.captured_queries)


def test_prune_without_a_period_keeps_everything(old_and_new):
    assert audit_logs_prune() == 0
    assert AuditRecord.objects.count() == 5


def test_prune_reads_the_period_from_general_settings(db, config_yaml):
    config_yaml("litellm_settings: {store_audit_logs: true}\n"
                "general_settings: {maximum_audit_logs_retention_period: 30d}\n")
    customer_create(user_id="end-1")

    assert audit_logs_prune(now=timezone.now() + timedelta(days=29)) == 0
    assert audit_logs_prune(now=timezone.now() + timedelta(days=31)) == 1
    assert audit_chain_verify().ok


def test_the_task_prunes_by_the_configured_period(db, config_yaml):
    config_yaml("litellm_settings: {store_audit_logs: true}\n"
                "general_settings: {maximum_audit_logs_retention_period: 30d}\n")
    customer_create(user_id="end-1")

    assert tasks.audit_logs_prune() == 0
    assert AuditRecord.objects.count() == 1


def test_prune_refuses_to_delete_a_tampered_record(old_and_new):
    AuditRecord.objects.filter(seq=2).update(changed_by="intruder")

    with pytest.raises(ChainBrokenError, match="position 2"):
        audit_logs_prune(older_than=DAY, now=old_and_new)

    assert AuditRecord.objects.count() == 5 and audit_chain_verify().problems[0].seq == 2


def test_a_bad_retention_period_is_refused_at_load(config_yaml):
    from gateway_project.config import ConfigError

    with pytest.raises(ConfigError, match="maximum_audit_logs_retention_period"):
        config_yaml("general_settings: {maximum_audit_logs_retention_period: thirty days}\n")
