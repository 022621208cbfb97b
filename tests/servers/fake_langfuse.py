"""A stand-in Langfuse project (its public ingestion API), for team-based logging tests.

    python -m tests.servers.fake_langfuse --host 127.0.0.1 --port 8194 --public-key pk-lf-a --secret-key sk-lf-a

API (every request is recorded): ``POST /api/public/ingestion`` with HTTP basic auth
``public-key:secret-key`` and ``{"batch": [{"id", "timestamp", "type", "body"}, ...]}``. Answers as
Langfuse does: 207 with ``{"successes": [{"id", "status": 201}], "errors": [...]}`` (an event without
``id``, ``type`` or an object ``body`` is listed in ``errors``), 401 for wrong or missing credentials,
400 when ``batch`` is not a list, 404 for any other path. Failure injection and the control endpoints
``/_stand_in/health|requests|behaviour`` are fake_upstream's, so its StandInClient drives this
stand-in too; ``GET /_stand_in/accepted`` lists the events it accepted (answered 207 and listed in
``successes``), which ``accepted_events`` below reads.
"""
from __future__ import annotations

import argparse
import base64
import binascii
from collections import deque
from typing import Any

from tests.servers.fake_upstream import MAX_RECORDED, Request, Send, StandInApp, StandInClient, send_json

INGESTION_PATH = "/api/public/ingestion"
EVENT_TYPES = {"trace-create", "generation-create", "span-create", "event-create", "score-create",
               "generation-update", "span-update", "sdk-log"}


def basic_credentials(headers: dict[str, str]) -> tuple[str, str] | None:
    value = headers.get("authorization", "")
    if not value.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(value[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


class LangfuseStandInApp(StandInApp):
    def __init__(self, public_key: str, secret_key: str) -> None:
        super().__init__()
        self.credentials = (public_key, secret_key)
        self.accepted: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDED)

    async def control(self, request: Request, send: Send) -> None:
        if request.path == "/_stand_in/accepted" and request.method == "GET":
            await send_json(send, 200, list(self.accepted))
            return
        if request.path == "/_stand_in/requests" and request.method == "DELETE":
            self.accepted.clear()
        await super().control(request, send)

    async def api(self, request: Request, send: Send) -> None:
        if request.path != INGESTION_PATH:
            await send_json(send, 404, {"message": f"Unknown path {request.path}"})
            return
        if request.method != "POST":
            await send_json(send, 405, {"message": "Use POST"})
            return
        if await self.injected_failure(send):
            return
        if basic_credentials(request.headers) != self.credentials:
            await send_json(send, 401, {"message": "Invalid credentials. Confirm that you've configured the "
                                                   "correct host."})
            return
        batch = request.body.get("batch") if isinstance(request.body, dict) else None
        if not isinstance(batch, list):
            await send_json(send, 400, {"message": "Invalid request data", "error": "batch must be a list"})
            return
        successes, errors = [], []
        for event in batch:
            if _valid_event(event):
                successes.append({"id": event["id"], "status": 201})
                self.accepted.append(event)
            else:
                errors.append({"id": event.get("id") if isinstance(event, dict) else None, "status": 400,
                               "message": "Invalid request data"})
        await send_json(send, 207, {"successes": successes, "errors": errors})


def _valid_event(event: Any) -> bool:
    return (isinstance(event, dict) and isinstance(event.get("id"), str) and event.get("type") in EVENT_TYPES
            and isinstance(event.get("body"), dict))


def accepted_events(client: StandInClient) -> list[dict[str, Any]]:
    """Every ingestion event accepted (right credentials, well formed), oldest first."""
    return client._call("GET", "/accepted")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A stand-in Langfuse ingestion API, for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--public-key", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    import uvicorn

    print(f"stand-in Langfuse on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(LangfuseStandInApp(args.public_key, args.secret_key), host=args.host, port=args.port,
                log_level=args.log_level, lifespan="off", access_log=False)


if __name__ == "__main__":
    main()
