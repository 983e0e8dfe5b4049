"""eliminate-common-subexpressions: equal pure computations run once; effects never merge."""

from __future__ import annotations

import onnx_ir as ir
import pytest

import namu
from tests.passes.conftest import canonical, listing, lowered, parse, run_model, run_pass
from tests.passes.test_fold_constants import assert_same_behaviour, assert_valid

EFFECTS: list[int] = []


@namu.task(pure=True)
def weigh(x: int, scale: int = 1) -> int:
    return x * 10 * scale


@namu.task
def emit(x: int) -> int:
    EFFECTS.append(x)
    return x


@namu.workflow
def repeated(x: int, flag: bool) -> int:
    a = weigh(x) + weigh(x)
    b = weigh(x, scale=2) + weigh(x, scale=2)
    c = emit(x) + emit(x)
    if flag:
        d = weigh(x) + x * 3
    else:
        d = x * 3 + x * 3
    total = 0
    for v in [1, 2]:
        total = total + weigh(x) + v
    return a + b + c + d + total + x * 3


def cse(text: str, pure: tuple[str, ...] = ("pure",), impure: tuple[str, ...] = ("effect",)) -> tuple[ir.Model, bool]:
    model = parse(text, pure_tasks=pure, impure_tasks=impure)
    return model, run_pass("eliminate-common-subexpressions", model).modified


def test_merges_pure_task_calls_with_equal_inputs_and_kwnames_only() -> None:
    model, modified = cse(
        """
        g (int64 x, int64 z) => (int64 y) {
          a = namu.Task <task = "pure"> (x)
          b = namu.Task <task = "pure"> (x)
          c = namu.Task <task = "pure"> (z)
          k1 = namu.Task <task = "pure", kwnames = ["scale"]> (x, z)
          k2 = namu.Task <task = "pure", kwnames = ["scale"]> (x, z)
          k3 = namu.Task <task = "pure", kwnames = ["other"]> (x, z)
          p = namu.Task <task = "pure"> (x, z)
          e1 = namu.Task <task = "effect"> (x)
          e2 = namu.Task <task = "effect"> (x)
          y = namu.Tuple(a, b, c, k1, k2, k3, p, e1, e2)
        }
        """
    )
    assert modified
    assert listing(model.graph) == [
        "a = namu::Task(x)",
        "c = namu::Task(z)",
        "k1 = namu::Task(x,z)",
        "k3 = namu::Task(x,z)",
        "p = namu::Task(x,z)",
        "e1 = namu::Task(x)",
        "e2 = namu::Task(x)",
        "y = namu::Tuple(a,a,c,k1,k1,k3,p,e1,e2)",
    ]


def test_merges_builtin_ops_by_op_attributes_and_inputs() -> None:
    model, _ = cse(
        """
        g (int64 x, int64 z) => (double y) {
          m1 = Mod <fmod = 0> (x, z)
          m2 = Mod <fmod = 0> (x, z)
          m3 = Mod <fmod = 1> (x, z)
          s1 = Sub(x, z)
          s2 = Sub(z, x)
          c1 = Cast <to = 11> (m2)
          c2 = Cast <to = 11> (m1)
          c3 = Cast <to = 1> (m1)
          g1 = namu.GetItem(x, z)
          g2 = namu.GetItem(x, z)
          u1, u2 = namu.Unpack(x)
          v1, v2 = namu.Unpack(x)
          y = namu.Tuple(m3, s1, s2, c1, c2, c3, g1, g2, u1, u2, v1, v2)
        }
        """
    )
    assert listing(model.graph) == [
        "m1 = Mod(x,z)",
        "m3 = Mod(x,z)",
        "s1 = Sub(x,z)",
        "s2 = Sub(z,x)",
        "c1 = Cast(m1)",
        "c3 = Cast(m1)",
        "g1 = namu::GetItem(x,z)",
        "u1,u2 = namu::Unpack(x)",
        "y = namu::Tuple(m3,s1,s2,c1,c1,c3,g1,g1,u1,u2,u1,u2)",
    ]


