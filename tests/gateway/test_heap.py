"""A worker freezes what start-up built (gateway_project.asgi.freeze_startup_heap): the garbage collector's
full collections then walk only what requests made since, not Django and the runtime every time."""
from __future__ import annotations

import asyncio
import gc

import pytest

from gateway_project import asgi


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()   # the test process's heap is not a worker's


def test_start_up_leaves_what_it_built_frozen(unfrozen, settings):
    built_at_start = {"config": [object()]}

    asgi.freeze_startup_heap()

    assert gc.get_freeze_count() > 0
    assert not any(obj is built_at_start for obj in gc.get_objects())   # no collection walks it any more


def test_gateway_gc_freeze_false_leaves_the_collector_as_it_is(unfrozen, settings):
    settings.GATEWAY_GC_FREEZE = False

    asgi.freeze_startup_heap()

    assert gc.get_freeze_count() == 0


def test_the_lifespans_start_up_freezes_once_the_runtime_is_up(unfrozen, monkeypatch):
    """After runtime.startup (whose caches and clients live as long as the worker), before the worker
    says it is up."""
    order = []

    async def startup():
        order.append(("runtime up", gc.get_freeze_count() > 0))

    monkeypatch.setattr(asgi.runtime, "startup", startup)
    messages = [{"type": "lifespan.startup"}]

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()

    async def send(message):
        order.append((message["type"], gc.get_freeze_count() > 0))
        raise asyncio.CancelledError   # enough: the worker said it is up

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(asgi.LifespanApp(None)({"type": "lifespan"}, receive, send))

    assert order == [("runtime up", False), ("lifespan.startup.complete", True)]
