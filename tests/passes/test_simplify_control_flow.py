"""simplify-control-flow: constant Ifs inlined, zero-trip loops gone, invariants hoisted."""

from __future__ import annotations

import onnx_ir as ir
import pytest

import namu
from namu.passes import run_passes
from tests.passes.conftest import canonical, listing, lowered, parse, run_model, run_pass
from tests.passes.test_fold_constants import assert_same_behaviour, assert_valid

DEBUG = False
VERBOSE = True
LEVEL = 3
NOTHING: list[int] = []
LOGGED: list[int] = []


@namu.task(pure=True)
def cost(x: int) -> int:
    return x * 7


@namu.task
def log(x: int) -> int:
    LOGGED.append(x)
    return x


@namu.workflow
def debug_flags(x: int) -> int:
    if DEBUG:
        x = log(x)
    if LEVEL > 2 and VERBOSE:
        y = x + 1
    else:
        y = log(x)
    return y


@namu.workflow
def invariant_calls(x: int, n: int) -> int:
    total = 0
    for v in [1, 2, 3]:
        total = total + cost(x) + v
    scaled = [cost(n) + v for v in [4, 5]]
    return total + scaled[0] + scaled[1]


@namu.workflow
def maybe_empty(x: int, xs: list[int]) -> int:
    total = 0
    for v in xs:
        total = total + cost(x) + v
    rows = [cost(x) for v in NOTHING]
    for v in NOTHING:
        log(v)
    return total + len(rows)


def simplify(text: str, pure: tuple[str, ...] = ("pure",), impure: tuple[str, ...] = ("effect",)) -> tuple[ir.Model, bool]:
    model = parse(text, pure_tasks=pure, impure_tasks=impure)
    return model, run_pass("simplify-control-flow", model).modified


def expect(model: ir.Model, text: str) -> None:
    assert canonical(model.graph) == canonical(parse(text).graph)


# ------------------------------------------------------------------ If(const c) -> branch(c)
@pytest.mark.parametrize("domain", ["", "namu."])
@pytest.mark.parametrize("cond", [0, 1])
def test_constant_if_inlines_the_selected_branch(domain: str, cond: int) -> None:
    model, modified = simplify(
        f"""
        g (int64 x) => (int64 y) {{
          c = Constant <value = bool {{{cond}}}> ()
          y = {domain}If (c) <
            then_branch = t () => (int64 a) {{ t1 = Neg(x)  a = namu.Task <task = "effect"> (t1) }},
            else_branch = e () => (int64 b) {{ b = Add(x, x) }}
          >
          z = Neg(y)
        }}
        """
    )
    assert modified
    # the condition, now unread, is left for eliminate-dead-code (the cleanup group runs it next)
    c = f"c = Constant <value = bool {{{cond}}}> ()"
    if cond:
        expect(model, f'g (int64 x) => (int64 y) {{ {c}  t1 = Neg(x)  y = namu.Task <task = "effect"> (t1)  z = Neg(y) }}')
    else:
        expect(model, f"g (int64 x) => (int64 y) {{ {c}  y = Add(x, x)  z = Neg(y) }}")
    assert_valid(model)


def test_inlined_branches_keep_names_when_results_are_outer_values() -> None:
    model, _ = simplify(
        """
        g (int64 x) => (int64 y, int64 w, int64 v) {
          c = Constant <value = bool {1}> ()
          y, w = If (c) <
            then_branch = t () => (int64 a, int64 a2) { a = Neg(x)  a2 = Identity(a) },
            else_branch = e () => (int64 b, int64 b2) { b = Neg(x)  b2 = Neg(x) }
          >
          v = namu.If (c) <
            then_branch = t2 () => (int64 r) { r = Identity(x) },
            else_branch = e2 () => (int64 s) { s = Identity(x) }
          >
        }
        """
    )
    expect(
        model,
        """
        g (int64 x) => (int64 y, int64 w, int64 v) {
          c = Constant <value = bool {1}> ()
          y = Neg(x)
          w = Identity(y)
          v = Identity(x)
        }
        """,
    )