def test_constants_merge_by_value_and_dtype() -> None:
    model, _ = cse(
        """
        g (int64 x) => (double y) {
          a = Constant <value = int64 {1}> ()
          b = Constant <value = int64 {1}> ()
          f = Constant <value = double {1}> ()
          z1 = Constant <value = double {0}> ()
          z2 = Constant <value = double {-0.0}> ()
          s1 = Constant <value = string {"hi"}> ()
          s2 = Constant <value = string {"hi"}> ()
          s3 = Constant <value = string {"ho"}> ()
          n1 = namu.None()
          n2 = namu.None()
          y = namu.Tuple(a, b, f, z1, z2, s1, s2, s3, n1, n2)
        }
        """
    )
    assert listing(model.graph) == [
        "a = Constant()",
        "f = Constant()",
        "z1 = Constant()",
        "z2 = Constant()",
        "s1 = Constant()",
        "s3 = Constant()",
        "n1 = namu::None()",
        "y = namu::Tuple(a,a,f,z1,z2,s1,s1,s3,n1,n1)",
    ]


def test_never_merges_effects_fresh_lists_or_control_flow() -> None:
    text = """
        g (bool c, int64 x) => (int64 y) {
          l1 = SequenceConstruct(x, x)
          l2 = SequenceConstruct(x, x)
          n1 = namu.List(x)
          n2 = namu.List(x)
          d1 = namu.Dict <keys = ["k"]> (x)
          d2 = namu.Dict <keys = ["k"]> (x)
          t1 = namu.ToList(x)
          t2 = namu.ToList(x)
          s1 = namu.Slot <slot = "llm"> (x)
          s2 = namu.Slot <slot = "llm"> (x)
          r1 = namu.Recv <channel = "w", from = "gpu"> ()
          r2 = namu.Recv <channel = "w", from = "gpu"> ()
          i1 = If (c) <then_branch = t1 () => (int64 a1) { a1 = Neg(x) }, else_branch = e1 () => (int64 b1) { b1 = Neg(x) }>
          i2 = If (c) <then_branch = t2 () => (int64 a2) { a2 = Neg(x) }, else_branch = e2 () => (int64 b2) { b2 = Neg(x) }>
          y = namu.Tuple(l1, l2, n1, n2, d1, d2, t1, t2, s1, s2, r1, r2, i1, i2)
        }
        """
    model, modified = cse(text)
    assert not modified
    assert canonical(model.graph) == canonical(parse(text).graph)


def test_subgraphs_reuse_values_of_enclosing_scopes() -> None:
    model, _ = cse(
        """
        g (bool c, int64 x) => (int64 y) {
          early = Neg(x)
          p = namu.Task <task = "pure"> (x)
          y = If (c) <
            then_branch = t () => (int64 a) {
              n1 = Neg(x)
              q = namu.Task <task = "pure"> (x)
              a = Add(n1, q)
            },
            else_branch = e () => (int64 b) {
              q2 = namu.Task <task = "pure"> (x)
              e1 = namu.Task <task = "effect"> (x)
              b = Add(q2, e1)
            }
          >
        }
        """
    )
    then_branch = model.graph.node(2).attributes["then_branch"].as_graph()
    else_branch = model.graph.node(2).attributes["else_branch"].as_graph()
    assert listing(then_branch) == ["a = Add(early,p)"]
    assert listing(else_branch) == ["e1 = namu::Task(x)", "b = Add(p,e1)"]
    assert_valid(model)


