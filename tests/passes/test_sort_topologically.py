"""sort-topologically: definitions before uses, source order kept for independent ops."""

from __future__ import annotations

import onnx_ir as ir

from namu.passes.sort_topologically import SortTopologicallyPass
from tests.passes.conftest import listing, parse


def test_sorts_out_of_order_nodes_stably() -> None:
    model = parse(
        """
        g (int64 x) => (int64 y) {
          first = Neg(x)
          second = Abs(x)
          y = Add(first, second)
        }
        """
    )
    nodes = list(model.graph)
    # Put the consumer first: a use before its definitions.
    model.graph.remove(nodes[2])
    model.graph.insert_before(nodes[0], nodes[2])
    assert listing(model.graph)[0] == "y = Add(first,second)"
    assert SortTopologicallyPass()(model).modified
    assert listing(model.graph) == ["first = Neg(x)", "second = Abs(x)", "y = Add(first,second)"]


def test_sorted_graph_is_unchanged() -> None:
    model = parse("g (int64 x) => (int64 y) { a = Neg(x)  b = Abs(x)  y = Add(a, b) }")
    assert not SortTopologicallyPass()(model).modified
    assert isinstance(model, ir.Model)
