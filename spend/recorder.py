"""``record(SpendRecord)``: hand one finished request to the batch writer, without blocking."""
from __future__ import annotations

from spend.records import SpendRecord
from spend.writer import writer

__all__ = ["SpendRecord", "record"]


def record(entry: SpendRecord) -> None:
    writer.add(entry)
