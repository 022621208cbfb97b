"""LiteLLM duration strings: ``30s``, ``30m``, ``30h``, ``30d``, ``1mo`` (calendar months)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w|mo)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class InvalidDuration(ValueError):
    pass


def parse_duration(text: str) -> tuple[int, str]:
    match = _DURATION.match(str(text))
    if not match:
        raise InvalidDuration(f"{text!r} is not a duration; use e.g. '30s', '30m', '30h', '30d' or '1mo'")
    return int(match.group(1)), match.group(2)


def add_duration(start: datetime, text: str) -> datetime:
    """``start`` plus the duration; months keep the day of month where the month has it."""
    count, unit = parse_duration(text)
    if unit != "mo":
        return start + timedelta(**{_UNITS[unit]: count})
    month_index = start.month - 1 + count
    year, month = start.year + month_index // 12, month_index % 12 + 1
    for day in range(start.day, 27, -1):
        try:
            return start.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    return start.replace(year=year, month=month, day=min(start.day, 28))
