"""The request pipeline: ordered steps, each a short function that raises a GatewayError to say no.

Read top to bottom, ``run_chat`` is the life of a chat completion. Whatever happens, an
authenticated request leaves one spend record (streams record when the relay ends).
"""
from __future__ import annotations

from django.http import HttpResponse

from gateway_project.errors import GatewayError
from proxy.pipeline import auth, params, upstream
from proxy.pipeline.context import RequestContext
from proxy.pipeline.record import record_call
from proxy.schemas import parse_chat_request


async def run_chat(ctx: RequestContext, raw_body: bytes) -> HttpResponse:
    try:
        await auth.authenticate(ctx)
        ctx.body = parse_chat_request(raw_body)
        ctx.model_group = ctx.body["model"]
        ctx.stream = ctx.body.get("stream") is True
        params.merge_metadata(ctx)
        params.check_model(ctx)
        if ctx.stream:
            return await upstream.respond_stream(ctx)
        return await upstream.respond(ctx)
    except GatewayError as exc:
        ctx.error = exc
        raise
    except Exception:
        ctx.error = GatewayError("Internal server error")
        raise
    finally:
        if ctx.error is not None or not ctx.stream:
            record_call(ctx)
