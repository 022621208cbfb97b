"""A stand-in Google Cloud Natural Language API (``documents:moderateText``), for guardrail tests.

    python -m tests.servers.fake_google_moderation --host 127.0.0.1 --port 8194 [--api-key K]

API (every request is recorded):
    POST /v1/documents:moderateText   {"document": {"type": "PLAIN_TEXT", "content": "..."}}
                                      → {"moderationCategories": [{"name", "confidence"}...], "languageCode"}

All 16 categories are always rated. Confidences are deterministic: 0.05 for every category, raised
by trigger phrases (TRIGGERS below; the highest wins). ``--api-key K`` requires ``x-goog-api-key: K``
or ``?key=K``; anything else is Google's 403 PERMISSION_DENIED. Failure injection and the control
endpoints are fake_upstream's.
"""
from __future__ import annotations

import argparse
import asyncio
from urllib.parse import parse_qs

from tests.servers.fake_upstream import Request, Send, StandInApp, send_json

CATEGORIES = ("Toxic", "Insult", "Profanity", "Derogatory", "Sexual", "Death, Harm & Tragedy", "Violent",
              "Firearms & Weapons", "Public Safety", "Health", "Religion & Belief", "Illicit Drugs",
              "War & Conflict", "Politics", "Finance", "Legal")
BASELINE = 0.05
# phrase → confidences it raises
TRIGGERS = {
    "you idiot": {"Toxic": 0.65, "Insult": 0.91},
    "hunting rifle": {"Firearms & Weapons": 0.45},
    "stock tips": {"Finance": 0.3},
}


def moderate(text: str) -> dict:
    lowered = text.lower()
    scores = dict.fromkeys(CATEGORIES, BASELINE)
    for phrase, raised in TRIGGERS.items():
        if phrase in lowered:
            for category, confidence in raised.items():
                scores[category] = max(scores[category], confidence)
    return {"moderationCategories": [{"name": name, "confidence": confidence} for name, confidence in scores.items()],
            "languageCode": "en", "languageSupported": True}


def google_error(status: int, code: str, message: str) -> dict:
    return {"error": {"code": status, "message": message, "status": code}}


class GoogleModerationStandInApp(StandInApp):
    async def api(self, request: Request, send: Send) -> None:
        if (request.method, request.path) != ("POST", "/v1/documents:moderateText"):
            await send_json(send, 404, google_error(404, "NOT_FOUND", f"Unknown path {request.path}"))
            return
        if self.behaviour.delay_ms:
            await asyncio.sleep(self.behaviour.delay_ms / 1000)
        if await self.injected_failure(send):
            return
        if self.api_key is not None and self.api_key not in (request.headers.get("x-goog-api-key"),
                                                             parse_qs(request.query).get("key", [None])[0]):
            await send_json(send, 403, google_error(403, "PERMISSION_DENIED", "API key not valid."))
            return
        body = request.json_object()
        document = body.get("document")
        if not isinstance(document, dict) or not isinstance(document.get("content"), str):
            await send_json(send, 400, google_error(400, "INVALID_ARGUMENT", "document.content is required."))
            return
        await send_json(send, 200, moderate(document["content"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A stand-in Google Natural Language moderateText API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", help="require 'x-goog-api-key: KEY' (or ?key=KEY)")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    import uvicorn

    print(f"stand-in Google moderateText on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(GoogleModerationStandInApp(api_key=args.api_key), host=args.host, port=args.port,
                log_level=args.log_level, lifespan="off", access_log=False)


if __name__ == "__main__":
    main()
