"""A stand-in Slack incoming webhook, for alert tests.

    python -m tests.servers.fake_webhook --host 127.0.0.1 --port 8193

API (every request is recorded): ``POST`` to any path with Slack's JSON ``{"text": "..."}`` answers
``200 ok`` as Slack does; a body without a string ``text`` answers ``400 invalid_payload``; other
methods 405. Failure injection and the control endpoints ``/_stand_in/health|requests|behaviour``
are fake_upstream's, so its StandInClient drives this stand-in too (``messages`` below reads the texts).
"""
from __future__ import annotations

import argparse

from tests.servers.fake_upstream import Request, Send, StandInApp, StandInClient


async def send_text(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class WebhookStandInApp(StandInApp):
    async def api(self, request: Request, send: Send) -> None:
        if request.method != "POST":
            await send_text(send, 405, "method_not_allowed")
            return
        if await self.injected_failure(send):
            return
        if not isinstance(request.body, dict) or not isinstance(request.body.get("text"), str):
            await send_text(send, 400, "invalid_payload")
            return
        await send_text(send, 200, "ok")


def messages(client: StandInClient) -> list[str]:
    """The texts of the Slack messages received so far, oldest first."""
    return [r["body"]["text"] for r in client.requests() if r["method"] == "POST" and isinstance(r["body"], dict)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A stand-in Slack incoming webhook, for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    import uvicorn

    print(f"stand-in webhook on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(WebhookStandInApp(), host=args.host, port=args.port, log_level=args.log_level,
                lifespan="off", access_log=False)


if __name__ == "__main__":
    main()
