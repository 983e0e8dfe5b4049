"""Value lifetimes in one graph: the node after which each value is no longer needed.

``plan-lifetimes`` stamps them on the IR (``namu.free``); the reference executor frees
values by them (computing them here when a graph carries no stamps).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import onnx_ir as ir

from namu.ir.metadata import FREE_KEY
from namu.ir.scopes import node_captures, subgraphs

__all__ = ["freed_names", "last_uses", "last_uses_of"]


def freed_names(node: ir.Node) -> list[str]:
    """The names of the values ``node``'s ``namu.free`` stamp says die after it (none
    without a stamp)."""
    return json.loads(node.metadata_props.get(FREE_KEY, "[]"))


def last_uses(graph: ir.Graph) -> list[Sequence[ir.Value]]:
    """Per node of ``graph``, in order, the values whose last use in ``graph`` it is.

    A value's uses are the nodes reading it as an input or capturing it in a subgraph;
    a value nobody reads is last used by the node making it. ``graph``'s outputs are
    never listed. One pass over the nodes (plus the captures of control-flow nodes).

    Args:
        graph: any graph (main graph, subgraph or function body).

    Returns:
        One list per node, each in first-use order.
    """
    nodes = list(graph)
    return last_uses_of(nodes, [subgraphs(node) for node in nodes], graph.outputs)


def last_uses_of(nodes: list[ir.Node], bodies: list[list[ir.Graph]], outputs: Sequence[ir.Value]) -> list[Sequence[ir.Value]]:
    """:func:`last_uses` for a graph already split into its ``nodes``, their
    ``subgraphs`` (``bodies``) and its ``outputs`` (a pass that has them saves a walk)."""
    last: dict[int, int] = {}  # id(value) -> index of its last use (few GC-tracked objects)
    values: dict[int, ir.Value] = {}
    for index, node in enumerate(nodes):
        for value in node.outputs:
            last[id(value)] = index
            values[id(value)] = value
        for value in [*node.inputs, *node_captures(node)] if bodies[index] else node.inputs:
            if value is not None:
                last[id(value)] = index
                values[id(value)] = value
    kept = {id(v) for v in outputs}
    frees: dict[int, list[ir.Value]] = {}
    for key, index in last.items():
        if key not in kept:
            frees.setdefault(index, []).append(values[key])
    return [frees.get(index, ()) for index in range(len(nodes))]
