"""Delivery of logging events, off the request path: one bounded queue, one sender task and one pooled
HTTP client per destination (a Langfuse project), so a slow or failing project never holds back another.

``submit`` only appends to a queue. Each destination's task sends what has queued at most every
``GATEWAY_CALLBACK_FLUSH_INTERVAL`` seconds, or as soon as ``GATEWAY_CALLBACK_BATCH_SIZE`` events wait.
A batch that fails for a reason that may pass (network, 429, 5xx) is tried again with exponential
backoff, ``GATEWAY_CALLBACK_MAX_ATTEMPTS`` times in all, then dropped with one log line; a refused batch
(401, 400) is dropped at once. Past ``GATEWAY_CALLBACK_QUEUE_SIZE`` waiting events the oldest go.
Log lines name a destination by host and public key prefix, never by its secret.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

import httpx2
from django.conf import settings

from gateway_project import secrets
from spend.team_logging import langfuse
from spend.team_logging.events import LogEvent, RefusedError, RetryableError
from teams.callbacks import CallbackTarget

logger = logging.getLogger("gateway.callbacks")

DEFAULT_LANGFUSE_HOST = "https://cloud.langfuse.com"
IDLE_SECONDS = 300.0          # a destination without events this long closes its client and task
DROP_LOG_INTERVAL = 60.0      # at most one "queue full" line per destination this often
SHUTDOWN_SECONDS = 5.0        # what a shutdown waits for the last batches


@dataclass(frozen=True, slots=True)
class Destination:
    """A resolved target: where to send and as whom. ``label`` is safe to log."""

    name: str
    host: str
    public_key: str
    secret_key: str

    @property
    def label(self) -> str:
        return f"{self.name} at {self.host} (public key {self.public_key[:10]}…)"


def resolve(target: CallbackTarget) -> Destination | None:
    """The destination a target names, its ``os.environ/NAME`` references read; None (logged by
    reference name only) when one is not set."""
    values = {}
    for key, value in target.vars:
        if secrets.is_reference(value):
            try:
                value = secrets.resolve(value)
            except secrets.SecretError:
                logger.warning("%s callback skipped: %s refers to %s, which is not set", target.name, key, value)
                return None
        values[key] = value
    host = (values.get("langfuse_host") or DEFAULT_LANGFUSE_HOST).rstrip("/")
    secret = values.get("langfuse_secret_key") or values.get("langfuse_secret") or ""
    return Destination(name=target.name, host=host, public_key=values.get("langfuse_public_key", ""),
                       secret_key=secret)


class Channel:
    """One destination's queue, client and sender task, all on one event loop."""

    def __init__(self, destination: Destination, loop: asyncio.AbstractEventLoop, on_exit) -> None:
        self.destination = destination
        self.queue: deque[LogEvent] = deque()
        self.wake = asyncio.Event()
        self.dropped = 0
        self._last_drop_log = 0.0
        self._stopping = False
        self._on_exit = on_exit
        self.client = httpx2.AsyncClient(
            base_url=destination.host, auth=httpx2.BasicAuth(destination.public_key, destination.secret_key),
            timeout=settings.GATEWAY_CALLBACK_TIMEOUT, trust_env=False, follow_redirects=False,
            limits=httpx2.Limits(max_connections=4, max_keepalive_connections=2, keepalive_expiry=30))
        self.task = loop.create_task(self._run(), name=f"callback-{destination.name}")

    def put(self, event: LogEvent) -> None:
        if len(self.queue) >= settings.GATEWAY_CALLBACK_QUEUE_SIZE:
            self.queue.popleft()
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log >= DROP_LOG_INTERVAL:
                logger.error("%s: queue full, dropped %d oldest events so far", self.destination.label,
                             self.dropped)
                self._last_drop_log = now
        self.queue.append(event)
        if len(self.queue) >= settings.GATEWAY_CALLBACK_BATCH_SIZE:
            self.wake.set()

    async def _run(self) -> None:
        idle_since = time.monotonic()
        try:
            while not self._stopping:
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=settings.GATEWAY_CALLBACK_FLUSH_INTERVAL)
                except asyncio.TimeoutError:
                    pass
                self.wake.clear()
                if self.queue:
                    await self.send_all()
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > IDLE_SECONDS:
                    break
        finally:
            self._on_exit(self)
            if not self._stopping:
                await self.client.aclose()

    async def send_all(self, *, deadline: float | None = None) -> None:
        while self.queue:
            size = min(len(self.queue), settings.GATEWAY_CALLBACK_BATCH_SIZE)
            batch = [self.queue.popleft() for _ in range(size)]
            await self._send(batch, deadline=deadline)

    async def _send(self, batch: list[LogEvent], *, deadline: float | None) -> None:
        attempts = max(1, settings.GATEWAY_CALLBACK_MAX_ATTEMPTS)
        for attempt in range(1, attempts + 1):
            try:
                await langfuse.send(self.client, batch)
                return
            except RefusedError as exc:
                logger.error("%s refused %d events, dropped: %s", self.destination.label, len(batch), exc)
                return
            except RetryableError as exc:
                pause = settings.GATEWAY_CALLBACK_RETRY_BACKOFF * 2 ** (attempt - 1)
                out_of_time = deadline is not None and time.monotonic() + pause > deadline
                if attempt == attempts or out_of_time:
                    logger.error("%s: %d events dropped after %d attempts: %s", self.destination.label,
                                 len(batch), attempt, exc)
                    return
                await asyncio.sleep(pause)
            except Exception:  # a bug in building the batch: never loop on it
                logger.exception("%s: %d events dropped", self.destination.label, len(batch))
                return

    async def stop(self, deadline: float) -> None:
        """Send what is queued (until ``deadline``) and close the client."""
        self._stopping = True
        self.wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout=max(0.0, deadline - time.monotonic()))
            await self.send_all(deadline=deadline)
        except asyncio.TimeoutError:
            self.task.cancel()
        if self.queue:
            logger.error("%s: %d events not sent before shutdown", self.destination.label, len(self.queue))
            self.queue.clear()
        await self.client.aclose()


