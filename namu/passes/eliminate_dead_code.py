"""``eliminate-dead-code``: remove ops whose results are unused and that have no effects."""

from __future__ import annotations

import logging

import onnx_ir as ir

from namu.ir.scopes import walk
from namu.passes.base import Example, NamuPass
from namu.passes.effects import pure_tasks
from namu.passes.registry import register
from namu.passes.rewire import is_dead, remove_dead

__all__ = ["EliminateDeadCodePass"]

logger = logging.getLogger(__name__)


@register(
    "eliminate-dead-code",
    "every remaining op is used or has an effect (impure task calls are effects and stay)",
    after=("fold-constants", "eliminate-common-subexpressions"),
    group="cleanup",
    level=1,
    only_removes_unread=True,
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
    over the model, readers before producers (``namu.passes.rewire.remove_dead``). In
    the ``cleanup`` group it also sweeps what the other passes' rewrites leave unread.

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

    def ensures(self, model: ir.Model) -> None:
        pure = pure_tasks(model)
        for node in walk(model):
            if is_dead(node, pure):
                self.broken(f"{node.op_type} is unused and has no effect, but remains", node)
