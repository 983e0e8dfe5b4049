"""``plan-lifetimes``: stamp on each node the values whose last use it is."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii

import onnx_ir as ir

from namu.ir.lifetimes import freed_names, last_uses_of
from namu.ir.metadata import FREE_KEY
from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.scopes import subgraphs, top_graphs
from namu.passes.base import Example, NamuPass
from namu.passes.registry import register

__all__ = ["PlanLifetimesPass"]

logger = logging.getLogger(__name__)


@register(
    "plan-lifetimes",
    "every node lists in `namu.free` the values whose last use it is; graph outputs are never freed",
    after=("insert-resilience-gates",),
    level=0,
)
class PlanLifetimesPass(NamuPass):
    """Compute each value's last use, per graph, and stamp it on that node.

    In each graph (the main graph, every subgraph, every function) a value's last use is
    the last node, in the graph's order, that reads it: as an input, or through a
    subgraph of a control-flow node that captures it (in the enclosing graph the
    capturing node is the reader; inside the subgraph, its own readers count). A value
    nobody reads is freed by the node that makes it. Values of enclosing scopes are
    freed in a subgraph's frame after their last use there, never in the enclosing one
    before the capturing node. The kernel computes the same use counts itself when it
    builds a plan (``kernel/src/scheduler/graph.rs``); the reference executor drops
    values from its environment by these lists.

    Guarantees:
        every node that is the last use of some value carries ``namu.free``: a JSON list of their names, in first-use order
        a graph's outputs (and values it only passes to its outputs) are never listed in that graph
        a value is listed at most once per graph, at its last reader
        gate bodies are not planned: the runtime runs a gate's op as one call
    """

    EXAMPLE = Example(
        before="""
        g (int64 x) => (int64 y) {
          a = namu.Task <task = "load"> (x)
          b = namu.Task <task = "parse"> (a)
          unused = namu.Task <task = "log"> (b)
          y = namu.Task <task = "score"> (b, x)
        }""",
        metadata={"b": {FREE_KEY: '["a"]'}, "unused": {FREE_KEY: '["unused"]'}, "y": {FREE_KEY: '["x", "b"]'}},
        impure_tasks=("load", "parse", "log", "score"),
        note="`unused` is freed as it is made; `y` is an output and is never freed.",
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        stamped = 0
        for graph in top_graphs(model):
            stamped += _stamp(graph)
        logger.debug("stamped the lifetimes of %d nodes", stamped)
        self.changed(stamped)
        return self.result(model)

    def ensures(self, model: ir.Model) -> None:
        pending = top_graphs(model)
        while pending:
            graph = pending.pop()
            outputs = {value.name for value in graph.outputs}
            freed: set[str] = set()
            for node in graph:
                for name in freed_names(node):
                    if name in freed or name in outputs:
                        what = "a graph output" if name in outputs else "freed twice"
                        self.broken(f"{name!r} is {what} in graph {graph.name!r}", node)
                    freed.add(name)
                if not (node.op_type == "Gate" and node.domain == NAMU_DOMAIN):
                    pending += subgraphs(node)


def _stamp(graph: ir.Graph) -> int:
    """Stamp ``graph`` and its subgraphs (not gate bodies: the runtime runs a gate's op as
    one call, never its body as a graph); return how many stamps changed."""
    changed = 0
    nodes = list(graph)
    bodies = [subgraphs(node) for node in nodes]
    for node, free, inner in zip(nodes, last_uses_of(nodes, bodies, graph.outputs), bodies):
        if inner and not (node.op_type == "Gate" and node.domain == NAMU_DOMAIN):
            for g in inner:
                changed += _stamp(g)
        metadata = node.metadata_props
        if free:
            text = _json_names(free)
            changed += metadata.get(FREE_KEY) != text
            metadata[FREE_KEY] = text
        elif metadata.pop(FREE_KEY, None) is not None:
            changed += 1
    return changed


def _json_names(values: Sequence[ir.Value]) -> str:
    """``json.dumps([v.name for v in values])`` for named values: the same text, at a
    fifth of the cost (a graph has as many lists as values)."""
    return "[" + ", ".join([encode_basestring_ascii(v.name or "") for v in values]) + "]"
