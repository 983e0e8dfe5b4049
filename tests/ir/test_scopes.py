"""namu.ir.scopes: subgraphs, the fast walk over a model's nodes and graphs, captures."""

from __future__ import annotations

import onnx_ir as ir
import pytest

import namu
from namu.ir.scopes import captures, graphs, node_captures, subgraphs, top_graphs, walk
from tests.ir.test_invariants import WORKFLOWS
from tests.passes.conftest import parse

NESTED = """
g (bool c, int64 x, seq(int64) xs) => (int64 y, seq(int64) ys) {
  a = Neg(x)
  y = If (c) <
    then_branch = t () => (int64 p) { p = Add(a, x) },
    else_branch = e () => (int64 q) {
      q = If (c) < then_branch = t2 () => (int64 r) { r = Neg(a) }, else_branch = e2 () => (int64 s) { s = Identity(x) } >
    }
  >
  ys = namu.Map (xs) < flatten = 0, body = m (int64 v) => (int64 w) { w = Add(v, y) } >
}
<domain: "namu.workflow", opset_import: ["" : 21, "namu" : 1]>
sub (u) => (o) { o = Neg(u) }
"""


def _reference_walk(model: ir.Model) -> list[ir.Node]:
    return [node for graph in top_graphs(model) for node in ir.traversal.RecursiveGraphIterator(graph)]


def test_walk_visits_what_onnx_irs_iterator_visits_in_its_order() -> None:
    model = parse(NESTED)
    assert walk(model) == _reference_walk(model)
    assert [n.outputs[0].name for n in walk(model)] == ["a", "y", "p", "q", "r", "s", "ys", "w", "o"]
    assert walk(model.graph) == list(ir.traversal.RecursiveGraphIterator(model.graph))


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_walk_agrees_on_every_compiled_sample(workflow: namu.Workflow) -> None:
    model = namu.compile(workflow).model  # gates, fused bodies, partitions, kept functions
    assert walk(model) == _reference_walk(model)


def test_graphs_lists_every_graph_once_before_its_subgraphs() -> None:
    model = parse(NESTED)
    found = graphs(model)
    (sub,) = model.functions.values()
    assert found[1] is sub.graph
    assert [g.name for g in found[:1] + found[2:]] == ["g", "t", "e", "m", "t2", "e2"]
    position = {id(g): i for i, g in enumerate(found)}
    for node in walk(model):
        for inner in subgraphs(node):
            assert position[id(inner)] > position[id(node.graph)]
    assert graphs(model.graph) == [g for g in found if g is not sub.graph]


def test_subgraphs_reads_graph_and_graphs_attributes_and_skips_task_calls() -> None:
    body = ir.Graph([], [], nodes=[], name="b")
    other = ir.Graph([], [], nodes=[], name="o")
    node = ir.Node("custom", "Op", [], attributes=[ir.AttrGraph("g", body), ir.AttrGraphs("gs", [other, body])])
    assert subgraphs(node) == [body, other, body]
    assert subgraphs(ir.Node("", "Neg", [])) == []
    task = ir.Node("namu", "Task", [], attributes=[ir.AttrString("task", "t"), ir.AttrGraph("g", body)])
    assert subgraphs(task) == []  # a task call never holds a graph: its attributes are not read


def test_captures_are_the_outer_values_read_at_any_depth() -> None:
    model = parse(NESTED)
    x, a = model.graph.inputs[1], model.graph.node(0).outputs[0]
    branch = model.graph.node(1)
    assert [v.name for v in node_captures(branch)] == ["a", "x", "c"]
    else_branch = branch.attributes["else_branch"].as_graph()
    assert captures(else_branch) == [model.graph.inputs[0], a, x]
    assert node_captures(model.graph.node(0)) == []
