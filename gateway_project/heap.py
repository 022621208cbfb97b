"""A worker's heap and Python's cyclic garbage collector.

A full collection walks every tracked object that is not frozen, on the event loop: its pause lands on
whichever calls are in flight. What start-up built lives as long as the worker, so it is frozen once the
worker is up (``freeze_startup_heap``) and full collections walk only what requests made since. Two things
would otherwise grow what they walk, for the rest of the worker's life:

- modules the first requests import (the URLconf, the SQL compiler): imported before the freeze instead
  (``load_what_requests_would``);
- modules loaded on first use on purpose, to keep proxy-only workers lean (the management API and DRF, the
  admin's forms, SSO's client; docs/performance.md "Memory"): once such a load happened, the worker collects
  and freezes again (``keep_imports_frozen``).

Measured on the bench machine (docs/performance.md "What a full collection walks"): a worker that had
served one management call walked 12,000–25,000 objects per full collection (5–22 ms), against 450–2,400
with both in place (3–7 ms). ``GATEWAY_GC_FREEZE=false`` leaves the collector as Python sets it up.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import sys

from django.conf import settings

logger = logging.getLogger("gateway")

LOOK_EVERY = 1.0   # seconds between looks at sys.modules


def load_what_requests_would() -> None:
    """Import now what every worker's first requests would: the URLconf (not its lazy includes) with the
    views it names, the database backend and the SQL compiler."""
    from django.db import connections
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (imports the URLconf)
    for alias in connections:
        connections[alias].ops.compiler("SQLCompiler")   # imports django.db.models.sql.compiler


def freeze_startup_heap() -> None:
    """Load what the first requests would, collect once, then freeze what is there (``gc.freeze``); and set
    the youngest generation's threshold (``tune_collector``)."""
    load_what_requests_would()   # with the freeze off too: the first requests do not pay for the imports
    if settings.GATEWAY_GC_FREEZE:
        _collect_and_freeze()
    tune_collector()


def tune_collector() -> None:
    """Collect the youngest generation after ``GATEWAY_GC_THRESHOLD`` net allocations of tracked objects
    instead of Python's 700 (the older generations' thresholds are left as they are).

    A served call leaves nothing for the collector: its objects are freed by their reference counts as it
    ends (tests/proxy/test_hotpath.py, test_server.py). Under load, though, the calls in flight hold thousands
    of tracked objects (coroutines, requests, contexts, bodies), and every object freed, not only young ones,
    lowers the count that triggers a young collection; with 700, a worker at 1,000 calls/s collected 15 times a
    second, 1 ms each, and at 50 streams in flight 360 times a second: 10 % of its time, walking the calls in
    flight and finding 69 objects to free in about 8,000 calls (docs/performance.md, "The collector, collecting nothing").
    Cyclic garbage, should some arise, is still collected, after at most this many net allocations."""
    gc.set_threshold(settings.GATEWAY_GC_THRESHOLD, *gc.get_threshold()[1:])


_modules_at_freeze: int | None = None   # None: not frozen by this module (gc.get_freeze_count() walks the
#                                         frozen objects, ~10 ms for a worker's 110,000: never on the loop)


def _collect_and_freeze() -> None:
    global _modules_at_freeze
    gc.collect()
    gc.freeze()
    _modules_at_freeze = len(sys.modules)


def refreeze_after_imports() -> bool:
    """Collect and freeze again if modules were imported since the last freeze; True if it did.

    What is frozen with them is what lives at that moment: objects of calls in flight are still freed by
    their reference counts when the calls end, as ever; only a reference cycle among them would stay (a
    served call leaves none: tests/proxy/test_hotpath.py). It happens once per batch of first-use imports,
    a handful of times in a worker's life."""
    if _modules_at_freeze is None or len(sys.modules) <= _modules_at_freeze:   # not frozen, or nothing new
        return False
    loaded = len(sys.modules) - _modules_at_freeze
    _collect_and_freeze()
    logger.debug("heap: %d modules loaded since the last freeze; collected and froze again", loaded)
    return True


async def keep_imports_frozen(every: float = LOOK_EVERY) -> None:
    """Run until cancelled: look at sys.modules every ``every`` seconds, and once it has grown and then
    stayed the same for one look (a first admin page or management call imports over several requests),
    ``refreeze_after_imports``. A look is one ``len()``; the refreeze is one full collection. Returns at once
    when start-up did not freeze (``GATEWAY_GC_FREEZE=false``)."""
    if _modules_at_freeze is None:
        return
    seen = len(sys.modules)
    while True:
        await asyncio.sleep(every)
        now = len(sys.modules)
        if now == seen:
            refreeze_after_imports()
        seen = now
