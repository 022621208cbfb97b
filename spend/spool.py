"""An on-disk spool for spend rows the database could not take before the process stopped.

At shutdown, rows still buffered (the database is down) are written to
``GATEWAY_DATA_DIR/spend-spool/*.jsonl``; at the next start they are written to the database. A
row is keyed by its call id, so a spool replayed twice (two workers, a crash mid-replay) still
yields one row per request.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import uuid
from datetime import datetime
from pathlib import Path

from django.conf import settings

from spend.records import SpendRecord

logger = logging.getLogger("gateway.spend")

_DATETIME_FIELDS = ("start_time", "end_time", "completion_start_time")


def spool_dir() -> Path:
    return Path(settings.DATA_DIR) / "spend-spool"


def spill(records: list[SpendRecord]) -> Path:
    """Write ``records`` to a new spool file (complete or not at all: written aside, then renamed)."""
    directory = spool_dir()
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{int(time.time() * 1000)}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
    partial = final.with_suffix(".partial")
    with open(partial, "w") as out:
        for record in records:
            out.write(json.dumps(dataclasses.asdict(record), default=_encode) + "\n")
        out.flush()
        os.fsync(out.fileno())
    partial.rename(final)
    return final


def claim_next() -> Path | None:
    """Take one spool file for replay; a rename makes sure two workers never take the same one."""
    directory = spool_dir()
    if not directory.is_dir():
        return None
    for path in sorted(directory.glob("*.jsonl")):
        claimed = path.with_suffix(f".replaying-{os.getpid()}")
        try:
            path.rename(claimed)
        except FileNotFoundError:
            continue
        return claimed
    return None


def load(path: Path) -> list[SpendRecord]:
    records = []
    for line in path.read_text().splitlines():
        if line.strip():
            values = json.loads(line)
            for name in _DATETIME_FIELDS:
                if values.get(name):
                    values[name] = datetime.fromisoformat(values[name])
            records.append(SpendRecord(**values))
    return records


def give_back(path: Path) -> None:
    """Replay failed (the database is still down): return the file for a later attempt."""
    path.rename(path.with_suffix(".jsonl"))


def _encode(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot spool {type(value).__name__}")