def test_a_result_returned_twice_is_forwarded() -> None:
    model = parse(
        """
        g (int64 x) => (int64 y, int64 z) {
          c = Constant <value = bool {0}> ()
          y, w = If (c) <
            then_branch = t () => (int64 a, int64 a2) { a = Neg(x)  a2 = Neg(x) },
            else_branch = e () => (int64 b, int64 b2) { b = Neg(x)  b2 = Neg(x) }
          >
          z = Add(w, w)
        }
        """
    )
    else_branch = model.graph.node(1).attributes["else_branch"].as_graph()
    else_branch.outputs[1] = else_branch.outputs[0]
    run_pass("simplify-control-flow", model)
    # the first If output is an Identity (a graph output keeps its name), the second reads b
    assert listing(model.graph) == ["c = Constant()", "b = Neg(x)", "b2 = Neg(x)", "y = Identity(b)", "z = Add(b,b)"]
    assert_valid(model)


def test_nested_constant_ifs_and_ifs_without_outputs() -> None:
    model, _ = simplify(
        """
        g (int64 x) => (int64 y) {
          t = Constant <value = bool {1}> ()
          f = Constant <value = bool {0}> ()
           = namu.If (f) <
            then_branch = t0 () => () { e0 = namu.Task <task = "effect"> (x) },
            else_branch = e0 () => () { e1 = namu.Task <task = "effect"> (x) }
          >
          y = If (t) <
            then_branch = t1 () => (int64 a) {
              a = If (f) <
                then_branch = t2 () => (int64 p) { p = Neg(x) },
                else_branch = e2 () => (int64 q) { q = Add(x, x) }
              >
            },
            else_branch = e1 () => (int64 b) { b = Neg(x) }
          >
        }
        """
    )
    expect(
        model,
        """
        g (int64 x) => (int64 y) {
          t = Constant <value = bool {1}> ()
          f = Constant <value = bool {0}> ()
          e1 = namu.Task <task = "effect"> (x)
          y = Add(x, x)
        }
        """,
    )


def test_discarded_branches_let_go_of_outer_values() -> None:
    model, _ = simplify(
        """
        g (int64 x, int64 z) => (int64 y) {
          c = Constant <value = bool {1}> ()
          y = If (c) <
            then_branch = t () => (int64 a) { a = Neg(x) },
            else_branch = e () => (int64 b) { b = Neg(z) }
          >
        }
        """
    )
    x, z = model.graph.inputs
    assert [use.node.op_type for use in x.uses()] == ["Neg"]
    assert not z.uses()


def test_the_cleanup_group_sweeps_what_the_rewrites_leave_unread() -> None:
    model = parse(
        """
        g (int64 x) => (int64 y, int64 w) {
          c = Constant <value = bool {1}> ()
          sq = Mul(x, x)
          shifted = Sub(sq, x)
          logged = namu.Task <task = "effect"> (x)
          y = If (c) <
            then_branch = t () => (int64 a) { a = Neg(x) },
            else_branch = e () => (int64 b) { b = Add(shifted, logged) }
          >
          m = Constant <value = int64 {0}> ()
          k = Neg(x)
          w, unused = Loop (m, c, x, k) <
            body = loop (int64 i, bool ci, int64 p, int64 q) => (bool co, int64 p2, int64 q2) {
              co = Identity(ci)
              p2 = Neg(p)
              q2 = Neg(q)
            }
          >
        }
        """,
        pure_tasks=("pure",),
        impure_tasks=("effect",),
    )
    _, records = run_passes(model, ["simplify-control-flow", "eliminate-dead-code"])
    # simplify, then the sweep; removing unread nodes gives simplify nothing new to do
    assert [(r.name, r.runs) for r in records] == [("simplify-control-flow", 1), ("eliminate-dead-code", 1)]
    # the discarded branch's outer values and the loop's unread carried value go with the
    # constants; the task call has an effect and stays
    expect(
        model,
        """
        g (int64 x) => (int64 y, int64 w) {
          logged = namu.Task <task = "effect"> (x)
          y = Neg(x)
          w = Identity(x)
        }
        """,
    )
    assert_valid(model)


def test_non_constant_conditions_stay() -> None:
    text = """
        g (bool c, int64 x) => (int64 y) {
          y = If (c) <
            then_branch = t () => (int64 a) { a = Neg(x) },
            else_branch = e () => (int64 b) { b = Add(x, x) }
          >
        }
        """
    model, modified = simplify(text)
    assert not modified
    expect(model, text)


