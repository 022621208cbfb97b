"""Step 7: call the picked deployment; answer buffered, or relay the stream chunk by chunk."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import orjson
from django.http import HttpResponse, StreamingHttpResponse

from gateway_project.errors import GatewayError, UpstreamError
from proxy.pipeline.context import RequestContext
from proxy.pipeline.record import price_call, record_call

_DONE = b"data: [DONE]\n\n"


def _headers(ctx: RequestContext) -> dict[str, str]:
    return {
        "x-litellm-call-id": ctx.call_id,
        "x-litellm-model-id": ctx.route.id,
        "x-litellm-model-group": ctx.model_group,
        "x-litellm-attempted-retries": "0",
    }


def _take_usage(ctx: RequestContext, usage: Any) -> None:
    if isinstance(usage, dict):
        ctx.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        ctx.completion_tokens = int(usage.get("completion_tokens") or 0)


async def respond(ctx: RequestContext) -> HttpResponse:
    ctx.upstream_started = time.perf_counter()
    body = await ctx.route.provider.chat(ctx.body)
    ctx.upstream_seconds = time.perf_counter() - ctx.upstream_started
    ctx.response_id = body.get("id") if isinstance(body.get("id"), str) else None
    _take_usage(ctx, body.get("usage"))
    body["model"] = ctx.model_group
    price_call(ctx)
    headers = _headers(ctx)
    headers["x-litellm-response-cost"] = repr(ctx.spend) if ctx.spend_known else "None"
    headers["x-litellm-response-duration-ms"] = f"{ctx.elapsed_ms():.3f}"
    headers["x-litellm-overhead-duration-ms"] = f"{ctx.elapsed_ms() - ctx.upstream_seconds * 1000:.3f}"
    return HttpResponse(orjson.dumps(body), content_type="application/json", headers=headers)


async def respond_stream(ctx: RequestContext) -> StreamingHttpResponse:
    """Open the upstream stream; an error before its first chunk is an ordinary error response."""
    ctx.upstream_started = time.perf_counter()
    chunks = ctx.route.provider.chat_stream(ctx.body)
    try:
        first = await anext(chunks, None)
    except BaseException:
        await chunks.aclose()
        raise
    options = ctx.body.get("stream_options")
    wants_usage = isinstance(options, dict) and options.get("include_usage") is True
    response = StreamingHttpResponse(_relay(ctx, chunks, first, wants_usage), content_type="text/event-stream",
                                     headers={**_headers(ctx), "cache-control": "no-cache", "x-accel-buffering": "no"})
    return response


async def _relay(ctx: RequestContext, chunks: AsyncIterator[dict], first: dict | None,
                 wants_usage: bool) -> AsyncIterator[bytes]:
    streamed_text = 0
    try:
        chunk = first
        while chunk is not None:
            if ctx.completion_start_time is None:
                ctx.completion_start_time = datetime.now(timezone.utc)
            if ctx.response_id is None and isinstance(chunk.get("id"), str):
                ctx.response_id = chunk["id"]
            usage = chunk.get("usage")
            if usage:
                _take_usage(ctx, usage)
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if isinstance(delta, dict) and delta.get("content"):
                    streamed_text += 1
            chunk["model"] = ctx.model_group
            # The gateway always asks for usage; a client that did not ask does not get the extra chunk.
            if wants_usage or chunk.get("choices") or not usage:
                if not wants_usage and "usage" in chunk:
                    chunk.pop("usage")
                yield b"data: " + orjson.dumps(chunk) + b"\n\n"
            chunk = await anext(chunks, None)
        yield _DONE
    except GatewayError as exc:
        # Headers are gone already: the error travels as a last event, as OpenAI's streams do.
        ctx.error = exc
        yield b"data: " + orjson.dumps(exc.body()) + b"\n\n"
    except BaseException as exc:
        # The client went away (cancelled) or something broke: still record what was streamed.
        ctx.error = UpstreamError("the stream ended before it was complete", status=499 if _is_cancel(exc) else 500,
                                  type="stream_interrupted")
        raise
    finally:
        ctx.upstream_seconds = time.perf_counter() - (ctx.upstream_started or ctx.started)
        if not ctx.completion_tokens and streamed_text:
            ctx.completion_tokens = streamed_text  # no usage from upstream: count content chunks
        await chunks.aclose()
        record_call(ctx)


def _is_cancel(exc: BaseException) -> bool:
    return isinstance(exc, (asyncio.CancelledError, GeneratorExit))
