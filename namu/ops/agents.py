"""Agent ops: the steps of the ReAct loop between an agent's LLM and tool calls.

The agent frontend (``namu.frontend.agents.lower``) lowers an agent into a ``Loop``
whose body calls the LLM slot, then ``namu.AgentObserve``, a ``namu.Map`` over
``namu.AgentPending``'s tool calls (each routed by ``namu.AgentRoute`` through an ``If``
ladder to its tool slot), ``namu.AgentRecord`` and ``namu.AgentGoing`` (the loop's
condition). Their meanings are in :mod:`namu.runtime.llm.react`. They update the run's
state in place (a loop-carried value that one step holds at a time), so none is pure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import onnx_ir as ir

from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.types import ValueType
from namu.ops.registry import Built, OpEnv, op
from namu.ops.values import returns

_OBJECT = ValueType.opaque()


def _react(name: str) -> Callable[..., Any]:
    from namu.runtime.llm import react

    return getattr(react, name)


@op(NAMU_DOMAIN, "AgentStart", "a new agent run's state: the prompts of attribute `agent` (JSON) rendered over "
    "input 1 (the user's input) and the template variables after it; input 0 is the tool catalog",
    types=returns(_OBJECT))
def _start(node: ir.Node, _env: OpEnv) -> Built:
    start = _react("start")
    config = node.attributes["agent"].as_string()
    return (lambda catalog, *inputs: start(config, catalog, *inputs)), None


@op(NAMU_DOMAIN, "AgentObserve", "add the LLM's answer (input 1) to the run (input 0): usage, cost, limits, "
    "the tool calls to make", types=returns(_OBJECT))
def _observe(_node: ir.Node, _env: OpEnv) -> Built:
    return _react("observe"), None


@op(NAMU_DOMAIN, "AgentPending", "the tool calls the run (input 0) makes now, as a list", types=returns(ValueType.opaque("list")),
    raises=False, fresh=True)
def _pending(_node: ir.Node, _env: OpEnv) -> Built:
    return _react("pending"), None


@op(NAMU_DOMAIN, "AgentRoute", "the index of the tools entry providing the tool of call input 1 in catalog input 0 "
    "(-1: none)", types=returns(ValueType.int()), raises=False)
def _route(_node: ir.Node, _env: OpEnv) -> Built:
    return (lambda catalog, call: catalog.route(call)), None


@op(NAMU_DOMAIN, "AgentUnknownTool", "the error result of tool call input 1, naming the tools of catalog input 0",
    types=returns(_OBJECT), raises=False)
def _unknown(_node: ir.Node, _env: OpEnv) -> Built:
    return (lambda catalog, call: catalog.unknown(call)), None


@op(NAMU_DOMAIN, "AgentRecord", "add the tool results (input 1) to the run (input 0); count tool errors",
    types=returns(_OBJECT))
def _record(_node: ir.Node, _env: OpEnv) -> Built:
    return _react("record"), None


@op(NAMU_DOMAIN, "AgentGoing", "whether the run (input 0) makes another LLM call", types=returns(ValueType.bool()),
    raises=False)
def _going(_node: ir.Node, _env: OpEnv) -> Built:
    return _react("going"), None


@op(NAMU_DOMAIN, "AgentFinish", "the run's AgentResult (input 0), or AgentLimitError when a limit ended it",
    types=returns(_OBJECT))
def _finish(_node: ir.Node, _env: OpEnv) -> Built:
    return _react("finish"), None
