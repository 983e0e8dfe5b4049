"""Call ops: ``namu.Task`` (a task call), ``namu.Gate`` (an op under a resilience policy)
and ``namu.Slot`` (a role slot, bound to a task at compile time by ``resolve-slots``).

A task call has an effect unless its task is ``pure`` (``namu.passes.effects.pure_tasks``
asks the task table); the registry records the op itself as effectful.
"""

from __future__ import annotations

import onnx_ir as ir

from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.types import ValueType
from namu.ops.control import sweep_bodies
from namu.ops.registry import Built, OpEnv, Typer, op, unsupported
from namu.ops.spans import span_note

__all__ = ["unknown_types"]


def unknown_types(_typer: Typer, _node: ir.Node, _args: list[ValueType]) -> None:
    """A type rule: the op's outputs stay as the IR has them (``object`` if untyped)."""
    return None


def _task_type(typer: Typer, node: ir.Node, args: list[ValueType]) -> list[ValueType]:
    return typer.call_task(node, args)


@op(NAMU_DOMAIN, "Task", "call the task named by attribute `task` with the inputs (positional, then `kwnames`)",
    types=_task_type, kernel="task")
def _task(node: ir.Node, env: OpEnv) -> Built:
    """The call under the policy of the call site; its errors become ``TaskError``."""
    from namu.runtime.ops import task_call_site
    from namu.runtime.tasks import task_node

    binding, kwnames, span = task_call_site(node, env)
    return task_node(binding, kwnames, span, events=env.events)


@op(NAMU_DOMAIN, "Gate", "run the single op of graph `body` under a resilience policy (retries, timeout_s, fallback)",
    types=sweep_bodies, kernel="gate")
def _gate(node: ir.Node, env: OpEnv) -> Built:
    """The task a gate guards is called with the gate's policy; any other op (a
    ``namu.Recv``) runs as it would, retried and timed as the gate says."""
    from namu.ops.registry import definition
    from namu.runtime.ops import GatePolicy, gate_body

    inner = gate_body(node)
    if inner.domain == NAMU_DOMAIN and inner.op_type == "Task":
        return _task(node, env)
    fn, handler = definition(inner).build(inner, env)
    return GatePolicy(node).guard(fn), handler or span_note(inner)


op(NAMU_DOMAIN, "Slot", "call the role slot named by attribute `slot` (bound to a task by resolve-slots)",
   types=unknown_types, lowered_by="resolve-slots")(unsupported)
