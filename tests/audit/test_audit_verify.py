"""manage.py audit_verify: passes on an intact chain; reports edited, deleted and reordered records."""
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from gateway_project.audit.models import AuditRecord, ChainMark
from gateway_project.audit.services import audit_chain_verify
from teams.services import customer_create, customer_update


@pytest.fixture
def chain(audit_on) -> list[AuditRecord]:
    """Five records, positions 1–5."""
    for user_id in ("end-1", "end-2", "end-3"):
        customer_create(user_id=user_id)
    customer_update(user_id="end-1", alias="acme")
    customer_update(user_id="end-2", alias="globex")
    return list(AuditRecord.objects.order_by("seq"))


def _verify(capsys) -> tuple[str, str]:
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify")
    return str(failure.value), capsys.readouterr().err


def test_an_intact_chain_verifies(chain, capsys):
    call_command("audit_verify")

    out = capsys.readouterr().out
    assert "audit chain OK: 5 records checked" in out
    assert ChainMark.objects.get(name="head").hash in out


def test_each_record_links_to_the_one_before(chain):
    assert [r.seq for r in chain] == [1, 2, 3, 4, 5]
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(chain, chain[1:]))


def test_an_edited_record_is_reported(chain, capsys):
    AuditRecord.objects.filter(pk=chain[2].pk).update(updated_values={"user_id": "end-3", "blocked": True})

    summary, report = _verify(capsys)

    assert "1 problem(s)" in summary
    assert f"position 3: edited (record {chain[2].id})" in report


def test_an_edited_auditlog_diff_is_reported(chain, capsys):
    entry = chain[3].log_entry
    entry.changes = {"alias": ["None", "evil-corp"]}
    entry.save(update_fields=["changes"])

    _, report = _verify(capsys)

    assert f"position 4: edited (record {chain[3].id})" in report


def test_an_edit_made_with_raw_sql_is_reported(chain, capsys):
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {AuditRecord._meta.db_table} SET changed_by = %s WHERE seq = %s", ["intruder", 2])

    _, report = _verify(capsys)

    assert "position 2: edited" in report


def test_a_deleted_record_is_reported(chain, capsys):
    AuditRecord.objects.filter(pk=chain[1].pk).delete()

    summary, report = _verify(capsys)

    assert "1 problem(s)" in summary
    assert "position 2: deleted: position 2 is missing (deleted)" in report


def test_deleting_the_newest_records_is_reported(chain, capsys):
    AuditRecord.objects.filter(seq__gte=4).delete()

    _, report = _verify(capsys)

    assert "position 4: deleted: positions 4–5 are missing (deleted)" in report


def test_a_reordered_pair_is_reported(chain, capsys):
    second, third = chain[1], chain[2]
    AuditRecord.objects.filter(pk=second.pk).update(seq=1000)
    AuditRecord.objects.filter(pk=third.pk).update(seq=2)
    AuditRecord.objects.filter(pk=second.pk).update(seq=3)

    summary, report = _verify(capsys)

    assert "1 problem(s)" in summary
    assert f"position 2: reordered (record {third.id})" in report and str(second.id) in report


def test_a_rewritten_hash_breaks_the_link_to_the_next_record(chain):
    AuditRecord.objects.filter(pk=chain[1].pk).update(hash="f" * 64)

    kinds = {(p.seq, p.kind) for p in audit_chain_verify().problems}

    assert kinds == {(2, "edited"), (3, "broken")}


def test_an_empty_trail_verifies(db):
    report = audit_chain_verify()

    assert report.ok and report.checked == 0


def test_deleting_the_user_who_made_changes_keeps_the_chain_verifiable(ops_api, audit_on, django_user_model):
    ops_api.post("/customer/new", {"user_id": "end-1"}, format="json")

    django_user_model.objects.filter(username="ops").delete()

    assert AuditRecord.objects.get(object_id="end-1").log_entry.actor is None
    assert audit_chain_verify().ok
