"""RequestContext: what one proxied request has gathered on its way through the pipeline."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest

from gateway_project.errors import GatewayError
from keys.cache import KeyRecord
from keys.middleware import requester_ip
from teams.cache import TeamRecord


_ID_BATCH = 16 * 256
_random = {"bytes": b"", "at": 0}


def new_call_id() -> str:
    """A random (version 4) UUID, as ``str(uuid.uuid4())``, from the OS's random bytes read 256 ids at a
    time: one system call per 256 calls instead of one per call."""
    at = _random["at"]
    if at + 16 > len(_random["bytes"]):
        _random["bytes"], at = os.urandom(_ID_BATCH), 0
    raw = bytearray(_random["bytes"][at:at + 16])
    _random["at"] = at + 16
    raw[6] = (raw[6] & 0x0F) | 0x40   # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80   # RFC 4122 variant
    hex_ = raw.hex()
    return f"{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-{hex_[16:20]}-{hex_[20:]}"


def _forget_random_bytes() -> None:
    _random["bytes"], _random["at"] = b"", 0


os.register_at_fork(after_in_child=_forget_random_bytes)   # a forked worker never reuses its parent's ids


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a proxy route."""

    token: str                      # digest of the key used (the master key's too)
    key: KeyRecord | None           # None for the master key
    team: TeamRecord | None
    user_id: str | None
    role: str
    end_user_id: str | None = None  # from a JWT's end_user_id_jwt_field

    @property
    def key_alias(self) -> str | None:
        return self.key.key_alias if self.key else None


@dataclass(slots=True)
class RequestContext:
    request: HttpRequest
    call_type: str
    call_id: str = field(default_factory=new_call_id)
    started: float = field(default_factory=time.perf_counter)
    start_time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    principal: Principal | None = None
    body: dict[str, Any] = field(default_factory=dict)
    model_group: str = ""
    route: Any = None               # proxy.router.Route once picked
    stream: bool = False
    response_id: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    usage_estimated: bool = False
    spend: float = 0.0
    spend_known: bool = True
    completion_start_time: datetime | None = None
    upstream_started: float | None = None
    upstream_seconds: float = 0.0
    first_token_seconds: float | None = None   # streams: the answering attempt's start to its first chunk
    authenticated_at: float | None = None      # perf_counter once the caller was authenticated
    tags: list[str] = field(default_factory=list)
    spend_logs_metadata: dict[str, Any] = field(default_factory=dict)
    end_user: str | None = None
    error: GatewayError | None = None
    recorded: bool = False
    attempted_retries: int = 0
    attempted_fallbacks: int = 0
    release: Callable[[], None] | None = None   # frees the deployment a stream holds
    admission: Any = None                        # spend.budgets.Admission, settled when the call ends
    applied_guardrails: list[str] | None = None  # names, for the spend log
    response: dict[str, Any] | None = None       # the buffered answer, for logging callbacks
    stream_text: list[str] | None = None         # streamed content, kept only when a callback logs it

    @property
    def requester_ip(self) -> str | None:
        return requester_ip(self.request)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000
