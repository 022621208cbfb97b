import pytest
from django.db import connection  # noqa: F401  (used by skipif)

from keys.services import key_generate
from spend.models import SpendLog, SpendLogTag
from spend.writer import write_batch
from teams.models import Customer, Team
from tests.factories import spend_record

pytestmark = pytest.mark.django_db


def test_a_batch_writes_one_row_per_request_with_its_tags():
    records = [spend_record(request_tags=["a", "b"]), spend_record(request_tags=["a"])]

    assert write_batch(records) == 2

    assert SpendLog.objects.count() == 2
    assert sorted(SpendLogTag.objects.values_list("tag", flat=True)) == ["a", "a", "b"]


def test_a_replayed_batch_is_written_once_and_charged_once():
    key, _ = key_generate(actor=None)
    records = [spend_record(api_key=key.token, spend=0.25)]

    write_batch(records)
    written_again = write_batch(records)

    key.refresh_from_db()
    assert written_again == 0
    assert SpendLog.objects.count() == 1
    assert key.spend == 0.25


def test_two_requests_with_the_same_provider_id_both_stay_in_the_ledger():
    write_batch([spend_record(request_id="chatcmpl-same"), spend_record(request_id="chatcmpl-same")])

    assert SpendLog.objects.filter(request_id="chatcmpl-same").count() == 2


def test_spend_is_added_to_key_team_user_and_customer():
    team = Team.objects.create(team_alias="t")
    key, _ = key_generate(actor=None, user_id="alice", team_id=team.team_id)

    write_batch([spend_record(api_key=key.token, team_id=team.team_id, user="alice", end_user="cust-1", spend=0.5),
                 spend_record(api_key=key.token, team_id=team.team_id, user="alice", end_user="cust-1", spend=0.25)])

    key.refresh_from_db()
    team.refresh_from_db()
    key.user.refresh_from_db()
    assert key.spend == team.spend == key.user.spend == 0.75
    assert Customer.objects.get(user_id="cust-1").spend == 0.75


def test_failed_requests_are_rows_too():
    write_batch([spend_record(status="failure", spend=0.0, prompt_tokens=0, completion_tokens=0)])

    assert SpendLog.objects.get().status == "failure"


def test_nul_bytes_from_clients_are_stripped_before_storing():
    write_batch([spend_record(model_group="gpt\x00-evil", end_user="u\x00", request_tags=["t\x00ag"],
                              metadata={"spend_logs_metadata": {"k\x00": "v\x00"}})])

    row = SpendLog.objects.get()
    assert row.model_group == "gpt-evil" and row.end_user == "u"
    assert row.metadata == {"spend_logs_metadata": {"k": "v"}}
    assert SpendLogTag.objects.get().tag == "tag"


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="SQLite does not enforce varchar lengths")
def test_a_row_the_database_refuses_does_not_hold_back_the_rest_of_its_batch(caplog):
    from spend.writer import write_batch_isolating

    bad = spend_record(request_id="x" * 300)  # longer than the column
    written = write_batch_isolating([spend_record(), bad, spend_record()])

    assert written == 2
    assert SpendLog.objects.count() == 2
    assert bad.call_id in caplog.text
