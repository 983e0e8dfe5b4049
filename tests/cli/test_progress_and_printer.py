"""In-process tests of the CLI's building blocks: the progress bar (run hooks) and the IR printer."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

import namu
from namu.ir.printer import count_nodes, format_graph, format_node
from namu.ir.serde import from_proto
from namu.runtime.hooks import TaskCall
from namu.runtime.progress import ProgressHooks


@namu.task
def items(n: int) -> list[int]:
    return list(range(n))


@namu.task(on_error="skip")
def square(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x * x


@namu.task
def total(xs: list[int]) -> int:
    return sum(xs)


@namu.workflow
def squares(n: int = 5) -> int:
    xs = items(n)
    ys = [square(x) for x in xs]
    zs = [square(y) for y in ys]
    return total(zs)


@namu.workflow
def halve(n: int) -> int:
    while n > 1:
        n = n // 2
    return n


@namu.workflow
def mixed(n: int = 3, label: str = 'say "hi"') -> tuple[int, float, str]:
    h = halve(n)
    f = n / 2
    return h, f, label


@pytest.mark.parametrize("executor", ["kernel", "reference"])
def test_progress_counts_grow_with_fanouts(executor: str) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, force_interactive=True, width=100)
    with ProgressHooks("squares", console=console) as progress:
        result = squares.run(n=5, executor=executor, hooks=progress)
    assert result.value == sum(x**4 for x in range(5) if x != 3)
    assert len(result.skipped) == 1
    # two fan-outs: 5 items, then the 4 that survived the skip; every item finishes
    assert (progress.total, progress.completed) == (9, 9)
    # items (1) + 5 squares + 4 squares (item 3 was skipped) + total (1)
    assert progress.tasks_done == 11
    assert out.getvalue()  # drawn on a terminal


def test_progress_writes_nothing_off_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False)
    with ProgressHooks("squares", console=console) as progress:
        squares.run(n=4, executor="reference", hooks=progress)
    assert not progress.enabled
    assert progress.tasks_done == 1 + 4 + 3 + 1
    assert out.getvalue() == ""


def test_progress_counts_items_not_tasks() -> None:
    progress = ProgressHooks("x", console=Console(file=io.StringIO(), force_terminal=False))
    progress.on_task_end(TaskCall("a", "m:a", "wf.py:1:1"), "run")
    progress.on_task_error(TaskCall("b", "m:b", "wf.py:2:1"), ValueError("b"))
    assert (progress.completed, progress.total, progress.tasks_done) == (0, 0, 2)
    progress.on_fanout(3)
    progress.on_item_done()
    assert (progress.completed, progress.total) == (1, 3)


def test_format_graph_listing() -> None:
    model = from_proto(namu.compile(squares).to_proto())
    text = format_graph(model)
    lines = text.splitlines()
    assert lines[0] == "graph squares(%n: int):"
    assert lines[-1].startswith("  return %")
    task_lines = [ln for ln in lines if "namu.Task[task=" in ln]
    assert len(task_lines) == 4
    assert task_lines[0].startswith("  %items = namu.Task[task=items](%n)")
    assert task_lines[0].rstrip().endswith("# test_progress_and_printer.py:36:10")
    assert any(ln.startswith("    body(%x: int):") for ln in lines)
    assert any(ln.startswith("      %square = namu.Task[task=square](%x)") for ln in lines)
    # comments line up in one column
    columns = {ln.index("# ") for ln in lines if "# " in ln}
    assert len(columns) == 1
    assert count_nodes(model) == sum(1 for ln in lines if " = " in ln or ln.strip().startswith("namu."))


def test_format_graph_constants_loops_and_functions() -> None:
    art = namu.compile(mixed, passes=["verify-structure"])  # keep the sub-workflow function
    model = from_proto(art.to_proto())
    text = format_graph(model)
    assert "= namu.workflow.halve(%n)" in text
    assert "\nfunction namu.workflow.halve(%" in text
    assert "= Constant(2)" in text
    assert "Loop(_, %" in text  # a while loop has no trip count
    assert "    body(%iter_num: int, %cond_in: bool, " in text
    assert "= namu.Arith[op=truediv](%n, %const)" in text
    inlined = format_graph(from_proto(namu.compile(mixed).to_proto()))
    assert "function " not in inlined
    assert " via test_progress_and_printer.py:" in inlined  # inlined nodes name the call site


def test_format_graph_string_constants_are_quoted() -> None:
    import onnx_ir as ir
    import numpy as np

    tensor = ir.StringTensor(np.array([b'a "quoted"\nline'], dtype=object).reshape(()), shape=ir.Shape([]))
    node = ir.Node("", "Constant", [], attributes=[ir.AttrTensor("value", tensor)], num_outputs=1)
    node.outputs[0].name = "s"
    assert format_node(node) == '%s = Constant("a \\"quoted\\"\\nline")'
    floats = ir.Node("", "Constant", [], attributes=[ir.AttrTensor("value", ir.tensor(np.array(0.5)))], num_outputs=1)
    floats.outputs[0].name = "f"
    assert format_node(floats) == "%f = Constant(0.5)"
    flag = ir.Node("", "Constant", [], attributes=[ir.AttrTensor("value", ir.tensor(np.array(True)))], num_outputs=1)
    flag.outputs[0].name = "b"
    assert format_node(flag) == "%b = Constant(True)"
