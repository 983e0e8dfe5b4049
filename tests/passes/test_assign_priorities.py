"""assign-priorities: every node's critical-path rank, and the kernel runs the critical
path first where work overlaps (and keeps source order elsewhere)."""

from __future__ import annotations

import asyncio
import textwrap

import onnx_ir as ir
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import namu
from namu.ir.metadata import PRIORITY_KEY
from namu.passes.assign_priorities import AssignPrioritiesPass
from namu.runtime.executors import KernelExecutor
from tests.passes.conftest import parse, run_pass


def _ranks(graph: ir.Graph) -> dict[str, int]:
    return {(n.outputs[0].name if n.outputs else n.op_type): int(n.metadata_props[PRIORITY_KEY]) for n in graph}


def test_the_example_ranks_the_longest_chain_first() -> None:
    example = AssignPrioritiesPass.EXAMPLE
    model = parse(textwrap.dedent(example.before), impure_tasks=example.impure_tasks)
    assert run_pass("assign-priorities", model).modified
    assert _ranks(model.graph) == {"a": 1, "b": 3, "c": 2, "d": 1, "y": 0}
    assert not run_pass("assign-priorities", model).modified  # idempotent


def test_a_tasks_priority_biases_its_calls() -> None:
    model = parse(
        """
        g (int64 x) => (int64 y) {
          a = namu.Task <task = "urgent", priority = 5> (x)
          b = namu.Task <task = "step"> (x)
          c = namu.Task <task = "step"> (b)
          y = Add(a, c)
        }
        """,
        task_options={"step": {"priority": -1}},  # used where the node has no attribute
    )
    run_pass("assign-priorities", model)
    assert _ranks(model.graph) == {"a": 6, "b": 0, "c": 0, "y": 0}


def test_bodies_rank_within_the_whole_path_and_cost_their_critical_path() -> None:
    model = parse(
        """
        g (bool c, int64 x) => (int64 z) {
          y = If (c) <
            then_branch = th () => (int64 r) { t = namu.Task <task = "s"> (x)  r = namu.Task <task = "s"> (t) },
            else_branch = el () => (int64 e) { e = Identity(x) }
          >
          z = namu.Task <task = "s"> (y)
          xs = SequenceConstruct(x, x)
          w = namu.Map (xs) <body = b (int64 item) => () { = namu.Task <task = "s"> (item) }>
        }
        """,
        impure_tasks=("s",),
    )
    run_pass("assign-priorities", model)
    assert _ranks(model.graph)["y"] == 3  # two calls in the then-branch, then z
    if_node = model.graph.node(0)
    assert _ranks(if_node.attributes["then_branch"].as_graph()) == {"t": 3, "r": 2}  # plus z below
    assert _ranks(if_node.attributes["else_branch"].as_graph()) == {"e": 1}
    assert _ranks(model.graph)["w"] == 1  # one iteration's critical path


def test_fused_nodes_cost_all_their_calls_and_functions_their_body() -> None:
    model = parse(
        """
        g (int64 x) => (int64 y) {
          f = namu.Fused (x) <body = fb (int64 i) => (int64 o) { p = namu.Task <task = "s"> (i)  o = namu.Task <task = "s"> (i) }>
          y = namu.workflow.sub(f)
        }
        <domain: "namu.workflow", opset_import: ["" : 21, "namu" : 1]>
        sub (v) => (w) { u = namu.Task <task = "s"> (v)  w = namu.Task <task = "s"> (u) }
        """,
        impure_tasks=("s",),
    )
    run_pass("assign-priorities", model)
    assert _ranks(model.graph) == {"f": 4, "y": 2}
    (function,) = model.functions.values()
    assert _ranks(function.graph) == {"u": 2, "w": 1}


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_ranks_are_cost_plus_the_highest_consumer(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 10))
    lines, values = [], ["x"]
    for i in range(n):
        args = data.draw(st.lists(st.sampled_from(values), min_size=1, max_size=3))
        op = data.draw(st.sampled_from(['namu.Task <task = "s">', "Identity"]))
        if op == "Identity":
            args = args[:1]
        lines.append(f"v{i} = {op} ({', '.join(args)})")
        values.append(f"v{i}")
    model = parse(f"g (int64 x) => (int64 v{n - 1}) {{ {' '.join(lines)} }}", impure_tasks=("s",))
    run_pass("assign-priorities", model)
    nodes = list(model.graph)
    for node in nodes:
        cost = 1 if node.op_type == "Task" else 0
        below = [int(u.metadata_props[PRIORITY_KEY]) for out in node.outputs for u, _ in out.uses()]
        assert int(node.metadata_props[PRIORITY_KEY]) == cost + max(below, default=0)


