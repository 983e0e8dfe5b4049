"""The steps of the ReAct loop an agent artifact runs, between its LLM and tool calls.

ReAct (Yao et al., "ReAct: Synergizing Reasoning and Acting in Language Models", ICLR
2023): the model reasons, asks for tools, reads their results, and answers. The agent
frontend lowers the loop into the IR (``namu.frontend.agents.lower``); these are the
meanings of its ops (``namu.ops.agents``):

* :func:`start` -- ``namu.AgentStart``: render the prompts (sandboxed Jinja2) over the
  run's inputs, make the run's :class:`AgentState`;
* :func:`observe` -- ``namu.AgentObserve``: add the model's answer to the transcript,
  count usage and cost, and apply the limits; what is left to do is ``state.pending``;
* :func:`record` -- ``namu.AgentRecord``: add the tools' results, count tool errors;
* :func:`finish` -- ``namu.AgentFinish``: the :class:`AgentResult`, or
  :class:`~namu.errors.AgentLimitError` when a limit ended the run.

The LLM call and each tool call between them are task calls (role slots bound by
``resolve-slots``), gated by ``insert-resilience-gates``. Limits are hard stops: a run
that reaches one stops before its next call and says which limit ended it.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from namu.errors import AgentLimitError, InputError
from namu.runtime.llm.messages import (
    AgentEvent,
    LLMResponse,
    Message,
    ToolCall,
    ToolResult,
    ToolResultEvent,
    ToolSpec,
    Usage,
    UsageEvent,
)

__all__ = [
    "EVENT_SINK",
    "PRIOR_MESSAGES",
    "RUNS",
    "AgentConfig",
    "AgentResult",
    "AgentState",
    "ToolCatalog",
    "agent_config",
    "finish",
    "observe",
    "record",
    "start",
]

#: the run's event sink (``Agent.stream`` sets it): told of every :class:`AgentEvent`
EVENT_SINK: contextvars.ContextVar[Callable[[AgentEvent], None] | None] = contextvars.ContextVar(
    "namu_agent_events", default=None
)
#: the agent runs started in this context, for the run history (``Agent.run`` and
#: ``namu run`` set it; the state of each run started is appended)
RUNS: contextvars.ContextVar[list[AgentState] | None] = contextvars.ContextVar("namu_agent_runs", default=None)
#: the earlier messages of the session a run continues (``--session``), or None
PRIOR_MESSAGES: contextvars.ContextVar[tuple[Message, ...] | None] = contextvars.ContextVar(
    "namu_agent_prior_messages", default=None
)


@dataclasses.dataclass(frozen=True, slots=True)
class AgentConfig:
    """What the steps of one agent need to know (the ``agent`` attribute of
    ``namu.AgentStart``, JSON).

    Attributes:
        name: the agent's name.
        system_prompt, prompt: the Jinja2 templates of the system prompt and user message.
        variables: the template variables other than ``input``, in order.
        defaults: the defaults of those that have one.
        provider, model: the LLM (for prices and messages).
        tool_mode: ``"native"`` or ``"text"``.
        limits: the hard stops (``LimitsSpec`` fields).
        price: the model's price (the agent's ``llm.prices`` over the built-in table),
            or None when unknown.
        api_key_envs: the environment variables holding its API keys, besides the
            providers' defaults (their values are scrubbed from the run history).
    """

    name: str
    system_prompt: str
    prompt: str
    variables: tuple[str, ...]
    defaults: dict[str, str]
    provider: str
    model: str
    tool_mode: str
    limits: dict[str, Any]
    price: Any
    api_key_envs: tuple[str, ...] = ()


@functools.lru_cache(maxsize=256)
def agent_config(text: str) -> AgentConfig:
    """The :class:`AgentConfig` in JSON ``text`` (parsed once per process)."""
    from namu.runtime.llm.pricing import Price, price_for

    data = json.loads(text)
    overrides = {name: Price(**fields) for name, fields in data["prices"].items()}
    return AgentConfig(
        data["name"],
        data["system_prompt"],
        data["prompt"],
        tuple(data["variables"]),
        data["defaults"],
        data["provider"],
        data["model"],
        data["tool_mode"],
        data["limits"],
        price_for(data["provider"], data["model"], overrides),
        tuple(data.get("api_key_envs", ())),
    )


#: a template that is one variable and nothing else, such as the default ``{{ input }}``
_ONE_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@functools.lru_cache(maxsize=512)
def _template(source: str) -> Callable[[dict[str, Any]], str]:
    """``render(inputs)`` of the prompt template ``source``: sandboxed Jinja2, with
    ``StrictUndefined``; a template with no Jinja2 syntax at all, or that is one defined
    variable, renders to the same text without Jinja2."""
    if "{" not in source:  # no {{ }}, {% %} or {# #}: the text, with Jinja2's newlines (\n, one final one dropped)
        text = re.sub(r"\r\n?", "\n", source).removesuffix("\n")
        return lambda inputs: text
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)
    render = env.from_string(source).render
    if (one := _ONE_VARIABLE.fullmatch(source)) is not None:
        name = one.group(1)
        # str() is what Jinja2 writes for a value; a missing variable still gets its error
        return lambda inputs: str(inputs[name]) if name in inputs else render(inputs)
    return render


@dataclasses.dataclass(frozen=True, slots=True)
class ToolCatalog:
    """The tools of one agent, as listed when its run starts.

    Attributes:
        specs: every tool, as the model sees it.
        owner: tool name -> the index of the ``tools`` entry providing it.
    """

    specs: tuple[ToolSpec, ...]
    owner: dict[str, int]

    def route(self, call: ToolCall) -> int:
        """The index of the entry whose tool ``call`` asks for, or -1 (no such tool)."""
        return self.owner.get(call.name, -1)

    def unknown(self, call: ToolCall) -> ToolResult:
        """The error result of a call of a tool the agent does not have."""
        known = ", ".join(spec.name for spec in self.specs) or "none"
        return ToolResult(call.id, call.name, f"error: unknown tool {call.name!r}; the tools are: {known}", True)


@dataclasses.dataclass(frozen=True)
class AgentResult:
    """What one agent run gave.

    Attributes:
        agent: the agent's name.
        answer: the final answer ("" if a limit ended the run first).
        stop: why the run ended: ``"answer"``, ``"max_tokens"`` (the model was cut
            off; ``answer`` is what it wrote), ``"refusal"``, or the limit that ended it
            (``"max_iterations"``, ``"max_cost_usd"``, ``"max_tokens_total"``,
            ``"max_tool_calls"``, ``"max_tool_errors"``, ``"timeout_s"``).
        messages: the transcript (user, assistant and tool messages; the system prompt
            is ``system``).
        system: the rendered system prompt.
        tool_calls: every tool call made, in order.
        tool_results: their results, in the same order.
        usage: the tokens of every LLM call, summed.
        cost_usd: their cost in USD, or None when a model's price is unknown.
        iterations: LLM calls made.
        duration_s: wall time of the run, in seconds.
        problems: what the text tool protocol could not parse (``tool_mode: text``).
        run_id: the run's id in the run history (``namu runs show ID``).
    """

    agent: str
    answer: str
    stop: str
    messages: tuple[Message, ...]
    system: str
    tool_calls: tuple[ToolCall, ...]
    tool_results: tuple[ToolResult, ...]
    usage: Usage
    cost_usd: float | None
    iterations: int
    duration_s: float
    problems: tuple[str, ...] = ()
    run_id: str = ""

    def __str__(self) -> str:
        return self.answer

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON object (``namu run --json``: ``value`` is the answer)."""
        return {
            "agent": self.agent,
            "answer": self.answer,
            "stop": self.stop,
            "iterations": self.iterations,
            "usage": {**self.usage.to_json(), "cost_usd": self.cost_usd},
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments, "result": r.content, "is_error": r.is_error}
                for c, r in zip(self.tool_calls, self.tool_results)
            ],
            "messages": [m.to_json() for m in self.messages],
            "duration_s": round(self.duration_s, 6),
            "run_id": self.run_id,
            **({"problems": list(self.problems)} if self.problems else {}),
        }


