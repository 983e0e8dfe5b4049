"""plan-lifetimes: each node lists the values whose last use it is, and both executors
drop values exactly there (checked with weak references)."""

from __future__ import annotations

import gc
import json
import weakref

import onnx_ir as ir
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import namu
from namu.ir.lifetimes import last_uses
from namu.ir.metadata import FREE_KEY
from namu.ir.constants import constant_of
from tests.passes.conftest import parse, run_pass


def _stamps(graph: ir.Graph) -> dict[str, list[str]]:
    """``{first output name or op type: freed names}`` for the nodes with a stamp."""
    out = {}
    for node in graph:
        if FREE_KEY in node.metadata_props:
            key = node.outputs[0].name if node.outputs else node.op_type
            out[key] = json.loads(node.metadata_props[FREE_KEY])
    return out


def test_each_value_is_freed_at_its_last_reader_and_outputs_never() -> None:
    model = parse(
        """
        g (int64 x) => (int64 y, int64 b) {
          a = namu.Task <task = "load"> (x)
          b = namu.Task <task = "parse"> (a)
          unused = namu.Task <task = "log"> (b)
          y = namu.Task <task = "score"> (b, x)
        }
        """,
        impure_tasks=("load", "parse", "log", "score"),
    )
    assert run_pass("plan-lifetimes", model).modified
    assert _stamps(model.graph) == {"b": ["a"], "unused": ["unused"], "y": ["x"]}


def test_captured_values_are_last_used_by_the_node_capturing_them() -> None:
    model = parse(
        """
        g (bool c, int64 x) => (int64 z) {
          a = Neg(x)
          y = If (c) <
            then_branch = th () => (int64 r) { t = Add(a, x)  r = Mul(t, a) },
            else_branch = el () => (int64 s) { s = Identity(a) }
          >
          z = Add(y, y)
        }
        """
    )
    run_pass("plan-lifetimes", model)
    assert _stamps(model.graph) == {"y": ["a", "x", "c"], "z": ["y"]}
    if_node = model.graph.node(1)
    then_branch = if_node.attributes["then_branch"].as_graph()
    assert _stamps(then_branch) == {"t": ["x"], "r": ["t", "a"]}  # r is the branch's output
    else_branch = if_node.attributes["else_branch"].as_graph()
    assert _stamps(else_branch) == {"s": ["a"]}


def test_functions_are_planned_and_stale_stamps_are_dropped() -> None:
    model = parse(
        """
        g (int64 x) => (int64 y) { a = Neg(x)  y = Neg(a) }
        <domain: "namu.workflow", opset_import: ["" : 21, "namu" : 1]>
        f (v) => (w) { u = Neg(v)  w = Neg(u) }
        """
    )
    model.graph.node(0).metadata_props[FREE_KEY] = '["stale"]'
    assert run_pass("plan-lifetimes", model).modified
    assert _stamps(model.graph) == {"a": ["x"], "y": ["a"]}
    (function,) = model.functions.values()
    assert _stamps(function.graph) == {"u": ["v"], "w": ["u"]}
    assert not run_pass("plan-lifetimes", model).modified  # idempotent


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_last_uses_on_random_graphs(data: st.DataObject) -> None:
    n_inputs = data.draw(st.integers(1, 3))
    values: list[ir.Value] = [ir.Value(name=f"in{i}") for i in range(n_inputs)]
    readers: dict[int, list[int]] = {id(v): [] for v in values}
    nodes = []
    for index in range(data.draw(st.integers(1, 12))):
        picks = data.draw(st.lists(st.sampled_from(range(len(values))), max_size=3))
        node = ir.Node("", "Op", [values[i] for i in picks], num_outputs=data.draw(st.integers(0, 2)))
        for i in picks:
            readers[id(values[i])].append(index)
        for out_index, out in enumerate(node.outputs):
            out.name = f"n{index}_{out_index}"
            values.append(out)
            readers[id(out)] = []
        nodes.append(node)
    produced = [v for v in values[n_inputs:]]
    outputs = data.draw(st.lists(st.sampled_from(values), max_size=2, unique_by=id)) if values else []
    graph = ir.Graph(values[:n_inputs], outputs, nodes=nodes)
    frees = last_uses(graph)
    where: dict[int, list[int]] = {}
    for index, free in enumerate(frees):
        for value in free:
            where.setdefault(id(value), []).append(index)
    kept = {id(v) for v in outputs}
    for value in values:
        uses = readers[id(value)]
        if id(value) in kept:
            expected = []
        elif uses:
            expected = [max(uses)]
        elif value in produced:
            expected = [next(i for i, n in enumerate(nodes) if value in n.outputs)]
        else:
            expected = []  # an unread graph input: nothing frees it
        assert where.get(id(value), []) == expected, value.name


