"""A stand-in LLM Guard API (protectai/llm-guard's ``llm_guard_api``), for guardrail tests.

    python -m tests.servers.fake_llm_guard --host 127.0.0.1 --port 8192 [--api-key K]

API (every request is recorded):
    POST /analyze/prompt   {"prompt": "...", "scanners_suppress": [...]}
                           → {"sanitized_prompt": "...", "is_valid": bool, "scanners": {name: risk score}}

Verdicts are deterministic: a prompt containing INJECTION ("ignore all previous instructions") is
invalid (PromptInjection 1.0); email addresses are redacted in ``sanitized_prompt`` (Anonymize);
anything else is valid with every scanner at 0.0. ``--api-key K`` requires ``Authorization: Bearer K``
(the API's AUTH_TOKEN), answering 401 otherwise.

Failure injection and the control endpoints ``/_stand_in/health|requests|behaviour`` are
fake_upstream's, so its StandInClient drives this stand-in too.
"""
from __future__ import annotations

import argparse
import asyncio
import re

from tests.servers.fake_upstream import Request, Send, StandInApp, required, send_json

INJECTION = "ignore all previous instructions"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def analyze(prompt: str) -> dict:
    injection = 1.0 if INJECTION in prompt.lower() else 0.0
    sanitized, emails = _EMAIL.subn("[REDACTED_EMAIL_ADDRESS_1]", prompt)
    return {"sanitized_prompt": sanitized, "is_valid": injection == 0.0,
            "scanners": {"Anonymize": 1.0 if emails else 0.0, "PromptInjection": injection, "Regex": 0.0}}


class LlmGuardStandInApp(StandInApp):
    async def api(self, request: Request, send: Send) -> None:
        if (request.method, request.path) != ("POST", "/analyze/prompt"):
            await send_json(send, 404, {"detail": "Not Found"})
            return
        if self.behaviour.delay_ms:
            await asyncio.sleep(self.behaviour.delay_ms / 1000)
        if await self.injected_failure(send):
            return
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            await send_json(send, 401, {"detail": "Invalid or missing token"})
            return
        await send_json(send, 200, analyze(required(request.json_object(), "prompt", str)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A stand-in LLM Guard API, for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", help="require 'Authorization: Bearer KEY'")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    import uvicorn

    print(f"stand-in LLM Guard API on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(LlmGuardStandInApp(api_key=args.api_key), host=args.host, port=args.port, log_level=args.log_level,
                lifespan="off", access_log=False)


if __name__ == "__main__":
    main()
