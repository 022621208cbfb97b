"""Step 7: call a deployment (with retries and fallbacks); answer buffered, or relay the stream
burst by burst (the chunks that arrived together leave together, in one write)."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import orjson
from django.http import HttpResponse, StreamingHttpResponse

from gateway_project import draining
from gateway_project.errors import GatewayError, UpstreamError
from proxy.answer import EventStream, ProxyAnswer
from proxy.pipeline import guardrails
from proxy.pipeline.attempts import call_upstream
from proxy.pipeline.admission import settle_call
from proxy.pipeline.context import RequestContext
from proxy.pipeline.limits import MB, check_response_size, response_limit_bytes, response_too_large
from proxy.pipeline.record import content_logged, in_flight_entry, price_call, record_call
from proxy.providers.base import FinalBurst
from proxy.router import Route
from proxy.tokens import estimate_prompt_tokens, estimate_tokens_of_chars
from spend import inflight

logger = logging.getLogger("gateway.proxy")

_DONE = b"data: [DONE]\n\n"


def _headers(ctx: RequestContext) -> dict[str, str]:
    return {
        "x-litellm-call-id": ctx.call_id,
        "x-litellm-model-id": ctx.route.id,
        "x-litellm-model-group": ctx.model_group,
        "x-litellm-attempted-retries": str(ctx.attempted_retries),
        "x-litellm-attempted-fallbacks": str(ctx.attempted_fallbacks),
    }


def _take_usage(ctx: RequestContext, usage: Any) -> None:
    if isinstance(usage, dict):
        ctx.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        ctx.completion_tokens = int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict):
            ctx.cached_tokens = int(details.get("cached_tokens") or 0)


async def respond(ctx: RequestContext, operation: str) -> HttpResponse:
    """A buffered call: ``operation`` is the provider method (chat, completion, embedding)."""
    ctx.upstream_started = time.perf_counter()
    body = await call_upstream(ctx, lambda route: getattr(route.provider, operation)(ctx.body))
    ctx.upstream_seconds = time.perf_counter() - ctx.upstream_started
    ctx.response_id = body.get("id") if isinstance(body.get("id"), str) else None
    _take_usage(ctx, body.get("usage"))
    await guardrails.after_call(ctx, body)
    body["model"] = ctx.model_group
    ctx.response = body
    price_call(ctx)
    headers = _headers(ctx)
    headers["x-litellm-response-cost"] = repr(ctx.spend) if ctx.spend_known else "None"
    headers["x-litellm-response-duration-ms"] = f"{ctx.elapsed_ms():.3f}"
    headers["x-litellm-overhead-duration-ms"] = f"{ctx.elapsed_ms() - ctx.upstream_seconds * 1000:.3f}"
    content = orjson.dumps(body)
    check_response_size(len(content))
    return ProxyAnswer(content, headers)


async def _open_stream(ctx: RequestContext, route: Route) -> tuple[AsyncIterator[list[dict]], list[dict] | None]:
    """Start the stream and wait for its first burst of chunks: until then a failure can still be retried."""
    started = time.perf_counter()
    bursts = route.provider.chat_stream(ctx.body)
    try:
        first = await anext(bursts, None)
        ctx.first_token_seconds = time.perf_counter() - started
        return bursts, first
    except BaseException:
        await bursts.aclose()
        raise


async def respond_stream(ctx: RequestContext) -> StreamingHttpResponse:
    ctx.upstream_started = time.perf_counter()
    bursts, first = await call_upstream(ctx, lambda route: _open_stream(ctx, route), hold=True)
    options = ctx.body.get("stream_options")
    wants_usage = isinstance(options, dict) and options.get("include_usage") is True
    ctx.stream_text = [] if content_logged(ctx) else None
    response = EventStream({**_headers(ctx), "cache-control": "no-cache", "x-accel-buffering": "no"})
    response.relay(_relay(ctx, response, bursts, first, wants_usage))
    return response


def _observe(ctx: RequestContext, chunk: dict) -> int:
    """Note the chunk's id, usage and first-token time; return the characters of content it carries."""
    if ctx.completion_start_time is None:
        ctx.completion_start_time = datetime.now(timezone.utc)
    if ctx.response_id is None and isinstance(chunk.get("id"), str):
        ctx.response_id = chunk["id"]
    if chunk.get("usage"):
        _take_usage(ctx, chunk["usage"])
    chars = 0
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict):
            chars += len(delta.get("content") or "")
            if ctx.stream_text is not None and isinstance(delta.get("content"), str) and not choice.get("index"):
                ctx.stream_text.append(delta["content"])   # the first choice's text, for logging callbacks
            for call in delta.get("tool_calls") or ():
                chars += len(str((call.get("function") or {}).get("arguments") or "")) if isinstance(call, dict) else 0
    return chars


