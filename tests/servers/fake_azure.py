"""A stand-in Azure OpenAI resource speaking Azure's wire format, for end-to-end tests of ``azure/`` models.

    python -m tests.servers.fake_azure --host 127.0.0.1 --port 8912 [--api-key K] [--ad-token T]

API (every request is recorded):
    POST /openai/deployments/{deployment}/chat/completions?api-version=V   chat.completion, or SSE chunks
    POST /openai/deployments/{deployment}/completions?api-version=V        text_completion (no streaming)
    POST /openai/deployments/{deployment}/embeddings?api-version=V         embeddings
    POST /openai/v1/chat/completions, /completions, /embeddings            the v1 API: no api-version; the
                                                                           body's "model" names the deployment

Where Azure differs from OpenAI, so does this stand-in:
- no ``api-version`` → 404 ``{"error": {"code": "404", "message": "Resource not found"}}``; one that is
  not ``YYYY-MM-DD[-preview]`` → 400 "API version not supported"; unknown paths → 404 as well;
- ``api-key: K`` authenticates, and so does ``Authorization: Bearer T`` with --ad-token T; anything else
  is a 401 in Azure's shape (no auth is required when neither option is given);
- the body's ``model`` is optional on deployment URLs; answers name the deployment as their model;
- chat answers carry ``prompt_filter_results`` and per-choice ``content_filter_results``, and a stream
  starts with a chunk whose ``choices`` is empty and which carries only ``prompt_filter_results``;
- a prompt containing "trigger content filter" is refused: 400, code "content_filter", with Azure's
  ``innererror``; one containing "trigger output filter" answers 200 with no content and
  finish_reason "content_filter" (streamed too).

Replies, usage counts, embeddings, failure injection (which answers before authentication, as in
fake_upstream) and the control endpoints ``/_stand_in/health|requests|behaviour`` are fake_upstream's,
so its StandInClient drives this stand-in too.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import secrets
import time
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs

import orjson

from tests.servers.fake_upstream import (
    Reply, Request, Send, StandInApp, chat_stream_events, completions, count_words, embeddings, make_reply,
    message_words, required, send_json, sse, stream_events, usage,
)

PROMPT_FILTER_TRIGGER = "trigger content filter"
OUTPUT_FILTER_TRIGGER = "trigger output filter"
FILTER_CATEGORIES = ("hate", "self_harm", "sexual", "violence")
KEY_DENIED = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
              "key for an active subscription and use a correct regional API endpoint for your resource.")
TOKEN_DENIED = ("Unauthorized. Access token is missing, invalid, audience is incorrect "
                "(https://cognitiveservices.azure.com), or have expired.")
PROMPT_FILTERED = ("The response was filtered due to the prompt triggering Azure OpenAI's content management "
                   "policy. Please modify your prompt and retry. To learn more about our content filtering "
                   "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766")

_ROUTE = re.compile(r"/openai/(?:deployments/(?P<deployment>[^/]+)|(?P<v1>v1))"
                    r"/(?P<operation>chat/completions|completions|embeddings)")
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")


def azure_error(code: str, message: str) -> dict[str, Any]:
    """Azure's own (gateway-level) error shape: no type, no param."""
    return {"error": {"code": code, "message": message}}


def filter_results(flagged: str | None = None) -> dict[str, Any]:
    return {category: {"filtered": category == flagged, "severity": "medium" if category == flagged else "safe"}
            for category in FILTER_CATEGORIES}


def prompt_filter_results() -> list[dict[str, Any]]:
    return [{"prompt_index": 0, "content_filter_results": filter_results()}]


def content_filter_refusal() -> dict[str, Any]:
    return {"error": {"message": PROMPT_FILTERED, "type": None, "param": "prompt", "code": "content_filter",
                      "status": 400, "innererror": {"code": "ResponsibleAIPolicyViolation",
                                                    "content_filter_result": filter_results("violence")}}}


def mentions(body: dict[str, Any], phrase: str) -> bool:
    return phrase in orjson.dumps([body.get("messages"), body.get("prompt")]).decode().lower()


