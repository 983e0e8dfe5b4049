"""infer-placement: tasks where annotated, other ops with their consumers, else their
producers, else the default; control flow as one unit; mixed bodies rejected."""

from __future__ import annotations

import os

import onnx_ir as ir
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import namu
from namu.errors import CompileError
from namu.ir.metadata import PLACEMENT_KEY
from tests.passes.conftest import lowered, parse, run_pass


def places(graph: ir.Graph) -> dict[str, str]:
    """First output name (or op type) -> placement, for every node of ``graph``."""
    return {(n.outputs[0].name if n.outputs else n.op_type): n.metadata_props[PLACEMENT_KEY] for n in graph}


@namu.task(placement="gpu")
def embed(x: int) -> int:
    return x * 10


@namu.task
def score(x: int) -> int:
    return x + 1


@namu.workflow
def mixed_loop(xs: list[int]) -> list[int]:
    return [score(embed(x)) for x in xs]


def test_tasks_keep_their_placement() -> None:
    model = parse(
        """
        g (int64 x) => (int64 a, int64 b, int64 c) {
          a = namu.Task <task = "t", placement = "tpu"> (x)
          b = namu.Task <task = "u"> (x)
          c = namu.Task <task = "v"> (x)
        }""",
        task_options={"u": {"placement": "gpu"}, "v": {}},
    )
    assert run_pass("infer-placement", model).modified
    assert places(model.graph) == {"a": "tpu", "b": "gpu", "c": "local"}


def test_the_default_placement_comes_from_the_config() -> None:
    model = parse("g (int64 x) => (int64 y) { y = namu.Task <task = \"v\"> (x) }", impure_tasks=("v",))
    run_pass("infer-placement", model, placement="edge")
    assert places(model.graph) == {"y": "edge"}


def test_ops_go_with_their_consumers_else_producers_else_default() -> None:
    model = parse(
        """
        g (int64 x) => (int64 y, int64 w) {
          c = Constant <value = int64 {2}> ()
          a = Add(x, c)
          e = namu.Task <task = "embed"> (a)
          f = Neg(e)
          g1 = namu.Task <task = "score"> (f)
          h = Mul(e, e)
          both = Neg(x)
          k = namu.Task <task = "embed"> (both)
          m = namu.Task <task = "score"> (both)
          y = Identity(g1)
          w = Add(h, k)
        }""",
        task_options={"embed": {"placement": "gpu"}, "score": {}},
    )
    run_pass("infer-placement", model)
    assert places(model.graph) == {
        "c": "gpu",  # consumer a is on gpu, so c is too
        "a": "gpu",  # consumer embed is on gpu
        "e": "gpu",
        "f": "local",  # consumer score is local
        "g1": "local",
        "h": "local",  # consumer w reads a graph output: local
        "both": "local",  # consumers on gpu and local: with its producer, the input x
        "k": "gpu",
        "m": "local",
        "y": "local",
        "w": "local",
    }


def test_mixed_consumers_follow_the_producers() -> None:
    model = parse(
        """
        g (int64 x) => (int64 y) {
          e = namu.Task <task = "embed"> (x)
          u = Neg(e)
          a = namu.Task <task = "embed"> (u)
          b = namu.Task <task = "score"> (u)
          y = Add(a, b)
        }""",
        task_options={"embed": {"placement": "gpu"}, "score": {}},
    )
    run_pass("infer-placement", model)
    assert places(model.graph)["u"] == "gpu"  # produced on gpu, read on gpu and local


def test_input_less_op_with_mixed_consumers_goes_to_the_default() -> None:
    model = parse(
        """
        g (int64 x) => (int64 a, int64 b) {
          c = Constant <value = int64 {2}> ()
          a = namu.Task <task = "embed"> (c)
          b = namu.Task <task = "tpu_task"> (c)
        }""",
        task_options={"embed": {"placement": "gpu"}, "tpu_task": {"placement": "tpu"}},
    )
    run_pass("infer-placement", model)
    assert places(model.graph)["c"] == "local"


def test_control_flow_is_one_unit_with_its_body() -> None:
    model = parse(
        """
        g (seq(int64) xs, bool c, int64 x) => (seq(int64) ys, int64 w) {
          ys = namu.Map (xs) <body = b (int64 i) => (int64 o) {
            k = Constant <value = int64 {1}> ()
            s = Add(i, k)
            o = namu.Task <task = "embed"> (s)
          }>
          z = If (c) <
            then_branch = t () => (int64 r) { r = Neg(x) },
            else_branch = e () => (int64 q) { q = Identity(x) }
          >
          w = namu.Task <task = "embed"> (z)
        }""",
        task_options={"embed": {"placement": "gpu"}},
    )
    run_pass("infer-placement", model)
    top = places(model.graph)
    assert top == {"ys": "gpu", "z": "gpu", "w": "gpu"}  # the If has no task: it follows w
    body = model.graph.node(0).attributes["body"].as_graph()
    assert set(places(body).values()) == {"gpu"}
    for branch in ("then_branch", "else_branch"):
        assert set(places(model.graph.node(1).attributes[branch].as_graph()).values()) == {"gpu"}


def test_nested_control_flow_of_one_placement_is_anchored() -> None:
    model = parse(
        """
        g (seq(int64) xs, bool c) => (seq(int64) ys) {
          ys = namu.Map (xs) <body = b (int64 i) => (int64 o) {
            o = If (c) <
              then_branch = t () => (int64 r) { r = namu.Task <task = "embed"> (i) },
              else_branch = e () => (int64 q) { q = Neg(i) }
            >
          }>
        }""",
        task_options={"embed": {"placement": "gpu"}},
    )
    run_pass("infer-placement", model)
    assert places(model.graph) == {"ys": "gpu"}
    inner = model.graph.node(0).attributes["body"].as_graph().node(0)
    assert inner.metadata_props[PLACEMENT_KEY] == "gpu"
    assert places(inner.attributes["else_branch"].as_graph()) == {"q": "gpu"}


