"""The built-in price table (``prices.json``), loaded once."""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

# Dated snapshots (gpt-4o-2024-08-06, claude-3-5-sonnet-20241022) and "-latest" aliases.
_DATED = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|latest)$")


@dataclass(frozen=True, slots=True)
class Price:
    input_cost_per_token: float
    output_cost_per_token: float
    # Prompt tokens read from the provider's prompt cache; None: charged as ordinary input.
    cache_read_input_token_cost: float | None = None


@functools.cache
def _table() -> dict[str, Price]:
    raw = json.loads(Path(__file__).with_name("prices.json").read_text())
    return {name: Price(**entry) for name, entry in raw.items() if not name.startswith("_")}


def price_of(model: str) -> Price | None:
    """The list price of a provider model; dated snapshots (``gpt-4o-2024-08-06``) fall back to
    their family when the table has no entry of their own."""
    table = _table()
    if model in table:
        return table[model]
    undated = _DATED.sub("", model)
    while undated not in table and _DATED.search(undated):
        undated = _DATED.sub("", undated)
    return table.get(undated)
