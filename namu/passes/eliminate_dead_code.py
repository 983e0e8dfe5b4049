"""``eliminate-dead-code``: remove ops whose results are unused and that have no effects."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import onnx_ir as ir

from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.scopes import node_captures, subgraphs, walk
from namu.passes.base import Example, NamuPass
from namu.passes.effects import CANNOT_RAISE, CONTROL_FLOW, pure_tasks
from namu.passes.registry import register
from namu.passes.rewire import detach

__all__ = ["EliminateDeadCodePass", "remove_dead"]

logger = logging.getLogger(__name__)


@register(
    "eliminate-dead-code",
    "every remaining op is used or has an effect (impure task calls are effects and stay)",
    order=80,
    level=1,
)
class EliminateDeadCodePass(NamuPass):
    """Delete the nodes none of whose outputs is used, unless they have an effect.

    A node is kept when it is a ``namu.Task`` whose task is not ``pure``, a control-flow
    op (``If``, ``Loop``, ``namu.Map``) whose bodies keep an op with an effect, or any
    other op that could raise (division, subscripts, unpacking, sub-workflow calls,
    wire ops, ...): a workflow must fail where the plain Python function fails. Bodies
    are cleaned before their op is judged, and a removed op lets go of every value it
    read, its bodies' reads of enclosing scopes included, so whole dead regions -- an
    unused ``If`` and the values only its branches read -- go in one run: one sweep
    over the model, readers before producers (``remove_dead``, which
    ``simplify-control-flow`` also uses to sweep what its rewrites leave unread).

    Guarantees:
        Every remaining node has an output that is read (by a node or as a graph
            output) or has an effect, in every graph, body and function.
        Values, effects and errors are those of the input.
    """

    EXAMPLE = Example(
        before="""
        g (bool c, int64 x) => (int64 y) {
          unused = namu.Task <task = "square"> (x)
          logged = namu.Task <task = "log"> (x)
          dead = Add(x, x)
          twice = Mul(x, x)
          branch = If (c) <
            then_branch = t () => (int64 a) { a = Neg(twice) },
            else_branch = e () => (int64 b) { b = Identity(x) }
          >
          y = Neg(x)
        }""",
        after="""
        g (bool c, int64 x) => (int64 y) {
          logged = namu.Task <task = "log"> (x)
          y = Neg(x)
        }""",
        pure_tasks=("square",),
        impure_tasks=("log",),
        note="`square` is pure and unused, so its call goes; `log` is an effect and stays. The unused "
        "`If` goes, and with it `twice`, which only its branch read.",
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        removed = remove_dead(reversed(walk(model)), pure_tasks(model))
        logger.debug("removed %d dead nodes", removed)
        self.changed(removed)
        return self.result(model)


def remove_dead(nodes: Iterable[ir.Node], pure_tasks: frozenset[str]) -> int:
    """Remove each of ``nodes`` that is dead, then whatever that makes dead, transitively.

    A node is dead when none of its outputs is read (by a node, or as a graph output)
    and removing it is unobservable: it has no effect and cannot raise (see
    :class:`EliminateDeadCodePass`). A removed node lets go of the values it reads --
    its bodies' reads of enclosing scopes included -- and the producers of those values
    are judged next, so a dead chain goes in one call. Passes that drop a node call this
    with the producers of the values the node read, to sweep what they made dead.

    Args:
        nodes: the candidates, readers before producers (e.g. a graph's nodes reversed,
            or ``reversed(walk(model))``: bodies then come before their op); nodes no
            longer in a graph are skipped.
        pure_tasks: keys of the tasks declared ``pure=True`` (their calls have no effect).

    Returns:
        How many nodes were removed.
    """
    removed = 0
    for candidate in nodes:
        stack = [candidate]
        while stack:
            node = stack.pop()
            graph = node.graph
            if graph is None or not _dead(node, pure_tasks):
                continue
            read = [*node.inputs, *node_captures(node)]
            detach(node)
            graph.remove(node, safe=True)
            removed += 1
            stack.extend(p for v in read if v is not None and (p := v.producer()) is not None)
    return removed


def _dead(node: ir.Node, pure_tasks: frozenset[str]) -> bool:
    for out in node.outputs:
        if out.is_graph_output() or out.uses():
            return False
    return not _has_effect(node, pure_tasks)


def _has_effect(node: ir.Node, pure_tasks: frozenset[str]) -> bool:
    """True unless removing ``node`` is unobservable: it neither has a side effect nor
    can raise (Python would raise even if the result is unused)."""
    if node.domain == NAMU_DOMAIN and node.op_type == "Task":
        return node.attributes["task"].as_string() not in pure_tasks
    if (node.domain, node.op_type) in CONTROL_FLOW:
        return any(_has_effect(inner, pure_tasks) for body in subgraphs(node) for inner in body)
    return (node.domain, node.op_type) not in CANNOT_RAISE
