"""What a guardrail is: the request it sees, the three outcomes it may choose, and how a remote one
fails.

A guardrail's ``pre_call`` decides before the upstream is called:

- **allow**: return;
- **rewrite**: change the texts of ``call.body`` in place (``hide_secrets`` redacts), then return;
- **block**: raise a ``GatewayError`` (``GuardrailBlocked`` for a policy refusal).

Guardrails that also look at the answer implement ``post_call`` (a buffered response) and
``stream_check`` (one checker per streamed response, fed every chunk).
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from gateway_project.config import GatewayConfig
from gateway_project.errors import InvalidRequestError, ServiceUnavailableError
from keys.cache import KeyRecord
from teams.cache import TeamRecord

logger = logging.getLogger("gateway.guardrails")

FailureMode = Literal["open", "closed"]
MODIFY_PERMISSION = "modify_guardrails"   # a key permission: may switch guardrails off per request
ChunkCheck = Callable[[dict[str, Any]], None]


class GuardrailBlocked(InvalidRequestError):
    """A guardrail refused the request (or the answer): 400, ``invalid_request_error``."""


class GuardrailUnavailable(ServiceUnavailableError):
    """A remote guardrail could not give a verdict and fails closed: 503."""


@dataclass(slots=True)
class Call:
    """What a guardrail sees of one proxied request."""

    body: dict[str, Any]            # the request body; a rewriting guardrail edits its texts in place
    call_type: str                  # chat | completion | embedding
    key: KeyRecord | None = None    # None for the master key
    team: TeamRecord | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)   # the request's "metadata"
    admin: bool = False             # the master key (or an admin's JWT)

    @property
    def key_permissions(self) -> Mapping[str, Any]:
        return self.key.permissions if self.key is not None else {}

    @property
    def may_switch_off(self) -> bool:
        """Whether this caller may switch guardrails off per request."""
        return self.admin or self.key_permissions.get(MODIFY_PERMISSION) is True

    @property
    def request_permissions(self) -> Mapping[str, Any]:
        permissions = self.metadata.get("permissions")
        return permissions if isinstance(permissions, Mapping) else {}


class Guardrail(ABC):
    """Base class of every guardrail; a subclass sets ``name`` and implements ``pre_call``."""

    name: ClassVar[str]
    remote: ClassVar[bool] = False          # remote ones run after the local ones
    checks_output: ClassVar[bool] = False   # has post_call / stream_check

    @classmethod
    def from_config(cls, config: GatewayConfig) -> Guardrail:
        """Build it from config.yaml; raise ``ConfigError`` naming the missing or wrong setting."""
        return cls()

    def wanted(self, call: Call) -> bool:
        """Whether a guardrail switched on for everyone (``callbacks``) runs for this call."""
        return True

    @abstractmethod
    async def pre_call(self, call: Call) -> None:
        """Check (and possibly rewrite) the request before the upstream call; raise to refuse it."""

    async def post_call(self, call: Call, response: dict[str, Any]) -> None:
        """Check a buffered answer; raise to refuse it."""

    def stream_check(self, call: Call) -> ChunkCheck | None:
        """A checker fed every chunk of one streamed answer (it may keep state), or None."""
        return None


class FailurePolicy:
    """What a remote guardrail does when its service gives no verdict (down, timeout, bad answer)."""

    def __init__(self, guardrail: str, mode: FailureMode) -> None:
        self.guardrail = guardrail
        self.mode = mode

    def unavailable(self, reason: str, detail: str) -> None:
        """Log it; fail open (return: the call goes on unchecked) or closed (raise a 503).

        ``reason`` is told to the client too; ``detail`` (an address, the exception) only to the log."""
        if self.mode == "open":
            logger.warning("Guardrail %s: %s (%s); failing open, the request continues unchecked "
                           "(guardrail_failure_mode: open)", self.guardrail, reason, detail)
            return
        logger.warning("Guardrail %s: %s (%s); failing closed, the request is refused "
                       "(guardrail_failure_mode: closed)", self.guardrail, reason, detail)
        raise GuardrailUnavailable(f"Guardrail {self.guardrail} is unavailable: {reason}. The request was not sent.",
                                   type="guardrail_unavailable")
