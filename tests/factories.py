"""factory_boy factories for the ledger and the things it names."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import factory

from spend.models import SpendLog
from spend.records import SpendRecord


def spend_record(**overrides) -> SpendRecord:
    """A finished request as the proxy hands it to the ledger."""
    now = datetime.now(timezone.utc)
    call_id = str(uuid.uuid4())
    values = dict(request_id=f"chatcmpl-{call_id[:8]}", call_id=call_id, call_type="acompletion", status="success",
                  start_time=now - timedelta(seconds=1), end_time=now, model="gpt-4o", model_group="gpt",
                  prompt_tokens=10, completion_tokens=20, spend=0.005)
    values.update(overrides)
    return SpendRecord(**values)


class SpendLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SpendLog

    call_id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    request_id = factory.LazyAttribute(lambda o: f"chatcmpl-{o.call_id[:8]}")
    call_type = "acompletion"
    status = "success"
    model = "gpt-4o"
    model_group = "gpt"
    prompt_tokens = 10
    completion_tokens = 20
    total_tokens = 30
    spend = 0.005
    start_time = factory.LazyFunction(lambda: datetime.now(timezone.utc))
    end_time = factory.LazyAttribute(lambda o: o.start_time + timedelta(milliseconds=250))