def _estimate_usage(ctx: RequestContext, completion_chars: int) -> None:
    """Counted locally when an upstream streams no usage; flagged as an estimate in the spend log."""
    ctx.prompt_tokens = estimate_prompt_tokens(ctx.body)
    ctx.completion_tokens = estimate_tokens_of_chars(completion_chars)
    ctx.usage_estimated = True


async def _relay(ctx: RequestContext, answer: EventStream, bursts: AsyncIterator[list[dict]],
                 first: list[dict] | None, wants_usage: bool) -> AsyncIterator[bytes]:
    """The SSE body: the first event on its own, as soon as it is ready; then one bytes object per burst of
    chunks (one send, one socket write); then [DONE], with the last burst's events when the provider marked
    that burst final (``FinalBurst``: its read ended the stream)."""
    streamed_chars, relayed, limit = 0, 0, response_limit_bytes()
    task = draining.track()  # cancelled at shutdown if still running past the graceful timeout
    journal, in_flight = inflight.current, None   # with Redis: this process's death loses no stream
    events: list[bytes] = []  # the current burst's events, not yet yielded
    waiting_first = True
    try:
        check = guardrails.chunk_check(ctx)
        burst = first
        while burst is not None:
            for chunk in burst:
                streamed_chars += _observe(ctx, chunk)
                if journal is not None:
                    if in_flight is None:
                        in_flight = journal.open(ctx.call_id, in_flight_entry(ctx))
                    in_flight.completion_tokens = ctx.completion_tokens or estimate_tokens_of_chars(streamed_chars)
                if check is not None:
                    check(chunk)
                chunk["model"] = ctx.model_group
                # The gateway always asks for usage; a client that did not ask does not get it.
                if not wants_usage:
                    chunk.pop("usage", None)
                if chunk.get("choices") or wants_usage:
                    event = b"data: " + orjson.dumps(chunk) + b"\n\n"
                    relayed += len(event)
                    if limit is not None and relayed > limit:
                        raise response_too_large(relayed, limit / MB)
                    if waiting_first:   # the stream's first event leaves at once: time to first token
                        waiting_first = False
                        yield event
                    else:
                        events.append(event)
            if isinstance(burst, FinalBurst):   # nothing follows: its events leave with [DONE]
                break
            if events:
                out, events = b"".join(events), []
                yield out
            burst = await anext(bursts, None)
        answer.ended = True
        yield b"".join(events) + _DONE if events else _DONE
        if burst is not None:   # ended by a final burst: the provider reads the response to its end (pooled)
            await anext(bursts, None)
    except GatewayError as exc:
        if answer.ended:   # after [DONE], reading the upstream's end: the client's answer was whole
            logger.info("call %s: the upstream's stream failed after [DONE]: %s", ctx.call_id, exc.message)
        else:
            # Headers are gone already: the error travels as a last event, as OpenAI's streams do, after
            # the events of its burst that came before it.
            ctx.error = exc
            answer.ended = True
            yield b"".join(events) + b"data: " + orjson.dumps(exc.body()) + b"\n\n"
    except BaseException as exc:
        # The client went away (cancelled) or something broke: still record what was streamed. Once [DONE]
        # is out the answer was whole: a client hanging up then (while the upstream's end is read) is no
        # interruption.
        if not answer.ended:
            cancelled = isinstance(exc, (asyncio.CancelledError, GeneratorExit))
            ctx.error = UpstreamError("the stream ended before it was complete", status=499 if cancelled else 500,
                                      type="stream_interrupted")
        raise
    finally:
        draining.untrack(task)
        ctx.upstream_seconds = time.perf_counter() - (ctx.upstream_started or ctx.started)
        if not ctx.prompt_tokens and not ctx.completion_tokens:
            _estimate_usage(ctx, streamed_chars)  # the upstream sent no usage
        # The client may hang up now that it has [DONE]: what follows is not cut short by that.
        await draining.to_the_end(_close_stream(ctx, bursts, in_flight))


async def _close_stream(ctx: RequestContext, bursts: AsyncIterator[list[dict]],
                        in_flight: inflight.OpenCall | None) -> None:
    """A relay's books: the upstream response closed, the stream recorded once, its reservation settled."""
    try:
        await bursts.aclose()
    finally:
        if ctx.release is not None:
            ctx.release()
        if in_flight is not None and not await in_flight.close():
            ctx.recorded, ctx.admission = True, None   # recorded and settled as an orphan by another instance
        record_call(ctx)
        await settle_call(ctx)
