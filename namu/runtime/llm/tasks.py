"""The tasks an agent's role slots are bound to by default: the LLM call, its fallback,
the tool listing and the tool call.

The agent frontend lowers every LLM call to ``namu.Slot <slot="AGENT.llm">`` and every
tool entry to ``namu.Slot <slot="AGENT.tool.N.KIND">``; ``resolve-slots`` binds them to
:func:`complete` and :func:`call_tool` unless the compile binds them to tasks of the
user's (``--slot calculator.llm=my_module:fake_llm``). Their first input is the JSON of
what they call (the model and its parameters, a tool entry's options): no API key is in
it, only the name of the environment variable holding one.

All four are ``async def`` tasks: the kernel awaits them on the run's event loop, so a
thousand agents in flight cost a thousand coroutines, not a thousand threads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from typing import Any

from namu.errors import AgentSpecError, ToolError
from namu.frontend.task import task
from namu.runtime.llm.messages import (
    LLMRequest,
    LLMResponse,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolResult,
    ToolSpec,
)
from namu.runtime.llm.providers import Endpoint, provider_for
from namu.runtime.llm.react import AgentState, ToolCatalog
from namu.runtime.llm.response_cache import response_cache
from namu.runtime.llm.wire import RAW_ARGUMENTS_KEY
from namu.runtime.tools.base import Tool, ToolKit, tool_kit_class, tool_options_class

__all__ = ["LLMCall", "call_tool", "complete", "complete_fallback", "list_tools", "llm_call"]


@dataclasses.dataclass(frozen=True, slots=True)
class LLMCall:
    """One model and how to call it (the ``llm`` input of :func:`complete`, JSON).

    Attributes:
        endpoint: where the provider is.
        model: the model name.
        max_tokens, temperature: the sampling parameters.
        params: more request parameters.
        stream: stream answers.
        tool_mode: ``"native"`` or ``"text"``.
        retry: the fallback's retries (``RetrySpec`` fields).
        breaker: the fallback's circuit breaker (``BreakerSpec`` fields).
        fallback: the models tried in order when this one fails.
        cache: the agent's response cache settings (``CacheSpec`` fields; empty: none).
        base_dir: the agent file's directory (relative paths of the settings).
    """

    endpoint: Endpoint
    model: str
    max_tokens: int
    temperature: float | None
    params: tuple[tuple[str, Any], ...]
    stream: bool
    tool_mode: str
    retry: dict[str, Any]
    breaker: dict[str, Any]
    fallback: tuple[LLMCall, ...]
    cache: dict[str, Any] = dataclasses.field(default_factory=dict)
    base_dir: str = "."

    @classmethod
    def of(cls, data: dict[str, Any]) -> LLMCall:
        """From its JSON object (see ``namu.frontend.agents.lower.llm_json``)."""
        return cls(
            Endpoint(data["provider"], data.get("base_url"), data.get("api_key_env"), data["timeout_s"]),
            data["model"],
            data["max_tokens"],
            data.get("temperature"),
            tuple(sorted(data.get("params", {}).items())),
            data.get("stream", False),
            data.get("tool_mode", "native"),
            data.get("retry", {}),
            data.get("breaker", {}),
            tuple(cls.of(fb) for fb in data.get("fallback", ())),
            data.get("cache") or {},
            data.get("base_dir", "."),
        )

    @property
    def breaker_key(self) -> str:
        """The circuit breaker's name: ``provider/model``."""
        return f"{self.endpoint.provider}/{self.model}"


@functools.lru_cache(maxsize=256)
def llm_call(text: str) -> LLMCall:
    """The :class:`LLMCall` in JSON ``text`` (parsed once per process)."""
    return LLMCall.of(json.loads(text))


def _request(call: LLMCall, state: AgentState) -> LLMRequest:
    return LLMRequest(
        call.model,
        state.system,  # in tool_mode "text" it describes the tools (namu.AgentStart put them there)
        tuple(state.messages),
        state.catalog.specs if call.tool_mode == "native" else (),
        call.max_tokens,
        call.temperature,
        call.stream or state.sink is not None,
        call.params,
    )


async def _complete(call: LLMCall, state: AgentState) -> LLMResponse:
    request = _request(call, state)
    cache = response_cache(call.cache, call.endpoint, call.base_dir) if call.cache else None
    if cache is None:
        return await _answer(call, state, request)
    hit, keys = await cache.lookup(call.endpoint, request)
    if hit is not None:
        if state.sink is not None:
            _replay(hit, state.sink)
        return hit
    response = await _answer(call, state, request)
    cache.store(keys, response)
    return response


async def _answer(call: LLMCall, state: AgentState, request: LLMRequest) -> LLMResponse:
    """The provider's answer, within what is left of ``limits.timeout_s``."""
    remaining_s = state.remaining_s()
    answer = provider_for(call.endpoint).complete(request, state.sink)
    if remaining_s is None:
        return await answer
    deadline = asyncio.timeout(max(remaining_s, 0.0))
    try:
        async with deadline:
            return await answer
    except TimeoutError:
        if not deadline.expired():
            raise
    state.stop = "timeout_s"
    raise state.limit_error()


def _replay(response: LLMResponse, sink: Any) -> None:
    """Tell a stream's consumer of a cached answer: its text, then its tool calls."""
    if response.text:
        sink(TextDelta(response.text))
    for call in response.tool_calls:
        sink(ToolCallEvent(call))


