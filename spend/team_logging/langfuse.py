"""Langfuse's public ingestion API: ``POST {host}/api/public/ingestion`` with HTTP basic auth
(public key : secret key) and a ``batch`` of events; each request becomes a ``trace-create`` and a
``generation-create`` event. Langfuse answers 207 with per-event ``successes`` and ``errors``.

Request metadata the LiteLLM proxy reads for Langfuse is honoured: ``generation_name``,
``generation_id``, ``trace_id``, ``trace_name``, ``trace_user_id``, ``session_id``, ``tags``.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone
from typing import Any

import httpx2
import orjson

from spend.team_logging.events import LogEvent, RefusedError, RetryableError

logger = logging.getLogger("gateway.callbacks")

INGESTION_PATH = "/api/public/ingestion"
SDK_NAME = "gateway"
# Langfuse refuses request bodies over a few MB: batches are cut below this, and an input or output
# larger than MAX_FIELD_BYTES is replaced by a note saying how large it was.
MAX_BODY_BYTES = 3_000_000
MAX_FIELD_BYTES = 500_000


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if value else None


def _text(metadata: dict[str, Any], name: str) -> str | None:
    value = metadata.get(name)
    return value if isinstance(value, str) and value else None


def _envelope(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "timestamp": _iso(datetime.now(timezone.utc)), "type": kind, "body": body}


def _bounded(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, bool)):
        return value
    if isinstance(value, str) and len(value) * 4 <= MAX_FIELD_BYTES:   # UTF-8: at most 4 bytes a character
        return value
    size = len(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    return value if size <= MAX_FIELD_BYTES else f"[{size} bytes, too large to log]"


def events_of(event: LogEvent) -> list[dict[str, Any]]:
    """The trace and the generation one request becomes."""
    r, meta = event.record, event.request_metadata
    content_in, content_out = _bounded(event.input), _bounded(event.output)
    failed = r.status == "failure"
    default_name = f"litellm-{r.call_type}"
    trace_id = _text(meta, "trace_id") or r.call_id
    metadata = {**r.metadata, "model_group": r.model_group, "model_id": r.model_id, "request_id": r.request_id,
                "call_id": r.call_id, "custom_llm_provider": r.custom_llm_provider, "end_user": r.end_user,
                "cost_usd": r.spend}
    trace = {
        "id": trace_id, "timestamp": _iso(r.start_time),
        "name": _text(meta, "trace_name") or _text(meta, "generation_name") or default_name,
        "userId": _text(meta, "trace_user_id") or r.end_user or r.user,
        "sessionId": _text(meta, "session_id"),
        "input": content_in, "output": content_out, "tags": list(r.request_tags), "metadata": metadata,
    }
    usage = {"input": r.prompt_tokens, "output": r.completion_tokens, "total": r.prompt_tokens + r.completion_tokens}
    generation = {
        "id": _text(meta, "generation_id") or r.call_id, "traceId": trace_id,
        "name": _text(meta, "generation_name") or default_name,
        "startTime": _iso(r.start_time), "endTime": _iso(r.end_time),
        "completionStartTime": _iso(r.completion_start_time),
        "model": r.model, "modelParameters": event.model_parameters,
        "input": content_in, "output": content_out,
        "usage": {**usage, "unit": "TOKENS", **({"totalCost": r.spend} if r.spend is not None else {})},
        "usageDetails": usage, "costDetails": {"total": r.spend} if r.spend is not None else None,
        "metadata": metadata, "level": "ERROR" if failed else "DEFAULT",
        "statusMessage": event.error_message if failed else None,
    }
    return [_envelope("trace-create", trace), _envelope("generation-create", generation)]


def _serialized(event: LogEvent) -> bytes:
    """The event's two ingestion items, as the comma-joined JSON they take inside ``batch``."""
    return b",".join(orjson.dumps(item, option=orjson.OPT_NON_STR_KEYS) for item in events_of(event))


def bodies(events: list[LogEvent]) -> list[tuple[int, bytes]]:
    """Request bodies for ``events``, each under MAX_BODY_BYTES when it can be: (how many events, body)."""
    out: list[tuple[int, bytes]] = []
    chunk: list[bytes] = []
    size = 0
    for item in map(_serialized, events):
        if chunk and size + len(item) > MAX_BODY_BYTES:
            out.append((len(chunk), _body(chunk)))
            chunk, size = [], 0
        chunk.append(item)
        size += len(item) + 1
    if chunk:
        out.append((len(chunk), _body(chunk)))
    return out


def _body(items: list[bytes]) -> bytes:
    metadata = orjson.dumps({"sdk_name": SDK_NAME, "batch_size": 2 * len(items)})
    return b'{"batch":[' + b",".join(items) + b'],"metadata":' + metadata + b"}"


async def send(client: httpx2.AsyncClient, events: list[LogEvent]) -> None:
    """Send ``events`` (in several bodies when large); raise RetryableError or RefusedError, never naming
    a secret. Events that went through are removed from ``events``, so a retry sends only the rest."""
    for count, body in bodies(events):
        try:
            response = await client.post(INGESTION_PATH, content=body, headers={"content-type": "application/json"})
        except httpx2.HTTPError as exc:
            raise RetryableError(type(exc).__name__) from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise RetryableError(f"HTTP {status}")
        if status >= 400:
            raise RefusedError(f"HTTP {status}")
        _log_event_errors(response)
        del events[:count]


def _log_event_errors(response: httpx2.Response) -> None:
    """A 207 lists the events Langfuse refused one by one; they would be refused again: only logged."""
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return
    if errors:
        first = errors[0] if isinstance(errors[0], dict) else {}
        logger.warning("langfuse refused %d events (first: status %s, %s)", len(errors), first.get("status"),
                       str(first.get("message") or "")[:200])
