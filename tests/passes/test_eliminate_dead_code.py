"""eliminate-dead-code: unused, effect-free ops go; impure task calls stay."""

from __future__ import annotations

import namu
from namu.passes.eliminate_dead_code import EliminateDeadCodePass
from namu.passes.rewire import remove_dead
from tests.passes.conftest import canonical, listing, lowered, parse, run_model, run_pass


@namu.task(pure=True)
def slow_square(x: int) -> int:
    return x * x


@namu.workflow
def pruned(x: int) -> int:
    unused = 0
    if x > 2:
        unused = slow_square(x + 1)  # noqa: F841 - dead on purpose
    return x + 1


def test_removes_dead_chains_and_keeps_effects() -> None:
    model = parse(
        """
        g (int64 x) => (int64 y) {
          a = namu.Task <task = "effect"> (x)
          unused = Add(x, x)
          dead2 = Mul(unused, x)
          p = namu.Task <task = "pure_fn"> (x)
          logged = namu.Task <task = "effect"> (x)
          y = Identity(a)
        }
        """,
        pure_tasks=("pure_fn",),
        impure_tasks=("effect",),
    )
    result = EliminateDeadCodePass()(model)
    assert result.modified
    assert listing(model.graph) == [
        "a = namu::Task(x)",
        "logged = namu::Task(x)",
        "y = Identity(a)",
    ]


def test_cleans_subgraphs_and_keeps_control_flow_with_effects() -> None:
    model = parse(
        """
        g (bool c, int64 x) => (int64 y) {
          y = If (c) <
            then_branch = t () => (int64 a) { dead = Add(x, x)  a = Identity(x) },
            else_branch = e () => (int64 b) { b = Neg(x) }
          >
          z = namu.If (c) <
            then_branch = t2 () => (int64 r) { r = namu.Task <task = "effect"> (x) },
            else_branch = e2 () => (int64 s) { s = Identity(x) }
          >
          w = namu.If (c) <
            then_branch = t3 () => (int64 r3) { r3 = namu.Task <task = "pure_fn"> (x) },
            else_branch = e3 () => (int64 s3) { s3 = Identity(x) }
          >
        }
        """,
        pure_tasks=("pure_fn",),
        impure_tasks=("effect",),
    )
    assert EliminateDeadCodePass()(model).modified
    assert listing(model.graph) == ["y = If(c)", "z = namu::If(c)"]
    then_branch = model.graph.node(0).attributes["then_branch"].as_graph()
    assert listing(then_branch) == ["a = Identity(x)"]


def test_reports_unmodified_when_nothing_is_dead() -> None:
    model = parse("g (int64 x) => (int64 y) { y = Neg(x) }")
    assert not EliminateDeadCodePass()(model).modified
    assert listing(model.graph) == ["y = Neg(x)"]


def test_an_unused_control_flow_op_takes_the_values_only_its_bodies_read() -> None:
    model = parse(
        """
        g (bool c, int64 x, seq(int64) xs) => (int64 y) {
          twice = Add(x, x)
          step = Neg(twice)
          kept = Mul(x, x)
          branch = If (c) <
            then_branch = t () => (int64 a) { a = Neg(step) },
            else_branch = e () => (int64 b) { b = Add(kept, x) }
          >
          offset = Neg(x)
          ys = namu.Map (xs) <
            flatten = 0,
            body = m (int64 v) => (int64 w) {
              inner = If (c) <
                then_branch = t2 () => (int64 p) { p = Add(v, offset) },
                else_branch = e2 () => (int64 q) { q = Identity(v) }
              >
              w = Identity(inner)
            }
          >
          y = Add(kept, x)
        }
        """
    )
    assert EliminateDeadCodePass()(model).modified
    expected = parse("g (bool c, int64 x, seq(int64) xs) => (int64 y) { kept = Mul(x, x)  y = Add(kept, x) }")
    assert canonical(model.graph) == canonical(expected.graph)
    x = model.graph.inputs[1]
    assert sorted(use.node.op_type for use in x.uses()) == ["Add", "Mul", "Mul"]  # the bodies let go of x
    assert not model.graph.inputs[2].uses()


def test_control_flow_with_an_effect_keeps_what_its_bodies_read() -> None:
    text = """
        g (bool c, int64 x) => (int64 y) {
          twice = Add(x, x)
          logged = If (c) <
            then_branch = t () => (int64 a) { a = namu.Task <task = "effect"> (twice) },
            else_branch = e () => (int64 b) { b = Identity(x) }
          >
          y = Neg(x)
        }
        """
    model = parse(text, impure_tasks=("effect",))
    assert not EliminateDeadCodePass()(model).modified
    assert canonical(model.graph) == canonical(parse(text).graph)


def test_dead_regions_of_functions_go_too() -> None:
    model = parse(
        """
        g (int64 x) => (int64 y) { y = namu.workflow.sub(x) }
        <domain: "namu.workflow", opset_import: ["" : 21, "namu" : 1]>
        sub (v) => (w) { d = Add(v, v)  e = Neg(d)  w = Identity(v) }
        """
    )
    assert EliminateDeadCodePass()(model).modified
    (function,) = model.functions.values()
    assert listing(function.graph) == ["w = Identity(v)"]


def test_remove_dead_sweeps_from_given_producers() -> None:
    model = parse("g (int64 x) => (int64 y) { a = Neg(x)  b = Add(a, x)  keep = Neg(x)  y = Identity(keep) }")
    b = model.graph.node(1)
    assert remove_dead([b], frozenset()) == 2  # b is unread, and then a
    assert listing(model.graph) == ["keep = Neg(x)", "y = Identity(keep)"]
    assert remove_dead([model.graph.node(0)], frozenset()) == 0  # keep is read


def test_the_pruned_workflow_computes_the_same() -> None:
    before, tasks = lowered(pruned, upto="eliminate-dead-code")
    after, _ = lowered(pruned, upto="eliminate-dead-code")
    assert run_pass("eliminate-dead-code", after, tasks=tasks).modified
    assert not [n for n in after.graph if n.op_type == "If"]
    for executor in ("kernel", "reference"):
        assert run_model(after, tasks, 3, executor=executor) == run_model(before, tasks, 3, executor=executor) == pruned.fn(3)
