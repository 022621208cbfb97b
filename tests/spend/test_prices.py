import pytest

from spend.cost import cost, resolve_price
from spend.prices import price_of


def test_known_model_has_a_price():
    assert price_of("gpt-4o").input_cost_per_token == 2.5e-06


def test_dated_snapshot_falls_back_to_its_family():
    assert price_of("gpt-4o-2024-08-06") == price_of("gpt-4o")


def test_unknown_model_has_no_price():
    assert price_of("my-local-llama") is None
    assert cost(resolve_price(model="my-local-llama"), prompt_tokens=10, completion_tokens=10) is None


def test_deployment_override_wins_over_the_table():
    price = resolve_price(model="gpt-4o", input_cost_per_token=0.0001, output_cost_per_token=0.0002)

    # The contract's example: 10 prompt and 20 completion tokens cost 0.005.
    assert cost(price, prompt_tokens=10, completion_tokens=20) == 0.005


def test_cached_prompt_tokens_cost_the_cache_read_price():
    price = price_of("claude-3-5-sonnet-20241022")

    value = cost(price, prompt_tokens=1000, completion_tokens=0, cached_tokens=800)

    assert value == pytest.approx(200 * 3e-06 + 800 * 3e-07)


def test_a_configured_price_charges_cached_tokens_as_ordinary_input():
    price = resolve_price(model="gpt-4o", input_cost_per_token=0.001, output_cost_per_token=0.002)

    assert cost(price, prompt_tokens=10, completion_tokens=0, cached_tokens=5) == pytest.approx(0.01)


def test_latest_aliases_fall_back_to_their_family():
    assert price_of("claude-3-5-sonnet-latest") == price_of("claude-3-5-sonnet")
