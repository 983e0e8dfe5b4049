"""``sort-topologically``: order nodes so every value is defined before it is used."""

from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes.common import TopologicalSortPass

from namu.ir.scopes import graphs
from namu.passes.base import NamuPass
from namu.passes.registry import register

__all__ = ["SortTopologicallyPass"]


@register(
    "sort-topologically",
    "nodes of every graph and function are in a stable topological order (source order kept)",
)
class SortTopologicallyPass(NamuPass):
    """Stable topological sort (onnx_ir's): independent nodes keep their source order,
    which the kernel's ready queue uses to run side effects in program order."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        result = TopologicalSortPass()(model)
        return ir.passes.PassResult(result.model, modified=result.modified)

    def ensures(self, model: ir.Model) -> None:
        for graph in graphs(model):
            seen: set[int] = set()
            for node in graph:
                for value in node.inputs:
                    producer = value.producer() if value is not None else None
                    if producer is not None and producer.graph is graph and id(producer) not in seen:
                        self.broken(f"{node.op_type} reads {value.name!r} before the node that makes it", node)
                seen.add(id(node))
