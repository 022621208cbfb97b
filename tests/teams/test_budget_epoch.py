import pytest

from keys.models import VirtualKey
from keys.services import key_generate
from spend.writer import write_batch
from tests.factories import spend_record

pytestmark = pytest.mark.django_db


def test_setting_spend_by_hand_starts_a_new_budget_epoch():
    key, _ = key_generate(actor=None, max_budget=1)

    key.spend = 0.5
    key.save()

    assert VirtualKey.objects.get(pk=key.pk).budget_epoch == 1


def test_the_spend_writers_increments_keep_the_epoch():
    key, _ = key_generate(actor=None, max_budget=1)

    write_batch([spend_record(api_key=key.token, spend=0.25)])

    key.refresh_from_db()
    assert key.spend == 0.25 and key.budget_epoch == 0


def test_saving_other_fields_keeps_the_epoch():
    key, _ = key_generate(actor=None, max_budget=1)
    key.refresh_from_db()

    key.key_alias = "renamed"
    key.save()

    assert VirtualKey.objects.get(pk=key.pk).budget_epoch == 0
