"""SpendRecord: one finished request, as the proxy hands it to the ledger."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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

