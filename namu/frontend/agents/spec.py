"""The agent file format: pydantic models, strict (an unknown key is an error).

One YAML file is one agent::

    name: calculator
    description: Answers arithmetic questions.
    llm:
      provider: anthropic            # anthropic (official SDK) | openai (any OpenAI-compatible server)
      model: claude-sonnet-4-5
      temperature: 0
      max_tokens: 1024
    system_prompt: You are a careful assistant. Use the calculator for any arithmetic.
    tools:
      - calculator
    limits:
      max_iterations: 8
      timeout_s: 60
      max_cost_usd: 0.10

:func:`agent_json_schema` publishes the format as JSON Schema (``namu schema agent``);
:mod:`namu.frontend.agents.source` reads files into :class:`AgentSpec` with located
errors. ``docs/agents.md``'s reference is generated from these models' descriptions.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AgentSpec",
    "BreakerSpec",
    "CacheSpec",
    "FallbackSpec",
    "LLMSpec",
    "LimitsSpec",
    "PriceSpec",
    "RetrySpec",
    "SemanticCacheSpec",
    "agent_json_schema",
]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceSpec(_Strict):
    """A model's price, overriding the built-in table (USD per million tokens)."""

    input_per_mtok: float = Field(ge=0, description="USD per million input tokens.")
    output_per_mtok: float = Field(ge=0, description="USD per million output tokens.")
    cache_write_per_mtok: float | None = Field(None, ge=0, description="USD per million tokens written to the prompt cache.")
    cache_read_per_mtok: float | None = Field(None, ge=0, description="USD per million tokens read from the prompt cache.")


class RetrySpec(_Strict):
    """Retries of a failed LLM call: rate limits (honouring ``retry-after``), 5xx,
    timeouts, dropped connections and malformed answers; never a refused request (4xx).
    Exponential backoff with full jitter. Only the LLM call is retried: tool calls that
    already ran are never run again."""

    max_retries: int = Field(3, ge=0, le=20, description="Retries after the first failed attempt.")
    backoff_base_s: float = Field(0.5, ge=0, description="Upper bound of the first retry's delay, in seconds; it doubles per retry.")
    backoff_max_s: float = Field(30.0, ge=0, description="Cap of any retry delay, in seconds (a longer retry-after is still honoured).")


class BreakerSpec(_Strict):
    """The circuit breaker of the provider and model: after ``failure_threshold``
    consecutive failed calls it opens and calls fail at once (the fallback runs, if any);
    after ``cooldown_s`` it half-opens and lets one trial call through."""

    enabled: bool = Field(True, description="Use a circuit breaker.")
    failure_threshold: int = Field(5, ge=1, description="Consecutive failures that open the breaker.")
    cooldown_s: float = Field(30.0, ge=0, description="Seconds the breaker stays open before a trial call.")


class FallbackSpec(_Strict):
    """A model tried when the primary one still fails after its retries (or its breaker
    is open). Unset fields are the primary's."""

    provider: str | None = Field(None, description="Provider of the fallback (default: the primary's).")
    model: str = Field(description="The fallback model.")
    base_url: str | None = Field(None, description="Base URL (default: the primary's when the provider is the same).")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key.")
    max_tokens: int | None = Field(None, ge=1, description="Cap on generated tokens (default: the primary's).")
    temperature: float | None = Field(None, ge=0, le=2, description="Sampling temperature (default: the primary's).")


class LLMSpec(_Strict):
    """The language model the agent calls."""

    provider: str = Field(description="`anthropic` (the official SDK) or `openai` (any OpenAI-compatible server: OpenAI, vLLM, Ollama, llama.cpp).")
    model: str = Field(min_length=1, description="The provider's model name.")
    temperature: float | None = Field(None, ge=0, le=2, description="Sampling temperature (default: the provider's).")
    max_tokens: int = Field(1024, ge=1, description="Cap on the tokens of one answer.")
    base_url: str | None = Field(None, description="The API's base URL; default: ANTHROPIC_BASE_URL / OPENAI_BASE_URL, then the public API.")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key; default ANTHROPIC_API_KEY / OPENAI_API_KEY. The key itself is never written anywhere.")
    timeout_s: float = Field(60.0, gt=0, description="Limit of one request, in seconds.")
    tool_mode: Literal["native", "text"] = Field("native", description="`native`: the provider's tool calling; `text`: a Thought/Action/Observation text protocol, for models without tool support.")
    stream: bool = Field(False, description="Stream answers (also `namu run --stream`).")
    params: dict[str, Any] = Field(default_factory=dict, description="More request parameters, sent as they are (top_p, stop, ...).")
    retry: RetrySpec = Field(default_factory=RetrySpec, description="Retries of failed calls.")
    circuit_breaker: BreakerSpec = Field(default_factory=BreakerSpec, description="The circuit breaker of this provider and model.")
    fallback: list[FallbackSpec] = Field(default_factory=list, description="Models tried in order when this one fails.")
    prices: dict[str, PriceSpec] = Field(default_factory=dict, description="Prices per model name, overriding the built-in table.")

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        from namu.runtime.llm.providers import provider_names

        if value not in provider_names():
            raise ValueError(f"unknown provider {value!r}; expected one of: {', '.join(provider_names())}")
        return value


