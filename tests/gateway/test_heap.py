"""A worker freezes what start-up built (gateway_project.heap): the garbage collector's full collections then
walk only what requests made since, not Django and the runtime every time; what the first requests would
import is imported before the freeze, and modules loaded on first use later are frozen once loaded."""
from __future__ import annotations

import asyncio
import gc
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway_project import asgi, heap


@pytest.fixture
def unfrozen(monkeypatch):
    gc.unfreeze()
    monkeypatch.setattr(heap, "_modules_at_freeze", None)
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()   # the test process's heap is not a worker's
    gc.set_threshold(*thresholds)


def test_start_up_leaves_what_it_built_frozen(unfrozen, settings):
    built_at_start = {"config": [object()]}

    heap.freeze_startup_heap()

    assert gc.get_freeze_count() > 0
    assert not any(obj is built_at_start for obj in gc.get_objects())   # no collection walks it any more


def test_gateway_gc_freeze_false_leaves_the_collector_as_it_is(unfrozen, settings):
    settings.GATEWAY_GC_FREEZE = False

    heap.freeze_startup_heap()

    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("freeze", [True, False])
def test_start_up_sets_the_young_generations_threshold(unfrozen, settings, freeze):
    settings.GATEWAY_GC_FREEZE = freeze
    settings.GATEWAY_GC_THRESHOLD = 12_345
    older = gc.get_threshold()[1:]

    heap.freeze_startup_heap()

    assert gc.get_threshold() == (12_345, *older)


def test_the_default_threshold_is_the_gateways_not_pythons(settings):
    assert settings.GATEWAY_GC_THRESHOLD == 10_000   # Python's is 700


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_a_threshold_that_is_not_a_positive_integer_stops_the_start(value):
    env = {**os.environ, "GATEWAY_GC_THRESHOLD": value}
    result = subprocess.run([sys.executable, "-c", "import gateway_project.settings"], env=env, capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parents[2], timeout=60)

    assert result.returncode != 0 and "GATEWAY_GC_THRESHOLD must be" in result.stderr


def test_the_lifespans_start_up_freezes_once_the_runtime_is_up(unfrozen, monkeypatch, settings):
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
    assert gc.get_threshold()[0] == settings.GATEWAY_GC_THRESHOLD   # the worker's collector, tuned as it starts


def _module_made_after_the_freeze(tmp_path, monkeypatch, name: str):
    (tmp_path / f"{name}.py").write_text("MARKER = {'made': [1]}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    monkeypatch.setitem(sys.modules, name, module)   # removed again after the test
    return module


def walked(obj) -> bool:
    """Whether the collector's full collections walk ``obj`` (it is tracked and not frozen)."""
    return any(candidate is obj for candidate in gc.get_objects())


def test_modules_imported_after_the_freeze_are_frozen_once_loaded(unfrozen, settings, tmp_path, monkeypatch):
    heap.freeze_startup_heap()
    module = _module_made_after_the_freeze(tmp_path, monkeypatch, "heap_first_use_module")
    assert walked(module.MARKER)

    assert heap.refreeze_after_imports() is True

    assert not walked(module.MARKER)
    assert heap.refreeze_after_imports() is False   # nothing new: no second collection


def test_no_refreeze_with_gateway_gc_freeze_false(unfrozen, settings, tmp_path, monkeypatch):
    settings.GATEWAY_GC_FREEZE = False
    heap.freeze_startup_heap()
    module = _module_made_after_the_freeze(tmp_path, monkeypatch, "heap_unfrozen_module")

    assert heap.refreeze_after_imports() is False
    assert walked(module.MARKER) and gc.get_freeze_count() == 0


def test_the_keeper_refreezes_once_the_imports_have_settled(unfrozen, settings, tmp_path, monkeypatch):
    heap.freeze_startup_heap()
    collections = []

    def walks_every_frozen_object():
        raise AssertionError("gc.get_freeze_count() walks the frozen objects: ~10 ms on the event loop")

    monkeypatch.setattr(gc, "get_freeze_count", walks_every_frozen_object)

    def count(phase, info):
        if phase == "stop" and info["generation"] == 2:
            collections.append(info)

    async def scenario():
        keeper = asyncio.create_task(heap.keep_imports_frozen(every=0.01))
        await asyncio.sleep(0.05)
        assert not collections   # no imports: the looks collect nothing
        module = _module_made_after_the_freeze(tmp_path, monkeypatch, "heap_keeper_module")
        for _ in range(500):
            if not walked(module.MARKER):
                break
            await asyncio.sleep(0.01)
        keeper.cancel()
        return module

    gc.callbacks.append(count)
    try:
        module = asyncio.run(scenario())
    finally:
        gc.callbacks.remove(count)
    assert not walked(module.MARKER)
    assert len(collections) == 1


def test_what_the_first_requests_import_is_imported_before_the_freeze():
    """The URLconf (not its lazy includes: a proxy-only worker stays without DRF) and the SQL compiler."""
    code = """
import sys, django
django.setup()
from gateway_project import heap
heap.freeze_startup_heap()
before = set(sys.modules)
from django.urls import resolve
from keys.models import VirtualKey
resolve("/v1/chat/completions"); resolve("/health/liveliness")
str(VirtualKey.objects.filter(key_alias="x").query)
print(sorted(set(sys.modules) - before), "rest_framework.serializers" in sys.modules)
"""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gateway_project.settings"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "False"]


def test_a_urlconf_that_does_not_import_fails_the_start_up_not_a_request(unfrozen, monkeypatch):
    async def startup():
        pass

    def broken():
        raise ImportError("No module named 'keys.api.missing'")

    monkeypatch.setattr(asgi.runtime, "startup", startup)
    monkeypatch.setattr(heap, "load_what_requests_would", broken)
    messages, sent = [{"type": "lifespan.startup"}], []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(asgi.LifespanApp(None)({"type": "lifespan"}, receive, send))

    assert sent == [{"type": "lifespan.startup.failed", "message": "No module named 'keys.api.missing'"}]
