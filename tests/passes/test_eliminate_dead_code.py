"""eliminate-dead-code: unused, effect-free ops go; impure task calls stay."""

from __future__ import annotations

from namu.passes.eliminate_dead_code import EliminateDeadCodePass
from tests.passes.conftest import listing, parse


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