# ------------------------------------------------------------------ zero-trip loops
@pytest.mark.parametrize(
    ("trip_count", "cond"),
    [("int64 {0}", "bool {1}"), ("int64 {-3}", "bool {1}"), ("int64 {5}", "bool {0}")],
)
def test_zero_trip_loops_vanish(trip_count: str, cond: str) -> None:
    model, modified = simplify(
        f"""
        g (int64 x) => (int64 y, int64 w) {{
          m = Constant <value = {trip_count}> ()
          c = Constant <value = {cond}> ()
          k = Neg(x)
          y, v = Loop (m, c, x, k) <
            body = loop (int64 i, bool ci, int64 a, int64 b) => (bool co, int64 a2, int64 b2) {{
              co = Identity(ci)
              a2 = namu.Task <task = "effect"> (a)
              b2 = Add(b, i)
            }}
          >
          w = Neg(v)
        }}
        """
    )
    assert modified
    expect(
        model,
        f"""
        g (int64 x) => (int64 y, int64 w) {{
          m = Constant <value = {trip_count}> ()
          c = Constant <value = {cond}> ()
          k = Neg(x)
          y = Identity(x)
          w = Neg(k)
        }}
        """,
    )
    assert not [u for u in model.graph.inputs[0].uses() if u.node.op_type == "Task"]


def test_while_loops_with_a_false_condition_vanish_and_others_stay() -> None:
    model, modified = simplify(
        """
        g (int64 x, int64 n) => (int64 y, int64 z) {
          f = Constant <value = bool {0}> ()
          t = Constant <value = bool {1}> ()
          y = Loop (, f, x) <
            body = l1 (int64 i, bool ci, int64 a) => (bool co, int64 a2) { co = Identity(ci)  a2 = Neg(a) }
          >
          z = Loop (n, t, x) <
            body = l2 (int64 j, bool cj, int64 b) => (bool cp, int64 b2) { cp = Identity(cj)  b2 = Neg(b) }
          >
        }
        """
    )
    assert modified
    assert listing(model.graph) == ["f = Constant()", "t = Constant()", "y = Identity(x)", "z = Loop(n,t,x)"]


def test_zero_trip_loops_give_empty_scan_outputs() -> None:
    model, _ = simplify(
        """
        g (int64 x) => (int64 y, int64[N] s) {
          m = Constant <value = int64 {0}> ()
          c = Constant <value = bool {1}> ()
          y, s = Loop (m, c, x) <
            body = loop (int64 i, bool ci, int64 a) => (bool co, int64 a2, int64 sc) {
              co = Identity(ci)
              a2 = Neg(a)
              sc = Identity(a)
            }
          >
        }
        """
    )
    assert listing(model.graph) == ["m = Constant()", "c = Constant()", "s = Constant()", "y = Identity(x)"]
    empty = model.graph.node(2).attributes["value"].as_tensor()
    assert empty.shape == ir.Shape([0]) and empty.dtype == ir.DataType.INT64


# ------------------------------------------------------------------ Map over []
def test_maps_over_empty_sequences_become_empty_lists() -> None:
    model, _ = simplify(
        """
        g (int64 x) => (seq(int64) a, seq(int64) b) {
          e = SequenceEmpty <dtype = 7> ()
          n = namu.List()
          a = namu.Map (e) < flatten = 0, body = m1 (int64 v) => (int64 r) { r = namu.Task <task = "effect"> (v) } >
          b = namu.Map (n) < flatten = 1, body = m2 (int64 w) => (seq(int64) s) { s = SequenceConstruct(w) } >
          d = namu.Dict <keys: strings = []> ()
          c = namu.Map (d) < flatten = 0, body = m3 (int64 u) => (int64 q) { q = Neg(u) } >
           = namu.Map (n) < flatten = 0, body = m4 (int64 z) => () { t = namu.Task <task = "effect"> (z) } >
          one = SequenceConstruct(x)
          kept = namu.Map (one) < flatten = 0, body = m5 (int64 k) => (int64 o) { o = Neg(k) } >
        }
        """
    )
    # the empty sequences, now unread, are left for eliminate-dead-code
    assert listing(model.graph) == [
        "e = SequenceEmpty()",
        "n = namu::List()",
        "a = SequenceEmpty()",
        "b = SequenceEmpty()",
        "d = namu::Dict()",
        "c = namu::List()",
        "one = SequenceConstruct(x)",
        "kept = namu::Map(one)",
    ]
    assert [model.graph.node(i).attributes["dtype"].as_int() for i in (2, 3)] == [7, 7]


