"""The provider-neutral vocabulary of an agent: messages, tool calls, usage, responses,
and the events a streamed run reports.

Every LLM adapter (:mod:`namu.runtime.llm.providers`) translates between these and its wire
format, so the ReAct loop, the tools, the cost accounting and the run history never see
a provider's own types. They are plain slotted dataclasses: an agent makes a handful per
iteration, and they must cost next to nothing (the loop's overhead is benchmarked).

A transcript is a list of :class:`Message`:

* ``Message("user", "What is 25 * 47?")``
* ``Message("assistant", "Let me compute.", tool_calls=(ToolCall("c1", "calculator", {...}),))``
* ``Message("tool", tool_results=(ToolResult("c1", "calculator", "1175"),))``
* ``Message("assistant", "25 * 47 = 1175.")``

The system prompt is not a message: it is :attr:`LLMRequest.system` (Anthropic sends it
apart, OpenAI as a first ``system`` message).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

__all__ = [
    "AgentEvent",
    "Final",
    "LLMRequest",
    "LLMResponse",
    "Message",
    "StopReason",
    "TextDelta",
    "ToolCall",
    "ToolCallEvent",
    "ToolResult",
    "ToolResultEvent",
    "ToolSpec",
    "Usage",
    "UsageEvent",
]

Role = Literal["user", "assistant", "tool"]
#: Why a model stopped, normalized across providers: ``"end"`` (it answered: Anthropic
#: ``end_turn``/``stop_sequence``, OpenAI ``stop``), ``"tool_use"`` (it asked for tools:
#: ``tool_use``/``tool_calls``), ``"max_tokens"`` (cut off: ``max_tokens``/``length``),
#: ``"refusal"`` (Anthropic ``refusal``, OpenAI ``content_filter`` or a ``refusal`` field)
#: or ``"other"`` (anything else; :attr:`LLMResponse.raw_stop_reason` has the original).
StopReason = Literal["end", "tool_use", "max_tokens", "refusal", "other"]


@dataclasses.dataclass(frozen=True, slots=True)
class ToolCall:
    """A model's request to call a tool.

    Attributes:
        id: the provider's id of the call (``toolu_...``, ``call_...``), echoed in its result.
        name: the tool's name.
        arguments: the tool's input, a JSON object.
    """

    id: str
    name: str
    arguments: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class ToolResult:
    """The answer to one :class:`ToolCall`.

    Attributes:
        call_id: the :attr:`ToolCall.id` answered.
        name: the tool's name.
        content: what the tool returned, as text the model reads.
        is_error: the tool failed (raised, timed out, refused its input); ``content``
            says why, and the model may try again.
    """

    call_id: str
    name: str
    content: str
    is_error: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """One turn of a transcript.

    Attributes:
        role: ``"user"``, ``"assistant"`` or ``"tool"`` (the results of the tool calls
            of the assistant message before it).
        content: the text (may be empty for a message holding only tool calls/results).
        tool_calls: the tool calls of an assistant message.
        tool_results: the results of a tool message, one per call, in the calls' order.
    """

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The message as a JSON object (the run history and ``--json`` output)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [dataclasses.asdict(c) for c in self.tool_calls]
        if self.tool_results:
            out["tool_results"] = [dataclasses.asdict(r) for r in self.tool_results]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        """The inverse of :meth:`to_json`."""
        return cls(
            data["role"],
            data.get("content", ""),
            tuple(ToolCall(**c) for c in data.get("tool_calls", ())),
            tuple(ToolResult(**r) for r in data.get("tool_results", ())),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one call (or a whole run, summed with ``+``) consumed.

    Attributes:
        input_tokens: prompt tokens billed at the input price (Anthropic: excluding cache
            reads and writes; OpenAI: ``prompt_tokens`` minus cached ones).
        output_tokens: generated tokens.
        cache_creation_input_tokens: prompt tokens written to the provider's cache.
        cache_read_input_tokens: prompt tokens read from the provider's cache.
        complete: False when a provider did not report all usage (an OpenAI stream that
            ended without its usage chunk): the counts are what is known, a lower bound.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    complete: bool = True

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.complete and other.complete,
        )

    @property
    def total_tokens(self) -> int:
        """Every token counted, input (cached or not) and output."""
        return self.input_tokens + self.output_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    def to_json(self) -> dict[str, Any]:
        """The usage as a JSON object."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model sees it.

    Attributes:
        name: the tool's name (``^[a-zA-Z0-9_-]{1,64}$``, what both providers accept).
        description: what the tool does, for the model.
        input_schema: the JSON Schema (an ``object`` schema) of the tool's input.
    """

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class LLMRequest:
    """One call of a chat model.

    Attributes:
        model: the provider's model name.
        system: the system prompt ("" for none).
        messages: the transcript so far (it ends with a user or tool message).
        tools: the tools the model may call (empty: none; or in ``tool_mode: text`` the
            tools are described in ``system`` instead).
        max_tokens: the cap on generated tokens.
        temperature: sampling temperature, or None for the provider's default.
        stream: stream the response (its text deltas and tool calls are reported as
            events as they arrive).
        params: more provider parameters, sent as they are (``top_p``, ``stop``, ...).
    """

    model: str
    system: str
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int = 1024
    temperature: float | None = None
    stream: bool = False
    params: tuple[tuple[str, Any], ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class LLMResponse:
    """What one call of a chat model answered.

    Attributes:
        text: the text of the answer ("" if it only called tools).
        tool_calls: the tools it asked for, in order.
        stop_reason: why it stopped, normalized (:data:`StopReason`).
        raw_stop_reason: the provider's own stop reason (``end_turn``, ``length``, ...).
        usage: the tokens of this call.
        model: the model that answered (as the provider reports it).
        refusal: the refusal text, when the model refused ("" otherwise).
    """

    text: str
    tool_calls: tuple[ToolCall, ...]
    stop_reason: StopReason
    raw_stop_reason: str
    usage: Usage
    model: str
    refusal: str = ""

    def message(self) -> Message:
        """The assistant :class:`Message` this response adds to the transcript."""
        return Message("assistant", self.text, self.tool_calls)


# -- events of a streamed run ------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text, as it arrives."""

    text: str
    kind: Literal["text_delta"] = "text_delta"


@dataclasses.dataclass(frozen=True, slots=True)
class ToolCallEvent:
    """The model asked for a tool (reported once the call's arguments are complete)."""

    call: ToolCall
    kind: Literal["tool_call"] = "tool_call"


@dataclasses.dataclass(frozen=True, slots=True)
class ToolResultEvent:
    """A tool answered."""

    result: ToolResult
    kind: Literal["tool_result"] = "tool_result"


@dataclasses.dataclass(frozen=True, slots=True)
class UsageEvent:
    """An LLM call finished: its usage and cost, and the run's totals so far (a cost is
    None when the model's price is unknown)."""

    usage: Usage
    cost_usd: float | None
    total: Usage
    total_cost_usd: float | None
    kind: Literal["usage"] = "usage"


@dataclasses.dataclass(frozen=True, slots=True)
class Final:
    """The run ended; ``result`` is its :class:`namu.runtime.llm.result.AgentResult`."""

    result: Any
    kind: Literal["final"] = "final"


AgentEvent = TextDelta | ToolCallEvent | ToolResultEvent | UsageEvent | Final