def test_mixed_placements_in_a_body_are_rejected_at_the_line() -> None:
    model, tasks = lowered(mixed_loop, upto="infer-placement")
    with pytest.raises(CompileError) as caught:
        run_pass("infer-placement", model, tasks=tasks)
    message = str(caught.value)
    assert "this fan-out runs tasks in two placements, 'gpu' (embed) and 'local' (score)" in message
    assert "move the 'local' work out of the fan-out, or do the body's work in one @namu.task" in message
    assert caught.value.span.startswith(os.path.abspath(__file__))
    assert "return [score(embed(x)) for x in xs]" in message  # the source line


def test_mixed_branches_name_both_placements() -> None:
    model = parse(
        """
        g (bool c, int64 x) => (int64 y) {
          y = If (c) <
            then_branch = t () => (int64 r) { r = namu.Task <task = "embed"> (x) },
            else_branch = e () => (int64 q) { q = namu.Task <task = "tpu_task"> (x) }
          >
        }""",
        task_options={"embed": {"placement": "gpu"}, "tpu_task": {"placement": "tpu"}},
    )
    with pytest.raises(CompileError, match="this branch runs tasks in two placements, 'gpu' .embed. and 'tpu' .tpu_task."):
        run_pass("infer-placement", model)


def test_fused_groups_are_placed_with_their_tasks() -> None:
    model = parse(
        """
        g (int64 x) => (int64 y) {
          y = namu.Fused (x) <body = f (int64 a) => (int64 c) {
            b = namu.Task <task = "score"> (a)
            c = namu.Task <task = "score"> (b)
          }>
        }""",
        impure_tasks=("score",),
    )
    run_pass("infer-placement", model)
    assert places(model.graph) == {"y": "local"}
    assert set(places(model.graph.node(0).attributes["body"].as_graph()).values()) == {"local"}


def test_sub_workflow_functions_are_placed() -> None:
    model = parse(
        """
        g (int64 x) => (int64 y, int64 z) {
          y = namu.workflow.on_gpu(x)
          z = namu.workflow.plain(x)
        }
        <domain: "namu.workflow", opset_import: ["" : 21, "namu" : 1]>
        on_gpu (v) => (w) { u = Neg(v)  w = namu.Task <task = "embed"> (u) }
        <domain: "namu.workflow", opset_import: ["" : 21, "namu" : 1]>
        plain (v) => (w) { w = Neg(v) }""",
        task_options={"embed": {"placement": "gpu"}},
    )
    run_pass("infer-placement", model)
    assert places(model.graph) == {"y": "gpu", "z": "local"}
    functions = {f.name: f for f in model.functions.values()}
    assert set(places(functions["on_gpu"].graph).values()) == {"gpu"}
    assert set(places(functions["plain"].graph).values()) == {"local"}


def test_second_run_changes_nothing() -> None:
    model = parse(
        "g (int64 x) => (int64 y) { a = Neg(x)  y = namu.Task <task = \"embed\"> (a) }",
        task_options={"embed": {"placement": "gpu"}},
    )
    assert run_pass("infer-placement", model).modified
    assert not run_pass("infer-placement", model).modified


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_placement_rule_holds_on_random_graphs(data: st.DataObject) -> None:
    """Tasks keep their placement; an op read only by tasks of one placement goes there;
    an unread op goes with its producers when they agree; no op is placed anywhere but
    with a consumer, with a producer or at the default."""
    n = data.draw(st.integers(1, 12))
    lines, kinds = [], []
    for i in range(n):
        pool = ["x", *[f"v{j}" for j in range(i)]]
        kind = data.draw(st.sampled_from(["task_gpu", "task_local", "task_tpu", "neg", "add", "const"]))
        kinds.append(kind)
        a, b = data.draw(st.sampled_from(pool)), data.draw(st.sampled_from(pool))
        if kind.startswith("task"):
            lines.append(f'v{i} = namu.Task <task = "t", placement = "{kind.removeprefix("task_")}"> ({a})')
        elif kind == "neg":
            lines.append(f"v{i} = Neg({a})")
        elif kind == "add":
            lines.append(f"v{i} = Add({a}, {b})")
        else:
            lines.append(f"v{i} = Constant <value = int64 {{1}}> ()")
    outs = sorted(set(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3))))
    outputs_text = ", ".join(f"int64 v{i}" for i in outs)
    model = parse(f"g (int64 x) => ({outputs_text}) {{\n" + "\n".join(lines) + "\n}", impure_tasks=("t",))
    run_pass("infer-placement", model)

    where = {id(v): node.metadata_props[PLACEMENT_KEY] for node in model.graph for v in node.outputs}
    outputs = {id(v) for v in model.graph.outputs}
    for node, kind in zip(model.graph, kinds):
        place = node.metadata_props[PLACEMENT_KEY]
        if kind.startswith("task"):
            assert place == kind.removeprefix("task_")
            continue
        value = node.outputs[0]
        readers = [u.node for u in value.uses()]
        consumers = {where[id(r.outputs[0])] for r in readers} | ({"local"} if id(value) in outputs else set())
        producers = {where.get(id(v), "local") for v in node.inputs}
        if readers and id(value) not in outputs and all(r.op_type == "Task" for r in readers) and len(consumers) == 1:
            assert place in consumers
        if not consumers:
            assert place == (next(iter(producers)) if len(producers) == 1 else "local")
        assert place in consumers | producers | {"local"}
