"""Cost of a call from its usage: per-deployment overrides first, then the price table."""
from __future__ import annotations

from spend.prices import Price, price_of


def resolve_price(*, model: str, input_cost_per_token: float | None = None,
                  output_cost_per_token: float | None = None) -> Price | None:
    """The price that applies, or None when neither config nor table knows the model."""
    listed = price_of(model)
    if input_cost_per_token is None and output_cost_per_token is None:
        return listed
    return Price(
        input_cost_per_token=input_cost_per_token if input_cost_per_token is not None
        else (listed.input_cost_per_token if listed else 0.0),
        output_cost_per_token=output_cost_per_token if output_cost_per_token is not None
        else (listed.output_cost_per_token if listed else 0.0),
        # A configured price replaces the list price, cache discount included.
        cache_read_input_token_cost=None,
    )


def cost(price: Price | None, *, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float | None:
    """USD for a call; ``cached_tokens`` (part of ``prompt_tokens``) at the cache-read price when known."""
    if price is None:
        return None
    cached = min(cached_tokens, prompt_tokens) if price.cache_read_input_token_cost is not None else 0
    return ((prompt_tokens - cached) * price.input_cost_per_token + cached * (price.cache_read_input_token_cost or 0.0)
            + completion_tokens * price.output_cost_per_token)