# ---------------------------------------------------------------------- the executors agree
class Box:
    def __init__(self, tag: str) -> None:
        self.tag = tag


class Tracker:
    """Boxes made by tasks, and which were alive when each call started."""

    def __init__(self) -> None:
        self.alive: dict[str, weakref.ref[Box]] = {}
        self.seen: dict[str, set[str]] = {}

    def snapshot(self, tag: str) -> None:
        self.seen[tag] = {t for t, ref in self.alive.items() if ref() is not None}

    def box(self, tag: str) -> Box:
        box = Box(tag)
        self.alive[tag] = weakref.ref(box)
        return box


def _tasks(tracker: Tracker) -> tuple[namu.Task, namu.Task, namu.Task, namu.Task]:
    @namu.task
    def make(tag: str) -> Box:
        tracker.snapshot(tag)
        return tracker.box(tag)

    @namu.task
    def join1(tag: str, p: Box) -> Box:
        tracker.snapshot(tag)
        return tracker.box(tag)

    @namu.task
    def join2(tag: str, p: Box, q: Box) -> Box:
        tracker.snapshot(tag)
        return tracker.box(tag)

    @namu.task
    def size(p: Box) -> int:
        tracker.snapshot("size")
        return len(p.tag)

    return make, join1, join2, size


def _predicted(graph: ir.Graph) -> dict[str, set[str]]:
    """From the stamps: the boxes alive when each top-level task call starts (a
    control-flow node's outputs hold boxes tagged with the output's name)."""
    tags: dict[str, str] = {}  # value name -> tag of the box it holds
    alive: set[str] = set()
    predicted = {}
    for node in graph:
        tag_source = node.inputs[0].producer() if node.inputs and node.inputs[0] is not None else None
        tag = constant_of(tag_source) if tag_source is not None else None
        if node.op_type in ("Task", "Gate"):
            tag = tag if isinstance(tag, str) else "size"
            predicted[tag] = {tags[name] for name in alive}
            for out in node.outputs:
                tags[out.name] = tag  # type: ignore[index]
                alive.add(out.name)  # type: ignore[arg-type]
        elif node.op_type == "If":
            for out in node.outputs:
                tags[out.name] = out.name  # type: ignore[index]
                alive.add(out.name)  # type: ignore[arg-type]
        alive -= set(json.loads(node.metadata_props.get(FREE_KEY, "[]")))
    return predicted


def _compiled(workflow: namu.Workflow) -> namu.Artifact:
    """Compiled without fuse-tasks, so that every call is a node of the main graph."""
    return namu.compile(workflow, disable=["fuse-tasks"])


def test_both_executors_drop_values_where_the_pass_says(executor: str) -> None:
    tracker = Tracker()
    make, join1, join2, size = _tasks(tracker)

    @namu.workflow
    def wf(x: int) -> int:
        a = make("a")
        b = make("b")
        make("unused")
        c = join1("c", a)
        d = join2("d", a, b)
        e = join1("e", c)
        f = join2("f", d, e)
        return size(f)

    art = _compiled(wf)
    predicted = _predicted(art.model.graph)
    assert predicted["c"] == {"a", "b"}  # "unused" died as it was made
    assert predicted["e"] == {"c", "d"}  # a and b were last read by d
    assert art.run(0, executor=executor).value == 1
    assert tracker.seen == predicted
    if executor == "reference":  # without stamps the reference computes the same lists
        for node in art.model.graph:
            node.metadata_props.pop(FREE_KEY, None)
        tracker.seen.clear()
        namu.Artifact(art.model, art.bindings).run(0, executor=executor)
        assert tracker.seen == predicted
    gc.collect()
    assert all(ref() is None for ref in tracker.alive.values())


@pytest.mark.parametrize("executor", ["kernel", "reference"])
def test_captured_values_die_when_the_node_capturing_them_ends(executor: str) -> None:
    tracker = Tracker()
    make, join1, _, size = _tasks(tracker)

    @namu.workflow
    def wf(x: int) -> int:
        a = make("a")
        b = make("b")
        if x > 0:
            c = join1("c", a)
        else:
            c = join1("c2", b)
        d = join1("d", c)
        return size(d)

    art = _compiled(wf)
    assert art.run(1, executor=executor).value == 1
    predicted = _predicted(art.model.graph)
    assert {tag: tracker.seen[tag] for tag in predicted} == predicted
    assert tracker.seen["c"] == {"a", "b"}  # both captured by the If: held until it ends
    assert tracker.seen["d"] == {"c"}
    assert tracker.seen["size"] == {"d"}