class LimitsSpec(_Strict):
    """Hard stops: a run that reaches one ends, saying which, with its partial transcript."""

    max_iterations: int = Field(10, ge=1, description="LLM calls in one run.")
    timeout_s: float | None = Field(None, gt=0, description="Wall time of one run, in seconds.")
    max_cost_usd: float | None = Field(None, ge=0, description="Cost of one run, in USD.")
    max_tokens: int | None = Field(None, ge=1, description="Tokens (input and output) of one run.")
    max_tool_calls: int | None = Field(None, ge=0, description="Tool calls in one run.")
    max_tool_errors: int | None = Field(3, ge=0, description="Tool calls that may fail (raise, time out, be refused) in one run.")


class SemanticCacheSpec(_Strict):
    """Answers reused for a similar request: cosine similarity of embeddings of the last
    user message, over requests with the same model, parameters, system prompt, tools and
    earlier messages."""

    threshold: float = Field(0.95, gt=0, le=1, description="Cosine similarity at or above which an answer is reused.")
    embeddings_model: str | None = Field(None, description="Model of an OpenAI-compatible embeddings endpoint (the LLM's own, or `base_url`).")
    base_url: str | None = Field(None, description="Base URL of the OpenAI-compatible embeddings endpoint (default: the LLM's, for provider openai).")
    api_key_env: str | None = Field(None, description="Environment variable holding the embeddings endpoint's API key.")
    python: str | None = Field(None, description="Or a Python function `module:function` (str -> list[float]) making embeddings.")

    @model_validator(mode="after")
    def _one_source(self) -> SemanticCacheSpec:
        if (self.python is None) == (self.embeddings_model is None):
            raise ValueError("a semantic cache takes its embeddings from `embeddings_model` or `python`: give exactly one")
        return self


class CacheSpec(_Strict):
    """Response caches, opt-in."""

    exact: bool = Field(False, description="Reuse the answer of an identical request (model, parameters, messages, tools).")
    backend: Literal["memory", "sqlite"] = Field("memory", description="Where cached answers live: process memory, or namu's SQLite result cache (shared by processes and runs).")
    directory: str | None = Field(None, description="Directory of the `sqlite` backend's cache (default: $NAMU_CACHE_DIR, else ~/.namu/llm-cache); relative to the agent file.")
    semantic: SemanticCacheSpec | None = Field(None, description="A semantic cache, or none.")


class AgentSpec(_Strict):
    """One agent."""

    name: str = Field(description="The agent's name: a letter, then letters, digits, `_` or `-` (up to 64).")
    description: str = Field("", description="What the agent does (shown by `namu inspect`; a tool description when agents call agents).")
    llm: LLMSpec = Field(description="The language model.")
    system_prompt: str = Field("", description="System prompt: a Jinja2 template over the run's inputs.")
    prompt: str = Field("{{ input }}", description="The user message: a Jinja2 template over the run's inputs (`input` is `--input`).")
    variables: dict[str, str] = Field(default_factory=dict, description="Defaults of template variables; a variable without one is a required input.")
    tools: list[str | dict[str, Any]] = Field(default_factory=list, description="Tools: a kind's name (`calculator`), or `{kind: options}`.")
    limits: LimitsSpec = Field(default_factory=LimitsSpec, description="Hard stops.")
    cache: CacheSpec = Field(default_factory=CacheSpec, description="Response caches.")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("a name is a letter, then letters, digits, '_' or '-' (up to 64)")
        return value

    @model_validator(mode="after")
    def _embeddings_reachable(self) -> AgentSpec:
        semantic = self.cache.semantic
        if semantic is not None and semantic.embeddings_model and not semantic.base_url and self.llm.provider != "openai":
            raise ValueError(f"provider {self.llm.provider!r} has no embeddings endpoint: give cache.semantic.base_url "
                             "(an OpenAI-compatible server) or cache.semantic.python")
        return self


def agent_json_schema() -> dict[str, Any]:
    """The JSON Schema of agent files (draft 2020-12), with every registered tool kind's
    options under ``tools``."""
    from namu.runtime.tools.base import tool_kind_names, tool_options_class

    schema = AgentSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "namu agent"
    defs = schema.setdefault("$defs", {})
    entries: list[dict[str, Any]] = [{"enum": tool_kind_names(), "description": "A tool kind with its default options."}]
    for kind in tool_kind_names():
        options = tool_options_class(kind)
        sub = options.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        defs[options.__name__] = sub
        value: dict[str, Any] = {"$ref": f"#/$defs/{options.__name__}"}
        if options.shorthand:
            value = {"anyOf": [value, {"type": "string", "description": f"Shorthand for `{{{options.shorthand}: ...}}`."}]}
        entries.append({"type": "object", "properties": {kind: value}, "required": [kind], "additionalProperties": False})
    schema["properties"]["tools"]["items"] = {"anyOf": entries}
    return schema
