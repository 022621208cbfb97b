"""Team-based logging: each finished request goes to its team's callbacks (and the global ones), never
on the response's path.

``proxy/pipeline/record.py`` asks :func:`targets_for` where a request's event goes (read from the team
snapshot the proxy already holds, no database query), builds one :class:`LogEvent` only when there is
somewhere to send it, and hands it to :func:`submit`, which only queues it. ``dispatcher`` batches the
queue per destination and sends it with one pooled client each; ``langfuse`` speaks Langfuse's public
ingestion API. A team whose logging is disabled sends nothing anywhere (:func:`scrub` also strips what
its spend row would keep of the conversation).
"""
from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from spend.records import SpendRecord
from spend.team_logging.dispatcher import dispatcher
from spend.team_logging.events import LogEvent
from teams.callbacks import CallbackTarget

logger = logging.getLogger("gateway.callbacks")

__all__ = ["LogEvent", "dispatcher", "global_targets", "scrub", "submit", "targets_for"]

# Fields of a spend record that would hold the conversation, when the ledger stores it.
CONTENT_FIELDS = ("messages", "response", "proxy_server_request")

_global: tuple[Any, tuple[CallbackTarget, ...]] | None = None


def global_targets(litellm_settings: Any) -> tuple[CallbackTarget, ...]:
    """``litellm_settings.success_callback`` / ``failure_callback`` / ``callbacks`` naming "langfuse":
    the global Langfuse project from ``LANGFUSE_*``. Computed once per loaded config."""
    global _global
    if _global is not None and _global[0] is litellm_settings:
        return _global[1]
    on_success = "langfuse" in litellm_settings.success_callback or "langfuse" in litellm_settings.callbacks
    on_failure = "langfuse" in litellm_settings.failure_callback or "langfuse" in litellm_settings.callbacks
    targets: tuple[CallbackTarget, ...] = ()
    if on_success or on_failure:
        if settings.LANGFUSE_PUBLIC_KEY and settings.LANGFUSE_SECRET_KEY:
            targets = (CallbackTarget(name="langfuse", on_success=on_success, on_failure=on_failure, vars=(
                ("langfuse_host", settings.LANGFUSE_HOST), ("langfuse_public_key", settings.LANGFUSE_PUBLIC_KEY),
                ("langfuse_secret_key", settings.LANGFUSE_SECRET_KEY))),)
        else:
            logger.warning("the langfuse callback is configured but LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY are "
                           "not set: nothing is sent to a global Langfuse project")
    _global = (litellm_settings, targets)
    return targets


def targets_for(team: Any, litellm_settings: Any, *, failed: bool) -> tuple[CallbackTarget, ...]:
    """Where a request of ``team`` (a TeamRecord or None) goes: nowhere when the team disabled logging."""
    team_logging = team.logging if team is not None else None
    if team_logging is not None and team_logging.disabled:
        return ()
    shared = tuple(t for t in global_targets(litellm_settings) if (t.on_failure if failed else t.on_success))
    own = team_logging.targets_for(failed=failed) if team_logging is not None else ()
    return own + shared if own else shared


def logging_disabled(team: Any) -> bool:
    return team is not None and team.logging.disabled


def scrub(entry: SpendRecord) -> None:
    """Keep nothing of the conversation in a spend row (a team that disabled logging): error texts may
    quote the prompt, so only their code and class stay."""
    for name in CONTENT_FIELDS:
        if hasattr(entry, name):
            setattr(entry, name, None)
    error = entry.metadata.get("error_information")
    if isinstance(error, dict) and error.get("error_message"):
        entry.metadata["error_information"] = {**error, "error_message": None}


def submit(targets: tuple[CallbackTarget, ...], event: LogEvent) -> None:
    """Queue ``event`` for each target; never blocks, never raises into the request."""
    try:
        dispatcher.submit(targets, event)
    except Exception:  # a logging problem must never fail or delay a client's request
        logger.exception("queueing a callback event failed; the event is dropped")
