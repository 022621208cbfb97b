"""Step 6: guardrails (``guardrails.runner`` decides which) before the upstream call, on a buffered
answer, and on each chunk of a streamed one. A refusal raises before the upstream is called."""
from __future__ import annotations

from typing import Any

from guardrails.base import Call, ChunkCheck
from guardrails.runner import GuardrailSet, guardrails_for
from proxy.pipeline.context import RequestContext
from proxy.runtime import get_runtime
from teams.models import UserRole

def _prepare(ctx: RequestContext) -> tuple[GuardrailSet, Call] | None:
    """The guardrail set and what its guardrails see, or None when no guardrail can apply (fast path)."""
    guardrails = guardrails_for(get_runtime().config)
    body = ctx.body
    metadata = body.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    principal = ctx.principal
    key, team = principal.key, principal.team
    if (guardrails.idle and "guardrails" not in body and "guardrails" not in metadata
            and not (key is not None and (key.guardrails or "guardrails" in key.metadata))
            and not (team is not None and "guardrails" in team.metadata)):
        return None
    return guardrails, Call(body=body, call_type=ctx.call_type, key=key, team=team, metadata=metadata,
                            admin=key is None and principal.role == UserRole.PROXY_ADMIN)


async def before_call(ctx: RequestContext) -> None:
    prepared = _prepare(ctx)
    if prepared is None:
        return
    guardrails, call = prepared
    chosen = guardrails.select(call)
    if chosen:
        ctx.applied_guardrails = [guardrail.name for guardrail in chosen]
        await guardrails.pre_call(call, chosen)


async def after_call(ctx: RequestContext, response: dict[str, Any]) -> None:
    """Check a buffered answer before the client gets it."""
    prepared = _prepare(ctx)
    if prepared is not None:
        await prepared[0].post_call(prepared[1], response)


def chunk_check(ctx: RequestContext) -> ChunkCheck | None:
    """A function to call on every chunk of this request's stream (it raises to stop it), or None."""
    prepared = _prepare(ctx)
    return prepared[0].stream_check(prepared[1]) if prepared is not None else None