class AgentState:
    """The state of one agent run, carried through the loop (a loop-carried value).

    Each step updates it in place and passes it on: the loop's data dependencies order
    the steps, and no two steps of one run hold it at once.
    """

    __slots__ = (
        "config", "system", "messages", "catalog", "usage", "cost_usd", "iterations", "tool_calls",
        "tool_results", "tool_errors", "pending", "stop", "answer", "started", "deadline", "sink", "problems", "inputs",
        "run_id",
    )

    def __init__(self, config: AgentConfig, system: str, messages: list[Message], catalog: ToolCatalog,
                 inputs: dict[str, Any]) -> None:
        self.config = config
        self.system = system
        self.messages = messages
        self.catalog = catalog
        self.inputs = inputs
        self.usage = Usage()
        self.cost_usd: float | None = 0.0
        self.iterations = 0
        self.tool_calls: list[ToolCall] = []
        self.tool_results: list[ToolResult] = []
        self.tool_errors = 0
        self.pending: tuple[ToolCall, ...] = ()
        self.stop = ""
        self.answer = ""
        self.problems: list[str] = []
        self.started = time.monotonic()
        timeout_s = config.limits.get("timeout_s")
        self.deadline = self.started + timeout_s if timeout_s else None
        self.sink = EVENT_SINK.get()
        #: the run's id in the run history (12 hex digits)
        self.run_id = os.urandom(6).hex()

    def remaining_s(self) -> float | None:
        """Seconds left before ``limits.timeout_s``, or None (no limit)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def result(self) -> AgentResult:
        """The run's result so far."""
        return AgentResult(
            self.config.name,
            self.answer,
            self.stop,
            tuple(self.messages),
            self.system,
            tuple(self.tool_calls),
            tuple(self.tool_results),
            self.usage,
            self.cost_usd,
            self.iterations,
            time.monotonic() - self.started,
            tuple(self.problems),
            self.run_id,
        )

    def limit_error(self) -> AgentLimitError:
        """The error of a run a limit ended, with the partial result."""
        spent = f"{self.iterations} LLM call(s), {self.usage.total_tokens} tokens"
        if self.cost_usd is not None:
            spent += f", ${self.cost_usd:.6f}"
        spent += f", {len(self.tool_calls)} tool call(s) ({self.tool_errors} failed)"
        limit = self.stop
        value = self.config.limits.get("max_tokens" if limit == "max_tokens_total" else limit)
        return AgentLimitError(
            f"agent {self.config.name!r} stopped by limits.{'max_tokens' if limit == 'max_tokens_total' else limit} = {value}: spent {spent}",
            limit=limit,
            result=self.result(),
        )