@task(name="llm")
async def complete(llm: str, state: AgentState) -> LLMResponse:
    """Call the agent's model once with the transcript so far (the default ``llm`` slot).

    Args:
        llm: the model and its parameters, as JSON (:class:`LLMCall`).
        state: the run's state (system prompt, transcript, tools).

    Returns:
        The model's answer.

    Raises:
        LLMError: the call failed (the gate around it retries what is retryable).
        AgentLimitError: ``limits.timeout_s`` ran out while the model was answering.
    """
    return await _complete(llm_call(llm), state)


@task(name="llm_fallback")
async def complete_fallback(llm: str, state: AgentState) -> LLMResponse:
    """The gate's fallback of :func:`complete`: try the ``fallback`` models in order, each
    with the primary's retries and its own circuit breaker; the first answer wins.

    Raises:
        LLMError, CircuitOpenError: every fallback failed (the last one's error).
    """
    from namu.runtime.tasks.breakers import breaker
    from namu.runtime.tasks.retries import RetryPolicy, retrying_async

    primary = llm_call(llm)
    if not primary.fallback:
        raise AgentSpecError(f"model {primary.model!r} has no fallback models")
    error: Exception | None = None
    for fallback in primary.fallback:
        policy = RetryPolicy(
            primary.retry.get("max_retries", 0),
            None,
            primary.retry.get("backoff_base_s", 0.5),
            primary.retry.get("backoff_max_s", 30.0),
            breaker=breaker(fallback.breaker_key, primary.breaker.get("failure_threshold", 5),
                            primary.breaker.get("cooldown_s", 30.0))
            if primary.breaker.get("enabled", True) else None,
        )
        try:
            return await retrying_async(_answer, policy)((fallback, state, _request(fallback, state)), {})
        except Exception as exc:  # noqa: BLE001 - the next fallback is tried
            error = exc
    assert error is not None
    raise error


# -- tools -------------------------------------------------------------------------------

#: (entry JSON, id of the event loop) -> the kit and its tools by name, opened once
_KITS: dict[tuple[str, int], tuple[ToolKit, dict[str, Tool]]] = {}


async def _kit(entry: str) -> tuple[ToolKit, dict[str, Tool]]:
    key = (entry, id(asyncio.get_running_loop()))
    found = _KITS.get(key)
    if found is None:
        data = json.loads(entry)
        options = tool_options_class(data["kind"]).model_validate(data["options"])
        kit = tool_kit_class(data["kind"])(options, data["base_dir"])
        tools = await kit.tools()
        found = _KITS.setdefault(key, (kit, {t.name: t for t in tools}))
    return found


#: the catalogs listed so far in this process, by the ``tools`` JSON listed
_CATALOGS: dict[str, ToolCatalog] = {}


@task(name="list_tools")
def list_tools(tools: str) -> ToolCatalog:
    """List the tools of an agent's ``tools`` entries (an MCP server is asked here),
    once per process: later runs get the same catalog at once. A plain task on purpose:
    after the first listing, an agent run's start costs no trip to the event loop.

    Args:
        tools: the entries as a JSON list of ``{"kind", "options", "base_dir"}``.

    Raises:
        AgentSpecError: two entries provide tools of the same name.
    """
    catalog = _CATALOGS.get(tools)
    if catalog is None:
        from namu.runtime.async_bridge import run_coroutine

        catalog = _CATALOGS.setdefault(tools, run_coroutine(_list_tools(tools)))
    return catalog


async def _list_tools(tools: str) -> ToolCatalog:
    specs: list[ToolSpec] = []
    owner: dict[str, int] = {}
    for index, entry in enumerate(json.loads(tools)):
        _, kit_tools = await _kit(json.dumps(entry, sort_keys=True))
        for name, tool in kit_tools.items():
            if name in owner:
                raise AgentSpecError(f"two tools are named {name!r} (tools entries {owner[name]} and {index}): give one a prefix")
            owner[name] = index
            specs.append(tool.spec())
    return ToolCatalog(tuple(specs), owner)


@task(name="tool")
async def call_tool(entry: str, call: ToolCall) -> ToolResult:
    """Call the tool ``call`` asks for, of the ``tools`` entry ``entry`` (the default of
    each ``tool.N.KIND`` slot). A tool that refuses its input, raises or runs past its
    ``timeout_s`` gives an error result: the model reads it and the loop goes on.

    Args:
        entry: the entry as JSON (``{"kind", "options", "base_dir"}``).
        call: the model's tool call.

    Returns:
        The tool's result (``is_error`` when it failed).
    """
    _, tools = await _kit(entry)
    tool = tools.get(call.name)
    if tool is None:
        return ToolResult(call.id, call.name, f"error: no tool {call.name!r} here", True)
    raw = call.arguments.get(RAW_ARGUMENTS_KEY) if len(call.arguments) == 1 else None
    if isinstance(raw, str):  # the model's arguments were not a JSON object
        return ToolResult(call.id, call.name, f"error: the arguments are not a JSON object: {raw[:200]!r}", True)
    try:
        async with asyncio.timeout(tool.timeout_s):
            content = await tool.call(call.arguments)
    except ToolError as exc:
        return ToolResult(call.id, call.name, f"error: {exc}", True)
    except TimeoutError:
        return ToolResult(call.id, call.name, f"error: the tool timed out after {tool.timeout_s} s", True)
    except Exception as exc:  # noqa: BLE001 - a tool's failure is the model's to handle
        return ToolResult(call.id, call.name, f"error: {type(exc).__name__}: {exc}", True)
    return ToolResult(call.id, call.name, content)

