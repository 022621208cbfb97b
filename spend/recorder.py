"""``record(SpendRecord)``: hand one finished request to the batch writer, without blocking."""
from __future__ import annotations

from spend.records import SpendRecord
from spend.writer import writer

__all__ = ["SpendRecord", "backlog", "buffered", "readiness", "record", "writer_behind", "writer_room"]


def record(entry: SpendRecord) -> None:
    writer.add(entry)


def buffered() -> int:
    """Finished requests in this process's memory, not yet written (or handed to the stream)."""
    return writer.pending


def writer_behind() -> bool:
    """More finished requests wait to be written than ``GATEWAY_SPEND_MAX_BACKLOG``: wait for ``writer_room``."""
    return writer.backlogged


async def writer_room() -> None:
    """Wait (boundedly) for the writer to catch up; at once while the database is failing."""
    await writer.room()


async def readiness() -> tuple[bool, str]:
    """Whether finished requests reach the ledger as promised: with Redis configured, false while the
    spend-event stream cannot be reached (a crash would then lose the buffered records). Returns
    (ready, "connected" | "unreachable" | "disabled")."""
    return await writer.journal.readiness()


async def backlog() -> int | None:
    """Spend events waiting in the Redis stream to be written (None without Redis, or when it cannot say)."""
    return await writer.journal.backlog()
