"""A stand-in SageMaker runtime serving Llama Guard endpoints, reached through boto3 with
``endpoint_url`` (or ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``), for guardrail tests.

    python -m tests.servers.fake_sagemaker --host 127.0.0.1 --port 8193 [--endpoint NAME ...]

API (every request is recorded; SigV4 signatures are not verified):
    POST /endpoints/{name}/invocations   {"inputs": "<Llama Guard prompt>", "parameters": {...}}
                                         → [{"generated_text": "safe"}] or "unsafe\\nO3"

The verdict reads the prompt's conversation (between <BEGIN CONVERSATION> and <END CONVERSATION>):
a conversation containing UNSAFE_TRIGGER ("rob a bank") is "unsafe" in category O3 (criminal
planning). Unknown endpoints answer SageMaker's 400 ValidationError. Failure injection and the
control endpoints are fake_upstream's.
"""
from __future__ import annotations

import argparse
import asyncio
import re

from tests.servers.fake_upstream import Request, Send, StandInApp, required, send_json

UNSAFE_TRIGGER = "rob a bank"
_ROUTE = re.compile(r"/endpoints/(?P<name>[^/]+)/invocations")
_CONVERSATION = re.compile(r"<BEGIN CONVERSATION>(.*)<END CONVERSATION>", re.S)


def verdict(prompt: str) -> str:
    match = _CONVERSATION.search(prompt)
    conversation = match.group(1) if match else prompt
    return "unsafe\nO3" if UNSAFE_TRIGGER in conversation.lower() else "safe"


class SageMakerStandInApp(StandInApp):
    def __init__(self, endpoints: list[str]) -> None:
        super().__init__()
        self.endpoints = set(endpoints)

    async def api(self, request: Request, send: Send) -> None:
        route = _ROUTE.fullmatch(request.path)
        if route is None or request.method != "POST":
            await send_json(send, 404, {"message": "Not Found"}, [(b"x-amzn-errortype", b"UnknownOperationException:")])
            return
        if self.behaviour.delay_ms:
            await asyncio.sleep(self.behaviour.delay_ms / 1000)
        if await self.injected_failure(send):
            return
        if route["name"] not in self.endpoints:
            await send_json(send, 400, {"message": f"Endpoint {route['name']} of account 123456789012 not found."},
                            [(b"x-amzn-errortype", b"ValidationError:")])
            return
        prompt = required(request.json_object(), "inputs", str)
        await send_json(send, 200, [{"generated_text": verdict(prompt)}])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A stand-in SageMaker runtime with Llama Guard endpoints.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--endpoint", action="append", default=[], help="an endpoint name it serves (repeatable)")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    import uvicorn

    print(f"stand-in SageMaker runtime on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(SageMakerStandInApp(args.endpoint), host=args.host, port=args.port, log_level=args.log_level,
                lifespan="off", access_log=False)


if __name__ == "__main__":
    main()
