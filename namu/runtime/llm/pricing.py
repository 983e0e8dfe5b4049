"""What LLM calls cost: a built-in price table, and token estimates for a dry run.

Prices are list prices in USD per million tokens (MTok) of the providers' standard tier
(no batch discount), for input, output, cache writes and cache reads. A model is found
by its exact name, else by its name without a dated-snapshot suffix
(``claude-sonnet-4-5-20250929`` -> ``claude-sonnet-4-5``, ``gpt-4o-2024-08-06`` ->
``gpt-4o``, ``claude-3-5-haiku-latest`` -> ``claude-3-5-haiku``). A model the table does
not know (a local model behind vLLM or Ollama, a model newer than this table) has no
price: its cost is *unknown* (None), never zero, and an agent's ``llm.prices`` in its
YAML gives one.

Not modelled: Anthropic's 1-hour cache writes (2x input; the 5-minute rate, 1.25x, is
used), the long-context rates of Sonnet 4/4.5 above 200K input tokens (a beta), and
OpenAI's flex and priority tiers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping, Sequence

from namu.runtime.llm.messages import Message, ToolSpec, Usage

__all__ = ["Price", "cost_usd", "estimate_request_tokens", "estimate_tokens", "price_for"]


@dataclasses.dataclass(frozen=True, slots=True)
class Price:
    """The price of a model's tokens, in USD per million tokens.

    Attributes:
        input_per_mtok: uncached input (prompt) tokens.
        output_per_mtok: generated tokens (reasoning tokens included).
        cache_write_per_mtok: input tokens written to the provider's prompt cache, or
            None: the provider's rule (:func:`price_for` fills it in: Anthropic 1.25x
            input; OpenAI bills no cache writes apart, so 1x input).
        cache_read_per_mtok: input tokens read from the cache, or None: the provider's
            rule (:func:`price_for`: Anthropic 0.1x input; OpenAI the table's cached-input
            price, else 1x input).
    """

    input_per_mtok: float
    output_per_mtok: float
    cache_write_per_mtok: float | None = None
    cache_read_per_mtok: float | None = None


# Anthropic's prompt-caching multipliers of the input price (5-minute cache writes, hits).
_ANTHROPIC_CACHE_WRITE = 1.25
_ANTHROPIC_CACHE_READ = 0.1

# List prices checked on 2026-12-03 against platform.claude.com/docs/en/about-claude/pricing
# and .../models/overview (Opus 4.7, Sonnet 4.6, Haiku 4.5 ids and prices), and
# docs.anthropic.com/en/docs/about-claude/pricing (the older models). Cache prices follow
# the multipliers above unless given (Haiku 3 lists $0.30 and $0.03).
_ANTHROPIC: dict[str, Price] = {
    "claude-opus-4-7": Price(5.0, 25.0),
    "claude-opus-4-6": Price(5.0, 25.0),
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4": Price(15.0, 75.0),
    "claude-opus-4-0": Price(15.0, 75.0),
    "claude-sonnet-4-6": Price(3.0, 15.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-sonnet-4": Price(3.0, 15.0),
    "claude-sonnet-4-0": Price(3.0, 15.0),
    "claude-3-7-sonnet": Price(3.0, 15.0),
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-3-5-haiku": Price(0.8, 4.0),
    "claude-3-opus": Price(15.0, 75.0),
    "claude-3-haiku": Price(0.25, 1.25, cache_write_per_mtok=0.30, cache_read_per_mtok=0.03),
}

# List prices (input, output, cached input) of the standard tier, checked on 2026-12-03
# against openai.com/api/pricing as quoted by benchlm.ai/blog/posts/openai-api-pricing
# (GPT-5.x) and the launch posts of each model. OpenAI bills no cache writes apart from
# input; a model without a cached-input price (the -pro models) bills cached tokens as input.
_OPENAI: dict[str, Price] = {
    "gpt-5.5": Price(5.0, 30.0, cache_read_per_mtok=0.50),
    "gpt-5.4": Price(2.50, 15.0, cache_read_per_mtok=0.25),
    "gpt-5.4-mini": Price(0.75, 4.50, cache_read_per_mtok=0.075),
    "gpt-5.4-nano": Price(0.20, 1.25, cache_read_per_mtok=0.02),
    "gpt-5.2": Price(1.75, 14.0, cache_read_per_mtok=0.175),
    "gpt-5.1": Price(1.25, 10.0, cache_read_per_mtok=0.125),
    "gpt-5": Price(1.25, 10.0, cache_read_per_mtok=0.125),
    "gpt-5-mini": Price(0.25, 2.0, cache_read_per_mtok=0.025),
    "gpt-5-nano": Price(0.05, 0.40, cache_read_per_mtok=0.005),
    "gpt-5-pro": Price(15.0, 120.0),
    "gpt-4.1": Price(2.0, 8.0, cache_read_per_mtok=0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, cache_read_per_mtok=0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, cache_read_per_mtok=0.025),
    "gpt-4o": Price(2.50, 10.0, cache_read_per_mtok=1.25),
    "gpt-4o-2024-05-13": Price(5.0, 15.0),  # the first gpt-4o snapshot kept its launch price
    "gpt-4o-mini": Price(0.15, 0.60, cache_read_per_mtok=0.075),
    "o3": Price(2.0, 8.0, cache_read_per_mtok=0.50),
    "o3-pro": Price(20.0, 80.0),
    "o3-mini": Price(1.10, 4.40, cache_read_per_mtok=0.55),
    "o4-mini": Price(1.10, 4.40, cache_read_per_mtok=0.275),
    "o1": Price(15.0, 60.0, cache_read_per_mtok=7.50),
}

_TABLES: dict[str, dict[str, Price]] = {"anthropic": _ANTHROPIC, "openai": _OPENAI}

#: a dated-snapshot suffix: ``-20250929``, ``-2024-08-06`` or ``-latest``
_SNAPSHOT = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2}|latest)$")


def price_for(provider: str, model: str, overrides: Mapping[str, Price] | None = None) -> Price | None:
    """The price of ``model``, with its cache prices filled in by the provider's rule.

    ``overrides`` (an agent's ``llm.prices``) are looked up first, then the built-in
    table of ``provider``; in each, the exact name first, then the name without its
    dated-snapshot suffix.

    Args:
        provider: ``"anthropic"``, ``"openai"`` or another registered provider (which
            has no built-in prices: only ``overrides`` can price its models).
        model: the model name as the request gives it.
        overrides: prices by model name, taking precedence over the table.

    Returns:
        The price, or None when no table knows the model (its cost is unknown).
    """
    price = _lookup(overrides or {}, model) or _lookup(_TABLES.get(provider, {}), model)
    if price is None:
        return None
    if provider == "anthropic":
        write = _ANTHROPIC_CACHE_WRITE * price.input_per_mtok
        read = _ANTHROPIC_CACHE_READ * price.input_per_mtok
    else:
        write = read = price.input_per_mtok
    return dataclasses.replace(
        price,
        cache_write_per_mtok=write if price.cache_write_per_mtok is None else price.cache_write_per_mtok,
        cache_read_per_mtok=read if price.cache_read_per_mtok is None else price.cache_read_per_mtok,
    )


def _lookup(table: Mapping[str, Price], model: str) -> Price | None:
    price = table.get(model)
    if price is None:
        undated = _SNAPSHOT.sub("", model)
        if undated != model:
            price = table.get(undated)
    return price


def cost_usd(usage: Usage, price: Price | None) -> float | None:
    """What ``usage`` costs at ``price``, in USD.

    Args:
        usage: the tokens of a call or a run.
        price: the model's price (:func:`price_for`), or None (unknown).

    Returns:
        The cost, or None when ``price`` is None. A price whose cache prices are None
        (one not made by :func:`price_for`) bills cache tokens as input tokens.
    """
    if price is None:
        return None
    write = price.input_per_mtok if price.cache_write_per_mtok is None else price.cache_write_per_mtok
    read = price.input_per_mtok if price.cache_read_per_mtok is None else price.cache_read_per_mtok
    micro_usd = (
        usage.input_tokens * price.input_per_mtok
        + usage.output_tokens * price.output_per_mtok
        + usage.cache_creation_input_tokens * write
        + usage.cache_read_input_tokens * read
    )
    return micro_usd / 1_000_000


# -- token estimates ----------------------------------------------------------------------

#: bytes of UTF-8 per token: OpenAI's rule of thumb is ~4 characters of English text per
#: token; counting bytes instead of characters keeps the estimate from collapsing on text
#: outside ASCII (a CJK character is 3 bytes and about one token).
_BYTES_PER_TOKEN = 4
#: tokens a chat format spends around each message (role markers, separators): OpenAI's
#: cookbook counts 3 per message plus 3 priming the reply.
_TOKENS_PER_MESSAGE = 4
#: tokens around each tool definition (its name and the wrapper of its schema).
_TOKENS_PER_TOOL = 8


def estimate_tokens(text: str) -> int:
    """A fast estimate of the tokens of ``text``, without a tokenizer.

    The heuristic is one token per 4 bytes of UTF-8 (about 4 characters of English,
    about one CJK character), rounded up. Real tokenizers differ by model; this is for a
    dry run's plan and cost estimate, never for a limit.

    Args:
        text: any text.

    Returns:
        The estimated token count (0 for "").
    """
    return math.ceil(len(text.encode("utf-8", "surrogatepass")) / _BYTES_PER_TOKEN)


def estimate_request_tokens(system: str, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> int:
    """A fast estimate of the input tokens of one request (:func:`estimate_tokens` of its
    parts, plus a few tokens of framing per message and per tool).

    Providers add their own framing (Anthropic adds a tool-use system prompt of a few
    hundred tokens when tools are given), which this does not count.

    Args:
        system: the system prompt.
        messages: the transcript sent.
        tools: the tools offered (their names, descriptions and JSON schemas count).

    Returns:
        The estimated input token count.
    """
    total = estimate_tokens(system)
    for message in messages:
        total += _TOKENS_PER_MESSAGE + estimate_tokens(message.content)
        for call in message.tool_calls:
            total += estimate_tokens(call.name) + estimate_tokens(json.dumps(call.arguments, ensure_ascii=False))
        for result in message.tool_results:
            total += estimate_tokens(result.content)
    for tool in tools:
        schema = json.dumps(tool.input_schema, ensure_ascii=False)
        total += _TOKENS_PER_TOOL + estimate_tokens(tool.name) + estimate_tokens(tool.description) + estimate_tokens(schema)
    return total