def test_values_of_sibling_branches_and_later_nodes_are_not_visible() -> None:
    model, _ = cse(
        """
        g (bool c, int64 x) => (int64 y, int64 w) {
          y = If (c) <
            then_branch = t () => (int64 a) { a = Neg(x) },
            else_branch = e () => (int64 b) { n = Neg(x)  b = Add(n, n) }
          >
          w = Neg(x)
        }
        """
    )
    assert listing(model.graph) == ["y = If(c)", "w = Neg(x)"]
    else_branch = model.graph.node(0).attributes["else_branch"].as_graph()
    assert listing(else_branch) == ["n = Neg(x)", "b = Add(n,n)"]


def test_loop_bodies_merge_with_the_enclosing_graph() -> None:
    model, _ = cse(
        """
        g (int64 n, int64 x) => (int64 y) {
          base = namu.Task <task = "pure"> (x)
          t = Constant <value = bool {1}> ()
          y = Loop (n, t, x) <
            body = loop (int64 i, bool c, int64 acc) => (bool c2, int64 acc2) {
              again = namu.Task <task = "pure"> (x)
              one = Constant <value = int64 {1}> ()
              one2 = Constant <value = int64 {1}> ()
              s = Add(acc, again)
              acc2 = Add(s, one2)
              c2 = Identity(c)
            }
          >
        }
        """
    )
    body = model.graph.node(2).attributes["body"].as_graph()
    # the task call is the enclosing one; constants merge within their own graph only
    assert listing(body) == ["one = Constant()", "s = Add(acc,base)", "acc2 = Add(s,one)", "c2 = Identity(c)"]


def test_graph_outputs_keep_their_names() -> None:
    model, _ = cse(
        """
        g (int64 x) => (int64 a, int64 b, int64 n, int64 m) {
          a = namu.Task <task = "pure"> (x)
          b = namu.Task <task = "pure"> (x)
          n = Neg(x)
          m = Neg(x)
        }
        """
    )
    # a repeated task call becomes an Identity of the first; a builtin op stays
    assert listing(model.graph) == ["a = namu::Task(x)", "b = Identity(a)", "n = Neg(x)", "m = Neg(x)"]
    assert [v.name for v in model.graph.outputs] == ["a", "b", "n", "m"]
    assert_valid(model)


def test_merged_values_drop_their_uses() -> None:
    model, _ = cse(
        """
        g (int64 x) => (int64 y) {
          a = Neg(x)
          b = Neg(x)
          y = Add(a, b)
        }
        """
    )
    (x,) = model.graph.inputs
    assert [(use.node.op_type, use.idx) for use in x.uses()] == [("Neg", 0)]


def test_frontend_workflow_behaves_the_same_and_stays_valid() -> None:
    before, tasks = lowered(repeated, upto="eliminate-common-subexpressions")
    after, _ = lowered(repeated, upto="eliminate-common-subexpressions")
    assert run_pass("eliminate-common-subexpressions", after, tasks=tasks).modified
    calls = [n.attributes["task"].as_string() for n in ir.traversal.RecursiveGraphIterator(after.graph) if n.op_type == "Task"]
    assert calls.count("emit") == 2  # effects run as often as Python runs them
    assert calls.count("weigh") == 2  # weigh(x) and weigh(x, scale=2), once each
    assert_valid(after)
    for flag in (True, False):
        EFFECTS.clear()
        assert_same_behaviour(before, after, tasks, 4, flag)
        assert run_model(after, tasks, 4, flag) == repeated.fn(4, flag)


@pytest.mark.parametrize("opt_level", [1, 2])
def test_full_pipeline_keeps_the_model_valid(opt_level: int) -> None:
    model, tasks = lowered(repeated, opt_level=opt_level)
    assert_valid(model)
    assert run_model(model, tasks, 3, True) == repeated.fn(3, True)


def test_is_idempotent() -> None:
    model, tasks = lowered(repeated, upto="eliminate-common-subexpressions")
    run_pass("eliminate-common-subexpressions", model, tasks=tasks)
    snapshot = canonical(model.graph)
    assert not run_pass("eliminate-common-subexpressions", model, tasks=tasks).modified
    assert canonical(model.graph) == snapshot
