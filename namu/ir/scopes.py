"""Nested scopes: which outer values a subgraph reads (its captures)."""

from __future__ import annotations

import onnx_ir as ir

__all__ = ["captures", "node_captures"]


def captures(graph: ir.Graph) -> list[ir.Value]:
    """Values ``graph`` (or any graph nested in it) reads from enclosing scopes, in first-use order."""
    defined: set[int] = {id(v) for v in graph.inputs}
    defined.update(id(v) for v in graph.initializers.values())
    seen: set[int] = set()
    out: list[ir.Value] = []

    def read(value: ir.Value | None) -> None:
        if value is not None and id(value) not in defined and id(value) not in seen:
            seen.add(id(value))
            out.append(value)

    for node in graph:
        for value in node.inputs:
            read(value)
        for value in node_captures(node):
            read(value)
        defined.update(id(v) for v in node.outputs)
    for value in graph.outputs:
        read(value)
    return out


def node_captures(node: ir.Node) -> list[ir.Value]:
    """The union of the captures of a node's graph attributes, in first-use order."""
    out: list[ir.Value] = []
    seen: set[int] = set()
    for attr in node.attributes.values():
        graphs: list[ir.Graph] = []
        if attr.type == ir.AttributeType.GRAPH:
            graphs = [attr.as_graph()]
        elif attr.type == ir.AttributeType.GRAPHS:
            graphs = list(attr.as_graphs())
        for g in graphs:
            for value in captures(g):
                if id(value) not in seen:
                    seen.add(id(value))
                    out.append(value)
    return out
