"""SpendRecord: one finished request, as the proxy hands it to the ledger."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson


@dataclass(slots=True)
class SpendRecord:
    request_id: str
    call_id: str
    call_type: str
    status: str
    start_time: datetime
    end_time: datetime
    api_key: str = ""
    key_alias: str | None = None
    team_id: str | None = None
    user: str | None = None
    end_user: str | None = None
    model: str = ""
    model_group: str = ""
    model_id: str = ""
    custom_llm_provider: str = ""
    api_base: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    spend: float | None = 0.0   # None: the model has no known price
    completion_start_time: datetime | None = None
    request_tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    requester_ip_address: str | None = None



_FIELDS = frozenset(SpendRecord.__slots__)
_DATETIME_FIELDS = ("start_time", "end_time", "completion_start_time")


def encode(record: SpendRecord) -> bytes:
    """One record as JSON (the spend-event stream's payload)."""
    try:
        return orjson.dumps(record, default=str, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:   # e.g. an integer beyond 64 bits in client-supplied metadata
        return json.dumps(dataclasses.asdict(record), default=str).encode()


def decode(payload: bytes | str) -> SpendRecord:
    """The record ``encode`` wrote. Fields this version does not know (a newer instance wrote the event,
    mid rolling upgrade) are left out rather than failing the event."""
    values = orjson.loads(payload)
    for name in _DATETIME_FIELDS:
        if values.get(name):
            values[name] = datetime.fromisoformat(values[name])
    return SpendRecord(**{name: value for name, value in values.items() if name in _FIELDS})