# ---------------------------------------------------------------------- the kernel's ready queue
def _chain_and_shorts(starts: list[str]) -> namu.Workflow:
    @namu.task
    async def short(i: int) -> int:
        starts.append(f"short{i}")
        await asyncio.sleep(0)
        return i

    @namu.task
    async def link(x: int) -> int:
        starts.append(f"link{x}")
        await asyncio.sleep(0)
        return x + 1

    @namu.workflow
    def wf(x: int) -> int:
        a = short(1)
        b = short(2)
        c = short(3)
        y = link(x)
        y = link(y)
        y = link(y)
        y = link(y)
        return a + b + c + y

    return wf


def test_async_runs_start_the_critical_path_first() -> None:
    starts: list[str] = []
    wf = _chain_and_shorts(starts)
    art = namu.compile(wf)
    assert art.run(0, max_concurrency=1).value == 10
    assert starts[0] == "link0"  # the head of the 4-call chain, before three 1-call tasks
    assert sorted(starts) == ["link0", "link1", "link2", "link3", "short1", "short2", "short3"]

    starts.clear()
    art = namu.compile(wf, disable=["assign-priorities"])
    assert art.run(0, max_concurrency=1).value == 10
    assert starts[:4] == ["short1", "short2", "short3", "link0"]  # source order


def test_inline_runs_keep_program_order() -> None:
    order: list[str] = []

    @namu.task
    def log(tag: str) -> int:
        order.append(tag)
        return len(tag)

    @namu.task
    def step(x: int) -> int:
        order.append(f"step{x}")
        return x + 1

    @namu.workflow
    def wf(x: int) -> int:
        a = log("first")
        y = step(step(step(x)))
        return a + y

    art = namu.compile(wf)
    assert any(PRIORITY_KEY in n.metadata_props for n in art.model.graph)
    art.run(0, executor="kernel")
    assert order == ["first", "step0", "step1", "step2"]


@pytest.mark.parametrize(
    ("text", "uses_priorities"),
    [
        # two async calls can overlap: ranks apply
        ('g (int64 x) => (int64 y) { a = namu.Task <task = "aio"> (x)  y = namu.Task <task = "aio"> (a) }', True),
        # inline calls only: source order
        ('g (int64 x) => (int64 y) { a = namu.Task <task = "sync"> (x)  y = namu.Task <task = "sync"> (a) }', False),
        # a receive: source order even with async calls
        (
            (
                'g (int64 x) => (int64 y) { a = namu.Task <task = "aio"> (x)  '
                'y = namu.Recv <channel = "c", from = "p"> () }'
            ),
            False,
        ),
    ],
)
def test_plans_get_priorities_only_where_work_overlaps(text: str, uses_priorities: bool) -> None:
    async def aio(x: int) -> int:
        return x

    def sync(x: int) -> int:
        return x

    model = parse(text, impure_tasks=("aio", "sync"))
    run_pass("assign-priorities", model)
    from namu.runtime.tasks import TaskBinding

    table = {
        "aio": TaskBinding("aio", "aio", aio, namu.ir.metadata.TaskOptions(), True),
        "sync": TaskBinding("sync", "sync", sync, namu.ir.metadata.TaskOptions(), False),
    }
    plan = KernelExecutor(table).plan(model.graph, list(model.graph.inputs), ())
    assert plan.prioritized is uses_priorities