# ------------------------------------------------------------------ loop-invariant code motion
def test_hoists_invariant_ops_that_cannot_raise() -> None:
    model, modified = simplify(
        """
        g (int64 n, int64 x, int64 z) => (int64 y) {
          t = Constant <value = bool {1}> ()
          y = Loop (n, t, x) <
            body = loop (int64 i, bool c, int64 acc) => (bool c2, int64 acc2) {
              one = Constant <value = int64 {1}> ()
              two = Constant <value = int64 {2}> ()
              a = Add(x, z)
              b = Mul(a, two)
              d = Div(b, z)
              e = Add(acc, b)
              f = Add(e, one)
              p = namu.Task <task = "pure"> (b)
              l = SequenceConstruct(a)
              tup = namu.Tuple(a, b)
              acc2 = Add(f, d)
              c2 = Identity(c)
            }
          >
        }
        """
    )
    assert modified
    assert listing(model.graph) == ["t = Constant()", "two = Constant()", "a = Add(x,z)", "b = Mul(a,two)", "tup = namu::Tuple(a,b)", "y = Loop(n,t,x)"]
    body = model.graph.node(5).attributes["body"].as_graph()
    # Div may raise (by zero) and the loop may run zero times; the pure call needs a loop
    # that provably runs; a fresh list must stay fresh per iteration; `one` stays with its reader
    assert listing(body) == [
        "one = Constant()",
        "d = Div(b,z)",
        "e = Add(acc,b)",
        "f = Add(e,one)",
        "p = namu::Task(b)",
        "l = SequenceConstruct(a)",
        "acc2 = Add(f,d)",
        "c2 = Identity(c)",
    ]


def test_hoists_pure_calls_only_out_of_loops_that_run() -> None:
    model, _ = simplify(
        """
        g (int64 x) => (int64 y, seq(int64) g1, seq(int64) g2) {
          three = Constant <value = int64 {3}> ()
          t = Constant <value = bool {1}> ()
          y = Loop (three, t, x) <
            body = loop (int64 i, bool c, int64 acc) => (bool c2, int64 acc2) {
              p = namu.Task <task = "pure"> (x)
              z = namu.Task <task = "pure"> ()
              e = namu.Task <task = "effect"> (x)
              pz = Add(p, z)
              r = Add(pz, e)
              acc2 = Add(acc, r)
              c2 = Identity(c)
            }
          >
          xs = SequenceConstruct(x, x)
          g1 = namu.Map (xs) < flatten = 0, body = m1 (int64 v) => (int64 o) { w = namu.Task <task = "pure"> (three)  o = Add(v, w) } >
          g2 = namu.Map (g1) < flatten = 0, body = m2 (int64 u) => (int64 o2) { w2 = namu.Task <task = "pure"> (three)  o2 = Add(u, w2) } >
        }
        """
    )
    assert listing(model.graph) == [
        "three = Constant()",
        "t = Constant()",
        "p = namu::Task(x)",
        "z = namu::Task()",
        "pz = Add(p,z)",
        "y = Loop(three,t,x)",
        "xs = SequenceConstruct(x,x)",
        "w = namu::Task(three)",
        "g1 = namu::Map(xs)",
        "g2 = namu::Map(g1)",  # g1's length is not known at compile time
    ]


def test_skip_tasks_are_not_hoisted() -> None:
    model = parse(
        """
        g (int64 x) => (seq(int64) g1) {
          xs = SequenceConstruct(x, x)
          g1 = namu.Map (xs) < flatten = 0, body = m1 (int64 v) => (int64 o) { w = namu.Task <task = "flaky"> (x)  o = Add(v, w) } >
        }
        """,
        task_options={"flaky": {"pure": True, "on_error": "skip"}},
    )
    assert not run_pass("simplify-control-flow", model).modified