def start(config_json: str, catalog: ToolCatalog, input_text: Any, *values: Any) -> AgentState:
    """``namu.AgentStart``: a new run's state, its prompts rendered over its inputs.

    Args:
        config_json: the agent's :class:`AgentConfig` as JSON.
        catalog: its tools.
        input_text: the user's input (``input`` in the templates).
        values: the template variables' values, in ``config.variables`` order (None: the default).

    Raises:
        InputError: a template variable has no value, or a template fails to render.
    """
    config = agent_config(config_json)
    inputs: dict[str, Any] = {"input": "" if input_text is None else input_text}
    for name, value in zip(config.variables, values):
        if value is None:
            value = config.defaults.get(name)
            if value is None:
                raise InputError(f"agent {config.name!r} needs the template variable {name!r} (-i {name}=VALUE)")
        inputs[name] = value
    try:
        system, prompt = _template(config.system_prompt)(inputs), _template(config.prompt)(inputs)
    except Exception as exc:  # jinja2's UndefinedError, SecurityError, a filter's error
        raise InputError(f"agent {config.name!r}: a prompt template failed to render: {exc}") from None
    if config.tool_mode == "text" and catalog.specs:  # the tools are described to the model in the system prompt
        from namu.runtime.llm.text_protocol import render_tools

        system = f"{system}\n\n{render_tools(catalog.specs)}" if system else render_tools(catalog.specs)
    state = AgentState(config, system, [*(PRIOR_MESSAGES.get() or ()), Message("user", prompt)], catalog, inputs)
    runs = RUNS.get()
    if runs is not None:
        runs.append(state)
    return state


