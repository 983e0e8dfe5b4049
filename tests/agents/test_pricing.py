"""The built-in price table, cost accounting, and the token estimates of a dry run."""

from __future__ import annotations

import pytest

from namu.runtime.llm import pricing
from namu.runtime.llm.messages import Message, ToolCall, ToolResult, ToolSpec, Usage
from namu.runtime.llm.pricing import (
    Price,
    cost_usd,
    estimate_request_tokens,
    estimate_tokens,
    price_for,
)


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("anthropic", "claude-sonnet-4-5", Price(3.0, 15.0, 3.75, 0.30)),
        ("anthropic", "claude-sonnet-4-5-20250929", Price(3.0, 15.0, 3.75, 0.30)),
        ("anthropic", "claude-opus-4-5-20251101", Price(5.0, 25.0, 6.25, 0.50)),
        ("anthropic", "claude-opus-4-1-20250805", Price(15.0, 75.0, 18.75, 1.50)),
        ("anthropic", "claude-opus-4-20250514", Price(15.0, 75.0, 18.75, 1.50)),
        ("anthropic", "claude-haiku-4-5-20251001", Price(1.0, 5.0, 1.25, 0.10)),
        ("anthropic", "claude-3-5-haiku-latest", Price(0.8, 4.0, 1.0, 0.08)),
        ("anthropic", "claude-3-haiku-20240307", Price(0.25, 1.25, 0.30, 0.03)),
        ("openai", "gpt-4o", Price(2.50, 10.0, 2.50, 1.25)),
        ("openai", "gpt-4o-2024-08-06", Price(2.50, 10.0, 2.50, 1.25)),
        ("openai", "gpt-4o-2024-05-13", Price(5.0, 15.0, 5.0, 5.0)),  # its own, older price
        ("openai", "gpt-4o-mini-2024-07-18", Price(0.15, 0.60, 0.15, 0.075)),
        ("openai", "gpt-5", Price(1.25, 10.0, 1.25, 0.125)),
        ("openai", "gpt-5-mini-2025-08-07", Price(0.25, 2.0, 0.25, 0.025)),
        ("openai", "gpt-4.1-nano", Price(0.10, 0.40, 0.10, 0.025)),
        ("openai", "o4-mini-2025-04-16", Price(1.10, 4.40, 1.10, 0.275)),
        ("openai", "gpt-5-pro", Price(15.0, 120.0, 15.0, 15.0)),  # no cached-input price: input
    ],
)
def test_price_for_exact_and_dated_snapshot_names(provider: str, model: str, expected: Price) -> None:
    price = price_for(provider, model)
    assert price is not None
    assert price.input_per_mtok == pytest.approx(expected.input_per_mtok)
    assert price.output_per_mtok == pytest.approx(expected.output_per_mtok)
    assert price.cache_write_per_mtok == pytest.approx(expected.cache_write_per_mtok)
    assert price.cache_read_per_mtok == pytest.approx(expected.cache_read_per_mtok)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "llama3.1:8b"),  # a local model behind an OpenAI-compatible server
        ("openai", "claude-sonnet-4-5"),  # the table of another provider
        ("anthropic", "claude-sonnet-4-5-preview"),  # not a dated snapshot
        ("anthropic", "claude-sonnet"),
        ("openai", "gpt-4o-mini-tts"),  # a prefix is not a snapshot
        ("mistral", "mistral-large-latest"),  # a provider without a table
    ],
)
def test_an_unknown_model_has_no_price_and_an_unknown_cost(provider: str, model: str) -> None:
    assert price_for(provider, model) is None
    assert cost_usd(Usage(1000, 1000), price_for(provider, model)) is None


def test_overrides_win_over_the_table_and_price_unknown_models() -> None:
    overrides = {"gpt-4o": Price(1.0, 2.0), "llama3.1:8b": Price(0.0, 0.0), "my-model": Price(2.0, 4.0, 3.0)}
    assert price_for("openai", "gpt-4o-2024-08-06", overrides) == Price(1.0, 2.0, 1.0, 1.0)
    assert price_for("openai", "llama3.1:8b", overrides) == Price(0.0, 0.0, 0.0, 0.0)
    assert price_for("openai", "gpt-4o-mini", overrides) == price_for("openai", "gpt-4o-mini")
    # an override's missing cache prices follow the provider's rule
    assert price_for("anthropic", "my-model", overrides) == Price(2.0, 4.0, 3.0, pytest.approx(0.2))
    assert price_for("mistral", "my-model", overrides) == Price(2.0, 4.0, 3.0, 2.0)


def test_cost_counts_every_kind_of_token() -> None:
    price = price_for("anthropic", "claude-sonnet-4-5")
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cache_creation_input_tokens=200_000, cache_read_input_tokens=500_000)
    assert cost_usd(usage, price) == pytest.approx(3.0 + 1.5 + 0.75 + 0.15)
    assert cost_usd(Usage(), price) == 0.0


def test_cost_of_a_price_without_cache_prices_bills_cache_tokens_as_input() -> None:
    assert cost_usd(Usage(0, 0, 1_000_000, 1_000_000), Price(2.0, 8.0)) == pytest.approx(4.0)


def test_cost_is_additive_over_calls() -> None:
    price = price_for("openai", "gpt-4.1")
    calls = [Usage(1200, 300, 0, 800), Usage(2000, 50), Usage(10, 10, 0, 5)]
    total = sum(calls[1:], calls[0])
    assert cost_usd(total, price) == pytest.approx(sum(cost_usd(u, price) for u in calls))


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_every_table_entry_is_found_and_sane(provider: str) -> None:
    """Every model of the table is found by its name and its dated snapshots, and its
    prices are positive with cache reads cheaper than input."""
    table = pricing._TABLES[provider]
    assert table
    for model, listed in table.items():
        for name in (model, f"{model}-20260101", f"{model}-2026-01-01"):
            price = price_for(provider, name)
            assert price is not None, name
        price = price_for(provider, model)
        assert price.input_per_mtok == listed.input_per_mtok > 0
        assert price.output_per_mtok >= price.input_per_mtok
        assert 0 < price.cache_read_per_mtok <= price.input_per_mtok
        assert price.cache_write_per_mtok >= price.input_per_mtok


def test_estimate_tokens_is_four_bytes_a_token_rounded_up() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("日本語") == 3  # 9 bytes of UTF-8: CJK text is not estimated at a quarter token a character
    assert estimate_tokens("What is 25 * 47?") == 4
    assert estimate_tokens("\ud800") == 1  # a lone surrogate does not raise


def test_estimate_request_tokens_counts_system_messages_and_tools() -> None:
    tool = ToolSpec("calculator", "Evaluates arithmetic.", {"type": "object", "properties": {"expression": {"type": "string"}}})
    messages = [
        Message("user", "What is 25 * 47?"),
        Message("assistant", "", tool_calls=(ToolCall("c1", "calculator", {"expression": "25 * 47"}),)),
        Message("tool", tool_results=(ToolResult("c1", "calculator", "1175"),)),
    ]
    bare = estimate_request_tokens("", [], [])
    assert bare == 0
    system_only = estimate_request_tokens("You are careful.", [], [])
    assert system_only == estimate_tokens("You are careful.")
    with_messages = estimate_request_tokens("You are careful.", messages, [])
    assert with_messages > system_only + sum(estimate_tokens(m.content) for m in messages)
    with_tools = estimate_request_tokens("You are careful.", messages, [tool])
    assert with_tools > with_messages + estimate_tokens(tool.description)
