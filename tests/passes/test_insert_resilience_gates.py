"""insert-resilience-gates: every call with a policy runs inside a namu.Gate carrying it."""

from __future__ import annotations

import textwrap

import onnx
import onnx_ir as ir
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import namu
from namu.ir.metadata import SPAN_KEY
from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.serde import to_proto
from namu.passes.verify_structure import VerifyStructurePass
from tests.passes.conftest import (
    canonical,
    listing,
    lowered,
    parse,
    run_model,
    run_pass,
)


def _gates(model: ir.Model) -> list[ir.Node]:
    graphs = [model.graph, *(f.graph for f in model.functions.values())]
    return [n for g in graphs for n in ir.traversal.RecursiveGraphIterator(g) if n.op_type == "Gate" and n.domain == NAMU_DOMAIN]


def _expect(after: str, **tasks: object) -> list[str]:
    return canonical(parse(textwrap.dedent(after), **tasks).graph)  # type: ignore[arg-type]


def test_policy_comes_from_the_nodes_attributes() -> None:
    model = parse(
        """
        g (int64 x) => (int64 y) {
          a = namu.Task <task = "fetch", retries = 0, timeout_s = 2.5> (x)
          y = namu.Task <task = "fetch", retries = 0, timeout_s = 0.0> (a)
        }
        """,
        task_options={"fetch": {"retries": 3}},  # the attributes win over the options
    )
    assert run_pass("insert-resilience-gates", model).modified
    assert canonical(model.graph) == _expect(
        """
        g (int64 x) => (int64 y) {
          a = namu.Gate <
            body = gate_a (int64 x_g) => (int64 a_g) { a_g = namu.Task <task = "fetch", retries = 0, timeout_s = 2.5> (x_g) },
            retries = 0, timeout_s = 2.5, backoff_base_s = 0.01, backoff_max_s = 1.0, fallback = ""
          > (x)
          y = namu.Task <task = "fetch", retries = 0, timeout_s = 0.0> (a)
        }
        """
    )


def test_nodes_without_attributes_use_the_task_options_then_the_compile_defaults() -> None:
    text = """
    g (int64 x) => (int64 y) {
      a = namu.Task <task = "own"> (x)
      b = namu.Task <task = "plain"> (a)
      y = namu.Task <task = "back"> (b)
    }
    """
    options = {"own": {"retries": 2}, "plain": {}, "back": {"fallback": "plain"}}
    model = parse(text, task_options=options)
    run_pass("insert-resilience-gates", model)
    assert listing(model.graph) == ["a = namu::Gate(x)", "b = namu::Task(a)", "y = namu::Gate(b)"]
    first, last = _gates(model)
    assert (first.attributes["retries"].as_int(), first.attributes["fallback"].as_string()) == (2, "")
    assert (last.attributes["retries"].as_int(), last.attributes["fallback"].as_string()) == (0, "plain")

    model = parse(text, task_options=options)
    run_pass("insert-resilience-gates", model, retries=1)  # CompileConfig default for unset options
    assert listing(model.graph) == ["a = namu::Gate(x)", "b = namu::Gate(a)", "y = namu::Gate(b)"]
    assert [g.attributes["retries"].as_int() for g in _gates(model)] == [2, 1, 1]


def test_calls_without_policy_stay_bare_and_the_pass_is_idempotent() -> None:
    model = parse('g (int64 x) => (int64 y) { y = namu.Task <task = "t", retries = 0, timeout_s = 0.0> (x) }', impure_tasks=("t",))
    assert not run_pass("insert-resilience-gates", model).modified
    model = parse('g (int64 x) => (int64 y) { y = namu.Task <task = "t", retries = 1, timeout_s = 0.0> (x) }', impure_tasks=("t",))
    assert run_pass("insert-resilience-gates", model).modified
    once = canonical(model.graph)
    assert not run_pass("insert-resilience-gates", model).modified
    assert canonical(model.graph) == once


def test_gates_keep_spans_and_replace_every_use() -> None:
    model = parse(
        """
        g (bool c, int64 x) => (int64 a, int64 z) {
          a = namu.Task <task = "t", retries = 1, timeout_s = 0.0> (x, x)
          z = If (c) <
            then_branch = th () => (int64 r) { r = Add(a, x) },
            else_branch = el () => (int64 s) { s = namu.Task <task = "t", retries = 0, timeout_s = 1.0> (a, x) }
          >
        }
        """,
        impure_tasks=("t",),
    )
    first = model.graph.node(0)
    first.metadata_props[SPAN_KEY] = "/src/wf.py:3:9"
    run_pass("insert-resilience-gates", model)
    VerifyStructurePass()(model)  # names unique, every use defined
    outer, inner = _gates(model)
    assert outer.metadata_props[SPAN_KEY] == "/src/wf.py:3:9"
    assert [v.name for v in outer.inputs] == ["x", "x"]
    body = outer.attributes["body"].as_graph()
    assert [v.name for v in body.inputs] == ["x_g", "x_g_1"] and [v.name for v in body.outputs] == ["a_g"]
    assert model.graph.outputs[0] is outer.outputs[0] and outer.outputs[0].name == "a"
    then_branch = model.graph.node(1).attributes["then_branch"].as_graph()
    assert then_branch.node(0).inputs[0] is outer.outputs[0]  # a capture, rewired too
    assert inner.inputs[0] is outer.outputs[0] and inner.attributes["timeout_s"].as_float() == 1.0