# The Azure OpenAI API ---------------------------------------------------------------------------


async def chat_completions(app: StandInApp, request: Request, send: Send) -> None:
    body = request.json_object()
    messages = required(body, "messages", list)
    reply = make_reply(app, request, body)
    output_filtered = mentions(body, OUTPUT_FILTER_TRIGGER)
    if output_filtered:
        reply = Reply("", "content_filter")
    completion = {"id": f"chatcmpl-{secrets.token_hex(12)}", "object": None, "created": int(time.time()),
                  "model": body["model"]}
    counts = usage(message_words(messages), count_words(reply.text))
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        opening = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
                   "prompt_filter_results": prompt_filter_results()}
        events = chat_stream_events(completion, reply, counts if include_usage else None)
        await stream_events(app, send, itertools.chain([sse(opening)], events))
        return
    await send_json(send, 200, {
        **completion, "object": "chat.completion", "prompt_filter_results": prompt_filter_results(),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text or None},
                     "finish_reason": reply.finish_reason, "logprobs": None,
                     "content_filter_results": filter_results("violence" if output_filtered else None)}],
        "usage": counts, "system_fingerprint": "fp_stand_in"})


OPERATIONS = {"chat/completions": chat_completions, "completions": completions, "embeddings": embeddings}


class AzureStandInApp(StandInApp):
    """fake_upstream's app (recording, failure injection, control endpoints) with Azure's routes and auth."""

    def __init__(self, api_key: str | None = None, ad_token: str | None = None) -> None:
        super().__init__(api_key=api_key)
        self.ad_token = ad_token

    async def api(self, request: Request, send: Send) -> None:
        route = _ROUTE.fullmatch(request.path)
        refusal = self.refusal(request, route)
        if refusal is not None:
            await send_json(send, *refusal)
            return
        if self.behaviour.delay_ms:
            await asyncio.sleep(self.behaviour.delay_ms / 1000)
        if await self.injected_failure(send):
            return
        if not self.authorized(request.headers):
            denied = TOKEN_DENIED if "authorization" in request.headers else KEY_DENIED
            await send_json(send, 401, azure_error("401", denied))
            return
        body = request.json_object()
        # Azure answers for the deployment in the URL, whatever "model" says; v1 reads it from "model"
        deployment = route["deployment"] or required(body, "model", str)
        if route["operation"] != "embeddings" and mentions(body, PROMPT_FILTER_TRIGGER):
            await send_json(send, 400, content_filter_refusal())
            return
        await OPERATIONS[route["operation"]](self, replace(request, body={**body, "model": deployment}), send)

    def refusal(self, request: Request, route: re.Match[str] | None) -> tuple[int, dict[str, Any]] | None:
        """How Azure answers a request that never reaches a deployment, if this is one."""
        if route is None or request.method != "POST":
            return 404, azure_error("404", "Resource not found")
        if route["v1"]:
            return None
        version = parse_qs(request.query).get("api-version", [""])[0]
        if not version:
            return 404, azure_error("404", "Resource not found")
        if not _API_VERSION.fullmatch(version):
            return 400, azure_error("BadRequest", "API version not supported")
        return None

    def authorized(self, headers: dict[str, str]) -> bool:
        if self.api_key is None and self.ad_token is None:
            return True
        return ((self.api_key is not None and headers.get("api-key") == self.api_key)
                or (self.ad_token is not None and headers.get("authorization") == f"Bearer {self.ad_token}"))


# Command line -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A stand-in Azure OpenAI resource, for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", help="accept 'api-key: KEY'")
    parser.add_argument("--ad-token", help="accept 'Authorization: Bearer TOKEN' (an Entra ID token)")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    import uvicorn

    print(f"stand-in Azure OpenAI on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(AzureStandInApp(api_key=args.api_key, ad_token=args.ad_token), host=args.host, port=args.port,
                log_level=args.log_level, lifespan="off", access_log=False)


if __name__ == "__main__":
    main()
