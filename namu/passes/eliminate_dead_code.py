"""``eliminate-dead-code``: remove ops whose results are unused and that have no effects."""

from __future__ import annotations

import logging

import onnx_ir as ir

from namu.ir.metadata import TASKS_KEY, TaskTable
from namu.ir.opsets import NAMU_DOMAIN
from namu.passes.base import Example, NamuPass
from namu.passes.effects import CANNOT_RAISE as _CANNOT_RAISE
from namu.passes.effects import CONTROL_FLOW as _CONTROL_FLOW
from namu.passes.registry import register

__all__ = ["EliminateDeadCodePass"]

logger = logging.getLogger(__name__)


@register(
    "eliminate-dead-code",
    "every remaining op is used or has an effect (impure task calls are effects and stay)",
    order=80,
    level=1,
)
class EliminateDeadCodePass(NamuPass):
    """Delete nodes none of whose outputs is used, unless they have a side effect.

    A node is kept when it is a ``namu.Task`` whose task is not ``pure``, a control-flow
    op whose subgraphs keep something, or any other op that could raise (division,
    subscripts, unpacking, sub-workflow calls, ...): a workflow must fail where the
    plain Python function fails. Subgraphs are cleaned too. One backward sweep per
    graph removes whole dead chains.
    """

    EXAMPLE = Example(
        before="""
        g (int64 x) => (int64 y) {
          unused = namu.Task <task = "square"> (x)
          logged = namu.Task <task = "log"> (x)
          dead = Add(x, x)
          y = Neg(x)
        }""",
        after="""
        g (int64 x) => (int64 y) {
          logged = namu.Task <task = "log"> (x)
          y = Neg(x)
        }""",
        pure_tasks=("square",),
        impure_tasks=("log",),
        note="`square` is pure and unused, so its call goes; `log` is an effect and stays.",
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        pure: set[str] = set()
        if TASKS_KEY in model.metadata_props:
            table = TaskTable.model_validate_json(model.metadata_props[TASKS_KEY])
            pure = {t.key for t in table.tasks if t.options.pure}
        sweeper = _Sweeper(pure)
        sweeper.graph(model.graph)
        for function in model.functions.values():
            sweeper.graph(function.graph)
        logger.debug("removed %d dead nodes", sweeper.removed)
        self.changed(sweeper.removed)
        return self.result(model)


class _Sweeper:
    def __init__(self, pure_tasks: set[str]) -> None:
        self.pure_tasks = pure_tasks
        self.removed = 0

    def graph(self, graph: ir.Graph) -> None:
        outputs = {id(v) for v in graph.outputs}
        for node in reversed(list(graph)):
            for attr in node.attributes.values():
                if attr.type == ir.AttributeType.GRAPH:
                    self.graph(attr.as_graph())
            used = any(id(out) in outputs or out.uses() for out in node.outputs)
            if used or self.has_effect(node):
                continue
            graph.remove(node, safe=True)
            self.removed += 1

    def has_effect(self, node: ir.Node) -> bool:
        """True unless removing ``node`` is unobservable: it neither has a side effect
        nor can raise (Python would raise even if the result is unused)."""
        if node.domain == NAMU_DOMAIN and node.op_type == "Task":
            return node.attributes["task"].as_string() not in self.pure_tasks
        if (node.domain, node.op_type) in _CONTROL_FLOW:
            return any(
                self.has_effect(inner)
                for attr in node.attributes.values()
                if attr.type == ir.AttributeType.GRAPH
                for inner in attr.as_graph()
            )
        return (node.domain, node.op_type) not in _CANNOT_RAISE