def test_receives_are_gated_only_under_a_wire_timeout() -> None:
    text = """
    g (int64 x) => (int64 y) {
      = namu.Send <channel = "x@gpu", to = "gpu"> (x)
      y = namu.Recv <channel = "x@gpu", from = "local"> ()
    }
    """
    model = parse(text)
    assert not run_pass("insert-resilience-gates", model).modified
    model = parse(text)
    run_pass("insert-resilience-gates", model, wire_timeout_s=4.0)
    assert canonical(model.graph) == _expect(
        """
        g (int64 x) => (int64 y) {
          = namu.Send <channel = "x@gpu", to = "gpu"> (x)
          y = namu.Gate <
            body = gate_y () => (int64 y_g) { y_g = namu.Recv <channel = "x@gpu", from = "local"> () },
            retries = 0, timeout_s = 4.0, backoff_base_s = 0.01, backoff_max_s = 1.0, fallback = ""
          > ()
        }
        """
    )


def test_functions_and_fan_out_bodies_are_gated() -> None:
    model = parse(
        """
        g (seq(int64) xs) => (seq(int64) ys) {
          ys = namu.Map (xs) <body = b (int64 item) => (int64 out) { out = namu.Task <task = "t", retries = 2, timeout_s = 0.0> (item) }>
        }
        <domain: "namu.workflow", opset_import: ["" : 21, "namu" : 1]>
        f (v) => (w) { w = namu.Task <task = "t", retries = 2, timeout_s = 0.0> (v) }
        """,
        impure_tasks=("t",),
    )
    assert run_pass("insert-resilience-gates", model).modified
    assert len(_gates(model)) == 2
    names = [v.name for n in ir.traversal.RecursiveGraphIterator(model.graph) for v in n.outputs]
    names += [v.name for f in model.functions.values() for n in ir.traversal.RecursiveGraphIterator(f) for v in n.outputs]
    assert sorted(names) == ["out", "out_g", "w", "w_g", "ys"]
    assert sorted(v.name for gate in _gates(model) for v in gate.attributes["body"].as_graph().inputs) == ["item_g", "v_g"]


def test_an_unknown_fallback_is_a_compile_error_at_the_call() -> None:
    model = parse('g (int64 x) => (int64 y) { y = namu.Task <task = "t"> (x) }', task_options={"t": {"fallback": "ghost"}})
    model.graph.node(0).metadata_props[SPAN_KEY] = "/src/wf.py:9:5"
    with pytest.raises(namu.CompileError, match=r"^/src/wf.py:9:5: the fallback 'ghost' of task 't' is not in the task table"):
        run_pass("insert-resilience-gates", model)


def test_lowered_workflows_keep_their_meaning_and_pass_the_onnx_checker() -> None:
    failures = {"left": 1}

    @namu.task(retries=2)
    def flaky(x: int) -> int:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("again")
        return x + 1

    @namu.task
    def plain(x: int) -> int:
        return 2 * x

    @namu.workflow
    def wf(n: int) -> list[int]:
        return [plain(flaky(i)) for i in [n, n + 1]]

    model, tasks = lowered(wf, upto="plan-lifetimes")
    (gate,) = _gates(model)
    assert gate.attributes["retries"].as_int() == 2
    onnx.checker.check_model(to_proto(model), full_check=True)
    for executor in ("kernel", "reference"):
        failures["left"] = 1
        assert run_model(model, tasks, 3, executor=executor) == [8, 10]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from([0.0, 1.5]), st.booleans()), min_size=1, max_size=6))
def test_exactly_the_calls_with_a_policy_are_gated(calls: list[tuple[int, float, bool]]) -> None:
    lines, options = [], {"backup": {}}
    previous = "x"
    for i, (retries, timeout_s, fallback) in enumerate(calls):
        lines.append(f'v{i} = namu.Task <task = "t{i}", retries = {retries}, timeout_s = {timeout_s}> ({previous}, x)')
        options[f"t{i}"] = {"fallback": "backup"} if fallback else {}
        previous = f"v{i}"
    model = parse(f"g (int64 x) => (int64 {previous}) {{ {' '.join(lines)} }}", task_options=options)
    run_pass("insert-resilience-gates", model)
    VerifyStructurePass()(model)
    gated = [node.op_type == "Gate" for node in model.graph]
    assert gated == [r > 0 or t > 0 or f for r, t, f in calls]
    for gate in _gates(model):
        body = gate.attributes["body"].as_graph()
        (inner,) = list(body)
        assert list(inner.inputs) == list(body.inputs) and list(inner.outputs) == list(body.outputs)
        assert gate.attributes["retries"].as_int() == inner.attributes["retries"].as_int()
        assert gate.inputs[1].name == "x"
    assert model.graph.outputs[0].name == previous
