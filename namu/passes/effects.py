"""What each op may do besides computing its outputs: effects, errors, fresh mutable values.

Each set below is read from the op registry (:mod:`namu.ops`: every op's ``pure``,
``raises``, ``fresh`` and ``control``), so a new op is classified where it is defined.

The passes that delete ops (``eliminate-dead-code``), evaluate them at compile time
(``fold-constants``), merge them (``eliminate-common-subexpressions``) or move them
(``simplify-control-flow``) must agree on which ops are safe to touch; they ask here.

* A ``namu.Task`` call has an effect unless its task is ``pure`` (:func:`pure_tasks`).
* :data:`PURE_BUILTINS`: builtin ops whose result depends only on their inputs and
  attributes and that have no side effect (they may still raise; not ``namu.ToList``:
  ``list()`` of an iterator consumes it).
* :data:`CANNOT_RAISE`: builtin ops that cannot fail on the values namu's lowering gives
  them (scalars of matching types): dropping, moving or repeating them is unobservable.
* :data:`FRESH_MUTABLE`: builtin ops returning a new mutable object (a list, a dict) on
  every run. Two such values are two objects in Python, so a task that mutates one must
  not see the change in the other: these ops are never merged or hoisted out of a loop.
* :data:`CONTROL_FLOW`: ops running subgraphs (``namu.ir.scopes.subgraphs``); what they
  do is what their bodies do.
* Everything else (``Slot``, ``Send``, ``Recv``, ``Gate``, ``Fused``, sub-workflow calls,
  ops namu's runtime does not know) counts as an effect.
"""

from __future__ import annotations

import onnx_ir as ir

from namu.ir.metadata import TaskTable
from namu.ir.opsets import NAMU_DOMAIN
from namu.ops.registry import OpClass

__all__ = [
    "CANNOT_RAISE",
    "CONTROL_FLOW",
    "FRESH_MUTABLE",
    "PURE_BUILTINS",
    "OpKey",
    "op_key",
    "pure_tasks",
    "task_of",
]

#: (domain, op_type) of an op.
OpKey = tuple[str, str]


CONTROL_FLOW = OpClass(lambda d: d.control)
CANNOT_RAISE = OpClass(lambda d: d.pure and not d.raises)
PURE_BUILTINS = OpClass(lambda d: d.pure)
FRESH_MUTABLE = OpClass(lambda d: d.fresh)


def op_key(node: ir.Node) -> OpKey:
    """``(domain, op_type)`` of ``node``."""
    return node.domain, node.op_type


def task_of(node: ir.Node) -> str | None:
    """The task key a ``namu.Task`` node calls, or None for any other node."""
    if node.domain == NAMU_DOMAIN and node.op_type == "Task":
        attr = node.attributes.get("task")
        return attr.as_string() if attr is not None else None
    return None


def pure_tasks(model: ir.Model) -> frozenset[str]:
    """Keys of the model's tasks declared ``pure=True`` (none without a task table)."""
    return frozenset(t.key for t in TaskTable.of(model).tasks if t.options.pure)
