"""The request pipeline: ordered steps, each a short function that raises a GatewayError to say no.

Read top to bottom, ``run`` is the life of a proxied call. Whatever happens, an authenticated
request leaves one spend record (streams record when the relay ends).

A buffered answer's books (its spend record, its budget and limit reservation settled) are kept after
its bytes are sent when the hot path serves it (``proxy.hotpath``) and the counters are in-process: the
caller's next request cannot be read before they are kept (nothing between the send and them waits), so
no one sees the call half-counted. With shared counters (Redis) the settle waits on the network, and a
caller could send its next call, to another instance, in that time: the books are kept before the answer.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from django.http import HttpResponse

from gateway_project import draining
from gateway_project.errors import GatewayError, UpstreamError
from proxy.pipeline import admission, auth, guardrails, params, upstream
from proxy.pipeline.context import RequestContext
from proxy.pipeline.record import record_call
from proxy.runtime import get_runtime
from proxy.schemas import parse_json_object
from spend.recorder import writer_behind, writer_room

# call type → the provider method that serves it
OPERATIONS = {"chat": "chat", "completion": "completion", "embedding": "embedding"}


async def run(ctx: RequestContext, raw_body: bytes, validate: Callable[[dict[str, Any]], dict[str, Any]],
              *, model: str | None = None) -> HttpResponse:
    """``model`` comes from the path on Azure-style routes; otherwise from the body."""
    task = draining.track()  # cancelled at shutdown if still running past the graceful timeout
    deferred = False
    try:
        await auth.authenticate(ctx)
        ctx.authenticated_at = time.perf_counter()
        body = parse_json_object(raw_body)
        if model is not None:
            body["model"] = model
        ctx.body = validate(body)
        params.check_enforced_params(ctx)
        ctx.model_group = ctx.body["model"]
        ctx.stream = ctx.call_type == "chat" and ctx.body.get("stream") is True
        params.merge_metadata(ctx)
        params.check_model(ctx)
        if writer_behind():   # rows come in faster than they are written: wait for the writer, boundedly
            await writer_room()
        await admission.admit_call(ctx)
        await guardrails.before_call(ctx)
        if ctx.stream:
            return await upstream.respond_stream(ctx)
        response = await upstream.respond(ctx, OPERATIONS[ctx.call_type])
        deferred = _defer_books(ctx)
        return response
    except GatewayError as exc:
        ctx.error = exc
        raise
    except Exception:
        ctx.error = GatewayError("Internal server error")
        raise
    except asyncio.CancelledError:
        # The client went away, or the server is shutting down: no answer was given.
        ctx.error = UpstreamError("the request was cancelled before it was answered", status=499,
                                  type="request_cancelled")
        raise
    finally:
        draining.untrack(task)
        if not deferred and (ctx.error is not None or not ctx.stream):
            await keep_books(ctx)


async def keep_books(ctx: RequestContext) -> None:
    """The call's spend record, and its reservation settled (a hang-up now must not leave it held)."""
    record_call(ctx)
    if ctx.admission is not None and ctx.admission.active:
        settle = admission.settle_call(ctx)
        # In-process counters never wait: nothing can cut that settle short, no task of its own needed.
        await (settle if get_runtime().counters.never_waits else draining.to_the_end(settle))


def _defer_books(ctx: RequestContext) -> bool:
    """Hand the books to the hot path, to keep once the answer is sent, when that is safe (see above)."""
    after_send = getattr(ctx.request, "after_send", None)
    if after_send is None or not get_runtime().counters.never_waits:
        return False
    after_send.append(lambda: keep_books(ctx))
    return True
