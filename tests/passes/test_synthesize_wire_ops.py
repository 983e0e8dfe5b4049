"""synthesize-wire-ops: one Send/Recv pair per (value, destination placement) on every
edge between placements; readers rewired; behaviour unchanged."""

from __future__ import annotations

import pytest

import namu
from namu.ir.metadata import PLACEMENT_KEY, SPAN_KEY
from namu.ir.types import type_of
from tests.passes.conftest import canonical, lowered, parse, run_model, run_pass

EXECUTORS = ("kernel", "reference")


def after(text: str, **task_options: dict) -> list[str]:
    """``text`` through infer-placement and synthesize-wire-ops, as canonical lines."""
    model = parse(text, task_options=task_options)
    run_pass("infer-placement", model)
    run_pass("synthesize-wire-ops", model)
    return canonical(model.graph)


def expected(text: str) -> list[str]:
    return canonical(parse(text).graph)


def test_one_pair_per_value_and_destination() -> None:
    got = after(
        """
        g (int64 x) => (int64 y) {
          e = namu.Task <task = "embed"> (x)
          a = namu.Task <task = "score"> (e)
          b = namu.Task <task = "score"> (e)
          c = namu.Task <task = "rank"> (e)
          d = namu.Task <task = "rank"> (a, b)
          y = Add(c, d)
        }""",
        embed={"placement": "gpu"},
        score={"placement": "tpu"},
        rank={},
    )
    assert got == expected(
        """
        g (int64 x) => (int64 y) {
          = namu.Send <channel = "x@gpu", to = "gpu"> (x)
          x_gpu = namu.Recv <channel = "x@gpu", from = "local"> ()
          e = namu.Task <task = "embed"> (x_gpu)
          = namu.Send <channel = "e@tpu", to = "tpu"> (e)
          = namu.Send <channel = "e@local", to = "local"> (e)
          e_tpu = namu.Recv <channel = "e@tpu", from = "gpu"> ()
          a = namu.Task <task = "score"> (e_tpu)
          = namu.Send <channel = "a@local", to = "local"> (a)
          b = namu.Task <task = "score"> (e_tpu)
          = namu.Send <channel = "b@local", to = "local"> (b)
          e_local = namu.Recv <channel = "e@local", from = "gpu"> ()
          c = namu.Task <task = "rank"> (e_local)
          a_local = namu.Recv <channel = "a@local", from = "tpu"> ()
          b_local = namu.Recv <channel = "b@local", from = "tpu"> ()
          d = namu.Task <task = "rank"> (a_local, b_local)
          y = Add(c, d)
        }"""
    )


def test_outputs_come_home_and_keep_their_names() -> None:
    got = after(
        """
        g (int64 x) => (int64 y, int64 z) {
          y = namu.Task <task = "embed"> (x)
          z = Neg(y)
        }""",
        embed={"placement": "gpu"},
    )
    assert got == expected(
        """
        g (int64 x) => (int64 y, int64 z) {
          = namu.Send <channel = "x@gpu", to = "gpu"> (x)
          x_gpu = namu.Recv <channel = "x@gpu", from = "local"> ()
          y_gpu = namu.Task <task = "embed"> (x_gpu)
          = namu.Send <channel = "y@local", to = "local"> (y_gpu)
          y = namu.Recv <channel = "y@local", from = "gpu"> ()
          z = Neg(y)
        }"""
    )


def test_values_captured_by_a_body_are_received_before_its_op() -> None:
    got = after(
        """
        g (seq(int64) xs, int64 k) => (seq(int64) ys) {
          ys = namu.Map (xs) <body = b (int64 i) => (int64 o) {
            s = Add(i, k)
            o = namu.Task <task = "embed"> (s)
          }>
        }""",
        embed={"placement": "gpu"},
    )
    assert got == expected(
        """
        g (seq(int64) xs, int64 k) => (seq(int64) ys) {
          = namu.Send <channel = "xs@gpu", to = "gpu"> (xs)
          = namu.Send <channel = "k@gpu", to = "gpu"> (k)
          xs_gpu = namu.Recv <channel = "xs@gpu", from = "local"> ()
          k_gpu = namu.Recv <channel = "k@gpu", from = "local"> ()
          ys_gpu = namu.Map (xs_gpu) <body = b (int64 i) => (int64 o) {
            s = Add(i, k_gpu)
            o = namu.Task <task = "embed"> (s)
          }>
          = namu.Send <channel = "ys@local", to = "local"> (ys_gpu)
          ys = namu.Recv <channel = "ys@local", from = "gpu"> ()
        }"""
    )


def test_wire_ops_are_typed_placed_and_located() -> None:
    model = parse(
        """
        g (string x) => (int64 y) {
          e = namu.Task <task = "embed"> (x)
          y = namu.Task <task = "rank"> (e)
        }""",
        task_options={"embed": {"placement": "gpu"}, "rank": {}},
    )
    run_pass("infer-placement", model)
    for node in model.graph:
        node.metadata_props[SPAN_KEY] = f"/wf.py:{node.outputs[0].name}:1"
    run_pass("synthesize-wire-ops", model)
    ops = {n.name: n for n in model.graph}
    send_x, recv_x = ops["send_x@gpu"], ops["recv_x@gpu"]
    assert (send_x.metadata_props[PLACEMENT_KEY], recv_x.metadata_props[PLACEMENT_KEY]) == ("local", "gpu")
    assert recv_x.metadata_props[SPAN_KEY] == "/wf.py:e:1"  # the first reader's line
    assert ops["send_e@local"].metadata_props[SPAN_KEY] == "/wf.py:e:1"  # the producer's line
    assert str(type_of(recv_x.outputs[0])) == "str"


def test_single_placement_and_second_runs_change_nothing() -> None:
    model = parse("g (int64 x) => (int64 y) { y = namu.Task <task = \"rank\"> (x) }", impure_tasks=("rank",))
    assert not run_pass("synthesize-wire-ops", model).modified
    model = parse(
        "g (int64 x) => (int64 y) { e = namu.Task <task = \"embed\"> (x)  y = Neg(e) }",
        task_options={"embed": {"placement": "gpu"}},
    )
    assert run_pass("synthesize-wire-ops", model).modified
    first = canonical(model.graph)
    assert not run_pass("synthesize-wire-ops", model).modified
    assert canonical(model.graph) == first


@namu.task(placement="gpu")
def embed(x: int) -> int:
    return x * 10


@namu.task
def rank(a: int, b: int) -> int:
    return a - b


@namu.workflow
def scatter(xs: list[int], k: int) -> tuple[int, list[int]]:
    ys = [embed(x + k) for x in xs]
    top = rank(embed(k), len(ys))
    return top, ys


@pytest.mark.parametrize("executor", EXECUTORS)
def test_behaviour_is_unchanged(executor: str) -> None:
    model, tasks = lowered(scatter, upto="synthesize-wire-ops")
    before = run_model(model, tasks, [1, 2, 3], 5, executor=executor)
    assert run_pass("synthesize-wire-ops", model, tasks=tasks).modified
    assert any(n.op_type == "Recv" for n in model.graph)
    assert run_model(model, tasks, [1, 2, 3], 5, executor=executor) == before == scatter.fn([1, 2, 3], 5)