def observe(state: AgentState, response: LLMResponse) -> AgentState:
    """``namu.AgentObserve``: add the model's answer; set ``state.pending`` to the tool
    calls to make now, or end the run (an answer, a refusal, a limit)."""
    from namu.runtime.llm.pricing import cost_usd

    config, limits = state.config, state.config.limits
    state.iterations += 1
    state.usage = total = state.usage + response.usage
    cost = cost_usd(response.usage, config.price)
    state.cost_usd = None if cost is None or state.cost_usd is None else state.cost_usd + cost
    if state.sink is not None:
        state.sink(UsageEvent(response.usage, cost, total, state.cost_usd))
    calls = response.tool_calls
    text = response.text
    if config.tool_mode == "text" and response.stop_reason != "refusal":
        from namu.runtime.llm.text_protocol import parse

        parsed = parse(text, state.catalog.specs, first_id=len(state.tool_calls) + 1)
        state.problems += parsed.problems
        calls = tuple(parsed.tool_calls)
        if not calls:
            text = parsed.answer if parsed.answer is not None else text
    state.messages.append(Message("assistant", response.text, calls if config.tool_mode == "native" else ()))
    state.pending = ()
    if response.stop_reason == "refusal":
        state.stop, state.answer = "refusal", response.refusal or text
    elif not calls:
        state.stop = "max_tokens" if response.stop_reason == "max_tokens" else "answer"
        state.answer = text
    else:
        state.pending = calls
    # hard stops, checked before anything more is called (an answer already given stands)
    if not state.stop and _over_budget(state, limits):
        state.pending = ()
    elif state.pending and limits.get("max_tool_calls") is not None and len(state.tool_calls) + len(calls) > limits["max_tool_calls"]:
        state.stop, state.pending = "max_tool_calls", ()
    return state


def _over_budget(state: AgentState, limits: dict[str, Any]) -> bool:
    """Set ``state.stop`` to the spending limit the run has gone past, if any, before it
    spends more; whether it has."""
    max_cost = limits.get("max_cost_usd")
    if max_cost is not None and state.cost_usd is not None and state.cost_usd >= max_cost:
        state.stop = "max_cost_usd"
    elif limits.get("max_tokens") is not None and state.usage.total_tokens >= limits["max_tokens"]:
        state.stop = "max_tokens_total"
    elif state.deadline is not None and time.monotonic() >= state.deadline:
        state.stop = "timeout_s"
    return bool(state.stop)


def pending(state: AgentState) -> list[ToolCall]:
    """``namu.AgentPending``: the tool calls to make now (a list, for ``namu.Map``)."""
    return list(state.pending)


def record(state: AgentState, results: Sequence[ToolResult]) -> AgentState:
    """``namu.AgentRecord``: add the tools' results (one tool message) and count errors."""
    if not state.pending:
        return state
    calls, state.pending = state.pending, ()
    sink = state.sink
    for call, result in zip(calls, results):
        state.tool_calls.append(call)
        state.tool_results.append(result)
        state.tool_errors += result.is_error
        if sink is not None:
            sink(ToolResultEvent(result))
    if state.config.tool_mode == "text":
        from namu.runtime.llm.text_protocol import format_observation

        state.messages.append(Message("user", format_observation(results)))
    else:
        state.messages.append(Message("tool", tool_results=tuple(results)))
    limits = state.config.limits
    max_errors = limits.get("max_tool_errors")
    if max_errors is not None and state.tool_errors > max_errors:
        state.stop = "max_tool_errors"
    elif state.deadline is not None and time.monotonic() >= state.deadline:
        state.stop = "timeout_s"
    return state


def going(state: AgentState) -> bool:
    """``namu.AgentGoing``: whether the loop makes another LLM call."""
    return not state.stop


def finish(state: AgentState) -> AgentResult:
    """``namu.AgentFinish``: the run's result.

    Raises:
        AgentLimitError: a limit ended the run (``max_iterations`` when the loop ran out
            of iterations without an answer); its ``result`` is the partial result.
    """
    if not state.stop:
        state.stop = "max_iterations"
    if state.stop not in ("answer", "max_tokens", "refusal"):
        raise state.limit_error()
    if state.sink is not None:
        from namu.runtime.llm.messages import Final

        result = state.result()
        state.sink(Final(result))
        return result
    return state.result()
