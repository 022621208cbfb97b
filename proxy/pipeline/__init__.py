"""The request pipeline: ordered steps, each a short function that raises a GatewayError to say no.

Read top to bottom, ``run`` is the life of a proxied call. Whatever happens, an authenticated
request leaves one spend record (streams record when the relay ends).
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

# call type → the provider method that serves it
OPERATIONS = {"chat": "chat", "completion": "completion", "embedding": "embedding"}


async def run(ctx: RequestContext, raw_body: bytes, validate: Callable[[dict[str, Any]], dict[str, Any]],
              *, model: str | None = None) -> HttpResponse:
    """``model`` comes from the path on Azure-style routes; otherwise from the body."""
    task = draining.track()  # cancelled at shutdown if still running past the graceful timeout
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
        await admission.admit_call(ctx)
        await guardrails.before_call(ctx)
        if ctx.stream:
            return await upstream.respond_stream(ctx)
        return await upstream.respond(ctx, OPERATIONS[ctx.call_type])
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
        if ctx.error is not None or not ctx.stream:
            record_call(ctx)
            if ctx.admission is not None and ctx.admission.active:   # a hang-up now must not leave it held
                settle = admission.settle_call(ctx)
                # In-process counters never wait: nothing can cut that settle short, no task of its own needed.
                await (settle if get_runtime().counters.never_waits else draining.to_the_end(settle))