class CallbackDispatcher:
    def __init__(self) -> None:
        self._resolved: dict[CallbackTarget, Destination | None] = {}
        # Keyed by event loop too: a client's connections belong to the loop that opened them.
        self._channels: dict[tuple[int, Destination], Channel] = {}

    def submit(self, targets: tuple[CallbackTarget, ...], event: LogEvent) -> None:
        loop = asyncio.get_running_loop()
        for target in targets:
            destination = self._destination(target)
            if destination is not None:
                self._channel(destination, loop).put(event)

    def _destination(self, target: CallbackTarget) -> Destination | None:
        if target not in self._resolved:
            if len(self._resolved) > 10_000:  # targets rotate with team settings; never grow without end
                self._resolved.clear()
            self._resolved[target] = resolve(target)
        return self._resolved[target]

    def _channel(self, destination: Destination, loop: asyncio.AbstractEventLoop) -> Channel:
        key = (id(loop), destination)
        channel = self._channels.get(key)
        if channel is None:
            channel = self._channels[key] = Channel(destination, loop, on_exit=self._forget(key))
        return channel

    def _forget(self, key):
        def forget(channel: Channel) -> None:
            if self._channels.get(key) is channel:
                del self._channels[key]
        return forget

    @property
    def pending(self) -> int:
        return sum(len(channel.queue) for channel in self._channels.values())

    async def stop(self) -> None:
        """Server shutdown: send the last events (for a few seconds at most) and close every client."""
        loop_id = id(asyncio.get_running_loop())
        channels = [channel for key, channel in self._channels.items() if key[0] == loop_id]
        deadline = time.monotonic() + SHUTDOWN_SECONDS
        await asyncio.gather(*(channel.stop(deadline) for channel in channels), return_exceptions=True)


dispatcher = CallbackDispatcher()
