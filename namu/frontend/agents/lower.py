"""Lower an agent into namu IR: the ReAct loop as a ``Loop`` whose body is an LLM call
and the tool dispatch, its limits as the loop's exit conditions.

For an agent ``calc`` with a calculator::

    calc (string input) => (result) {
      tools = Constant <value = "[{\\"kind\\": \\"calculator\\", ...}]">
      catalog = namu.Task <task = "list_tools"> (tools)
      state = namu.AgentStart <agent = "{...prompts, limits...}"> (catalog, input)
      llm = Constant <value = "{\\"provider\\": \\"anthropic\\", \\"model\\": ...}">
      final = namu.Loop <body = loop_body (iter_num, cond_in, state_in) => (going, state_out) {
          reply = namu.Slot <slot = "calc.llm", retries = 3, timeout_s = 60.0, breaker = "anthropic/...", ...> (llm, state_in)
          observed = namu.AgentObserve (state_in, reply)
          calls = namu.AgentPending (observed)
          results = namu.Map <body = tool_calls (call) => (result) {
              entry = namu.AgentRoute (catalog, call)
              result = If (entry == 0) { namu.Slot <slot = "calc.tool.0.calculator"> (tool0, call) }
                       else { namu.AgentUnknownTool (catalog, call) }
          }> (calls)
          state_out = namu.AgentRecord (observed, results)
          going = namu.AgentGoing (state_out)
      }> (max_iterations, true, state)
      result = namu.AgentFinish (final)
    }

``resolve-slots`` binds ``calc.llm`` to :func:`namu.runtime.llm.tasks.complete` and each
``calc.tool.N.KIND`` to :func:`namu.runtime.llm.tasks.call_tool` (unless the compile
binds them otherwise); ``insert-resilience-gates`` then wraps the LLM call in a
``namu.Gate`` carrying its retries, timeout, circuit breaker and fallback, from the
attributes set here. The tool calls of one turn fan out (``namu.Map``) and run
concurrently. No API key is in the IR: only the name of its environment variable.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import onnx_ir as ir

from namu.errors import AgentSpecError
from namu.frontend.agents.config import (
    agent_json,
    llm_json,
    signature_of,
    slot_prefix,
    tools_json,
)
from namu.frontend.agents.source import AgentSource
from namu.frontend.builder import IRBuilder, Scope
from namu.frontend.context import CompileContext
from namu.frontend.slot import Slot
from namu.ir.metadata import Signature
from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.types import ValueType

__all__ = ["lower_agent"]

_OBJECT = ValueType.opaque()


class _AgentSourceInfo:
    """Source positions of an agent file: ``at`` is a dotted key (``"llm"``, ``"tools.0"``)."""

    def __init__(self, source: AgentSource) -> None:
        self.source = source

    def span(self, at: Any) -> str:
        line, col = self.source.line_of(str(at))
        return f"{self.source.path or '<agent>'}:{line}:{col}"

    def fail(self, at: Any, message: str) -> NoReturn:
        line, col = self.source.line_of(str(at))
        raise AgentSpecError(f"{self.span(at)}: {message}", path=self.source.path, line=line, col=col)


def lower_agent(source: AgentSource, ctx: CompileContext) -> tuple[ir.Graph, Signature]:
    """Lower ``source`` into a graph of ``ctx`` (a model's main graph, or a function a
    workflow calls), adding its default slot bindings to ``ctx.slots``.

    Returns:
        The graph (inputs: ``input`` and the template variables; output: the run's
        ``AgentResult``) and its signature.
    """
    from namu.runtime.llm.tasks import (
        call_tool,
        complete,
        complete_fallback,
        list_tools,
    )

    spec = source.spec
    b = IRBuilder(ctx, _AgentSourceInfo(source))
    b.nesting_advice = "an agent's graph never nests this deep"
    scope = Scope({})
    prefix = slot_prefix(spec.name)
    inputs = [b.graph_input(scope, "input", ValueType.str())]
    inputs += [b.graph_input(scope, name, ValueType.str()) for name, _ in source.variables]

    entries = tools_json(source)
    tools = b.constant(scope, json.dumps([json.loads(e) for e in entries]), "tools", "tools")
    catalog = b.call_task(scope, list_tools, [tools], "tools")
    state = b.emit1(scope, "AgentStart", [catalog, *inputs], _OBJECT, "name", domain=NAMU_DOMAIN,
                    attrs=[ir.AttrString("agent", agent_json(source))], names=["state"])
    llm = b.constant(scope, llm_json(source), "llm", "llm")
    entry_values = [b.constant(scope, entry, f"tools.{i}", f"tool{i}") for i, entry in enumerate(entries)]
    trip_count = b.constant(scope, spec.limits.max_iterations, "limits.max_iterations", "max_iterations")
    going0 = b.constant(scope, True, "limits", "going")

    body = scope.child()
    iter_num = b.graph_input(body, "iter_num", ValueType.int())
    cond_in = b.graph_input(body, "cond_in", ValueType.bool())
    state_in = b.graph_input(body, "state_in", _OBJECT)
    reply = b.call_slot(body, Slot(f"{prefix}.llm"), [llm, state_in], "llm")
    _set_llm_policy(reply.producer(), source, ctx, complete_fallback)  # type: ignore[arg-type]
    ctx.slots.setdefault(f"{prefix}.llm", complete)
    observed = b.emit1(body, "AgentObserve", [state_in, reply], _OBJECT, "llm", domain=NAMU_DOMAIN, names=["observed"])
    calls = b.emit1(body, "AgentPending", [observed], ValueType.opaque("list"), "tools", domain=NAMU_DOMAIN, names=["calls"])

    dispatch = body.child()
    call = b.graph_input(dispatch, "call", _OBJECT)
    entry = b.emit1(dispatch, "AgentRoute", [catalog, call], ValueType.int(), "tools", domain=NAMU_DOMAIN, names=["entry"])
    result = _ladder(b, dispatch, source, entry, call, catalog, entry_values, 0)
    for e in source.tools:
        ctx.slots.setdefault(f"{prefix}.{e.slot}", call_tool)
    dispatch_graph = b.subgraph(dispatch, [call], [b.ensure_local(dispatch, result, "tools")], "tool_calls")
    results = b.emit1(body, "Map", [calls], ValueType.opaque("list"), "tools", domain=NAMU_DOMAIN,
                      attrs=[ir.AttrGraph("body", dispatch_graph), ir.AttrInt64("flatten", 0)], names=["results"])
    state_out = b.emit1(body, "AgentRecord", [observed, results], _OBJECT, "tools", domain=NAMU_DOMAIN, names=["state_out"])
    going = b.emit1(body, "AgentGoing", [state_out], ValueType.bool(), "limits", domain=NAMU_DOMAIN, names=["going"])
    body_graph = b.subgraph(body, [iter_num, cond_in, state_in], [going, state_out], "react_loop")
    final = b.emit1(scope, "Loop", [trip_count, going0, state], _OBJECT, "limits", domain=NAMU_DOMAIN,
                    attrs=[ir.AttrGraph("body", body_graph)], names=["final"])
    out = b.emit1(scope, "AgentFinish", [final], _OBJECT, "name", domain=NAMU_DOMAIN, names=["result"])
    return b.main_graph(scope, inputs, [out], spec.name), signature_of(source)


def _ladder(b: IRBuilder, scope: Scope, source: AgentSource, entry: ir.Value, call: ir.Value, catalog: ir.Value,
            entry_values: list[ir.Value], index: int) -> ir.Value:
    """``If entry == index: tool slot index(call) else: <the rest>``; past the last
    entry, the error result of an unknown tool."""
    if index == len(source.tools):
        return b.emit1(scope, "AgentUnknownTool", [catalog, call], _OBJECT, "tools", domain=NAMU_DOMAIN, names=["unknown"])
    tool = source.tools[index]
    at = f"tools.{index}"
    here = b.constant(scope, index, at, "index")
    matches = b.emit1(scope, "Equal", [entry, here], ValueType.bool(), at, names=["is_entry"])
    then_scope, else_scope = scope.child(), scope.child()
    slot = Slot(f"{slot_prefix(source.spec.name)}.{tool.slot}")
    then_value = b.ensure_local(then_scope, b.call_slot(then_scope, slot, [entry_values[index], call], at), at)
    else_value = b.ensure_local(else_scope, _ladder(b, else_scope, source, entry, call, catalog, entry_values, index + 1), at)
    branches = [
        ir.AttrGraph("then_branch", b.subgraph(then_scope, [], [then_value], "then_branch")),
        ir.AttrGraph("else_branch", b.subgraph(else_scope, [], [else_value], "else_branch")),
    ]
    return b.emit1(scope, "If", [matches], _OBJECT, at, domain=NAMU_DOMAIN, attrs=branches, names=["result"])


def _set_llm_policy(node: ir.Node, source: AgentSource, ctx: CompileContext, fallback_task: Any) -> None:
    """The LLM call's resilience policy, as call-site attributes ``insert-resilience-gates``
    puts on its gate: retries and backoff, the per-attempt timeout, the circuit breaker
    of ``provider/model``, and the fallback task when there are fallback models."""
    llm = source.spec.llm
    attrs: list[ir.Attr] = [
        ir.AttrInt64("retries", llm.retry.max_retries),
        ir.AttrFloat32("timeout_s", llm.timeout_s),
        ir.AttrFloat32("backoff_base_s", llm.retry.backoff_base_s),
        ir.AttrFloat32("backoff_max_s", llm.retry.backoff_max_s),
    ]
    if llm.circuit_breaker.enabled:
        attrs += [
            ir.AttrString("breaker", f"{llm.provider}/{llm.model}"),
            ir.AttrInt64("breaker_threshold", llm.circuit_breaker.failure_threshold),
            ir.AttrFloat32("breaker_cooldown_s", llm.circuit_breaker.cooldown_s),
        ]
    if llm.fallback:
        attrs.append(ir.AttrString("fallback", ctx.task_key(fallback_task)))
    for attr in attrs:
        node.attributes[attr.name] = attr
