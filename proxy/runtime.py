"""The process-wide objects the proxy needs, built once from the config: router, HTTP clients.

Opened by the ASGI lifespan (``gateway_project/asgi.py``) and closed on shutdown, when the spend
buffer is flushed too. Built lazily on first use when there was no lifespan (tests' in-process client).
"""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings

from gateway_project import background
from gateway_project.config import GatewayConfig, get_config
from gateway_project.snapshots import bus
from guardrails.runner import guardrails_for
from keys.hashing import digest
from proxy.http import ClientPool
from proxy.router import Router
from spend import alerts, metrics
from spend.counters import CounterStore, LocalCounters, RedisCounters
from spend.team_logging.dispatcher import dispatcher as callback_dispatcher
from spend.stream import journal_for
from spend.writer import writer

if TYPE_CHECKING:
    from proxy.pipeline.jwt import JwtAuth
    from proxy.pipeline.nojwt import NoJwtAuth


@dataclass(frozen=True)
class Runtime:
    config: GatewayConfig
    router: Router
    clients: ClientPool
    master_key: str | None
    master_key_digest: str | None
    started_at: int
    counters: CounterStore
    jwt_auth: JwtAuth | NoJwtAuth


_lock = threading.Lock()
_runtime: Runtime | None = None


def build(config: GatewayConfig) -> Runtime:
    request_timeout = (config.router_settings.timeout or config.litellm_settings.request_timeout
                       or settings.GATEWAY_UPSTREAM_TIMEOUT)
    clients = ClientPool(timeout=request_timeout)
    master = config.general_settings.master_key
    router = Router(config.model_list, clients=clients, default_timeout=request_timeout,
                    strategy=config.router_settings.routing_strategy, reliability=config.reliability)
    # Imported here, not above: proxy.pipeline imports this module; and PyJWT with cryptography loads only
    # when JWT auth is on.
    if config.general_settings.enable_jwt_auth:
        from proxy.pipeline.jwt import jwt_auth_for
        jwt_auth = jwt_auth_for(config, clients)
    else:
        from proxy.pipeline.nojwt import NoJwtAuth
        jwt_auth = NoJwtAuth()
    return Runtime(config=config, router=router, counters=_counters(),
                   clients=clients, master_key=master, master_key_digest=digest(master) if master else None,
                   started_at=int(time.time()), jwt_auth=jwt_auth)


def _counters() -> CounterStore:
    """Shared counters in Redis when REDIS_URL is set; otherwise this process's own."""
    if not settings.REDIS_URL:
        return LocalCounters()
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_timeout=2.0, socket_connect_timeout=2.0,
                                          health_check_interval=30)
    return RedisCounters(client, prefix=settings.GATEWAY_REDIS_PREFIX)


def get_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        with _lock:
            if _runtime is None:
                _runtime = build(get_config())
    return _runtime


def reset() -> None:
    """Forget the runtime (tests that swap the config); the next request builds a new one."""
    global _runtime
    with _lock:
        _runtime = None


_listener: asyncio.Task | None = None


async def startup() -> None:
    global _listener
    runtime = get_runtime()
    guardrails_for(runtime.config)  # built now, not on each worker's first request
    writer.start(journal=journal_for(settings))  # with Redis, spend records pass through a stream
    background.start()  # the periodic jobs, when no Celery broker runs them
    if settings.REDIS_URL:
        # Writes on any instance reach this process's key/team caches at once.
        _listener = asyncio.get_running_loop().create_task(bus().listen(), name="cache-invalidation")


async def shutdown() -> None:
    global _listener
    if _listener is not None:
        _listener.cancel()
        _listener = None
    await asyncio.to_thread(background.stop)  # waits for a job in progress
    await writer.stop()
    await callback_dispatcher.stop()  # the last logging-callback batches (a few seconds at most)
    await asyncio.to_thread(alerts.stop)  # delivers the alerts the last spend rows raised
    if _runtime is not None:
        await _runtime.clients.aclose()
    metrics.mark_process_dead()   # this worker's live gauge files (multiprocess mode only)