def test_nested_loops_hoist_through_every_level() -> None:
    model, _ = simplify(
        """
        g (int64 n, int64 x) => (int64 y) {
          t = Constant <value = bool {1}> ()
          y = Loop (n, t, x) <
            body = outer (int64 i, bool c, int64 acc) => (bool c2, int64 acc2) {
              inner_out = Loop (n, t, acc) <
                body = inner (int64 j, bool d, int64 b) => (bool d2, int64 b2) {
                  k = Neg(x)
                  h = Add(i, x)
                  b2 = Add(b, k)
                  b3 = Add(b2, h)
                  d2 = Identity(d)
                }
              >
              acc2 = Identity(inner_out)
              c2 = Identity(c)
            }
          >
        }
        """
    )
    assert listing(model.graph) == ["t = Constant()", "k = Neg(x)", "y = Loop(n,t,x)"]
    outer = model.graph.node(2).attributes["body"].as_graph()
    assert listing(outer) == ["h = Add(i,x)", "inner_out = Loop(n,t,acc)", "acc2 = Identity(inner_out)", "c2 = Identity(c)"]


def test_body_outputs_and_branch_nodes_stay_in_the_body() -> None:
    text = """
        g (int64 n, bool f, int64 x) => (int64 y) {
          t = Constant <value = bool {1}> ()
          y = Loop (n, t, x) <
            body = loop (int64 i, bool c, int64 acc) => (bool c2, int64 acc2) {
              acc2 = Neg(x)
              inner = If (f) <
                then_branch = tb () => (int64 a) { a = Neg(x) },
                else_branch = eb () => (int64 b) { b = Add(x, x) }
              >
              c2 = Identity(c)
            }
          >
        }
        """
    model, modified = simplify(text)
    assert not modified
    expect(model, text)


# ------------------------------------------------------------------ frontend workflows
def test_module_level_flags_fold_then_the_ifs_vanish() -> None:
    before, tasks = lowered(debug_flags, upto="simplify-control-flow")
    after, _ = lowered(debug_flags, upto="simplify-control-flow")
    assert sum(n.op_type == "If" for n in before.graph) == 2
    assert run_pass("simplify-control-flow", after, tasks=tasks).modified
    assert not [n for n in ir.traversal.RecursiveGraphIterator(after.graph) if n.op_type in ("If", "Task")]
    assert_valid(after)
    LOGGED.clear()
    assert_same_behaviour(before, after, tasks, 4)
    assert run_model(after, tasks, 4) == debug_flags.fn(4) == 5
    assert not LOGGED


def test_pure_calls_on_invariant_values_leave_loops_over_constant_lists() -> None:
    before, tasks = lowered(invariant_calls, upto="simplify-control-flow")
    after, _ = lowered(invariant_calls, upto="simplify-control-flow")
    assert run_pass("simplify-control-flow", after, tasks=tasks).modified
    top = [n.attributes["task"].as_string() for n in after.graph if n.op_type == "Task"]
    assert top == ["cost", "cost"]  # cost(x) out of the Loop, cost(n) out of the Map
    loops = [n for n in after.graph if n.op_type in ("Loop", "Map")]
    assert all(n.op_type != "Task" for loop in loops for n in loop.attributes["body"].as_graph())
    assert_valid(after)
    assert_same_behaviour(before, after, tasks, 2, 3)
    assert run_model(after, tasks, 2, 3) == invariant_calls.fn(2, 3)


def test_loops_that_may_not_run_keep_their_calls_and_empty_fanouts_vanish() -> None:
    before, tasks = lowered(maybe_empty, upto="simplify-control-flow")
    after, _ = lowered(maybe_empty, upto="simplify-control-flow")
    assert run_pass("simplify-control-flow", after, tasks=tasks).modified
    assert [n.op_type for n in after.graph if n.op_type in ("Loop", "Map")] == ["Loop"]
    loop = next(n for n in after.graph if n.op_type == "Loop")
    assert [n.op_type for n in loop.attributes["body"].as_graph()].count("Task") == 1
    assert_valid(after)
    for xs in ([], [1, 2]):
        assert_same_behaviour(before, after, tasks, 3, xs)
        assert run_model(after, tasks, 3, xs) == maybe_empty.fn(3, xs)


@pytest.mark.parametrize("workflow", [debug_flags, invariant_calls, maybe_empty], ids=lambda w: w.name)
def test_full_pipeline_keeps_the_model_valid(workflow: namu.Workflow) -> None:
    model, _ = lowered(workflow)
    assert_valid(model)


def test_is_idempotent() -> None:
    model, tasks = lowered(invariant_calls, upto="simplify-control-flow")
    run_pass("simplify-control-flow", model, tasks=tasks)
    snapshot = canonical(model.graph)
    assert not run_pass("simplify-control-flow", model, tasks=tasks).modified
    assert canonical(model.graph) == snapshot
