"""Regressions from the QA report (issue 9): the cached compile of ``wf(...)`` follows the
names the workflow reads; deep chains of sub-workflows compile; task defaults keep
Python's meaning.

(The rejections of the same report -- a local name shadowing a task, a mutable default
of a workflow parameter -- are in ``test_rejections.py``.)
"""

from __future__ import annotations

import importlib
import sys
import textwrap
import types
from pathlib import Path

import pytest

import namu
from tests.frontend.wf_samples import AVAILABLE_EXECUTORS, EXECUTOR_PARAMS, add, plain, run_both


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``make_module(name, source)``: write ``source`` as ``<name>.py`` in a temporary
    directory and import it (namu reads a workflow's source from its file)."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(name: str, source: str) -> types.ModuleType:
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        monkeypatch.delitem(sys.modules, name, raising=False)
        module = importlib.import_module(name)
        monkeypatch.setitem(sys.modules, name, module)
        return module

    return make


def run_cell(module: types.ModuleType, source: str) -> None:
    """Run ``source`` in ``module``'s namespace, as a notebook re-running a cell does (the
    cell's code comes from a file of its own, as IPython registers each cell's source)."""
    folder = Path(module.__file__).parent
    path = folder / f"cell_{len(list(folder.glob('cell_*.py')))}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), module.__dict__)  # noqa: S102


# ------------------------------------------------------------------ 7: stale compile cache
SCALED = """
    import namu

    SCALE = 2

    @namu.task
    def f(a: int) -> int:
        return a + 1

    @namu.workflow
    def wf(n: int) -> int:
        return f(n) * SCALE
"""


@pytest.mark.parametrize("executor", EXECUTOR_PARAMS)
def test_call_follows_a_redefined_task_and_a_rebound_constant(make_module, executor):
    m = make_module("qa_scaled", SCALED)
    assert m.wf.run(n=3, executor=executor).value == m.wf.fn(n=3) == 8
    run_cell(m, """
        @namu.task
        def f(a: int) -> int:
            return a + 100
    """)
    assert m.wf.run(n=3, executor=executor).value == m.wf.fn(n=3) == 206
    m.SCALE = 10
    assert m.wf.run(n=3, executor=executor).value == m.wf.fn(n=3) == 1030
    assert m.wf(n=3) == namu.compile(m.wf)(n=3) == 1030


def test_call_reuses_the_compile_while_nothing_it_read_changed(make_module):
    m = make_module("qa_unchanged", SCALED)
    art = m.wf.compile()
    assert m.wf(n=1) == 4
    m.UNRELATED = [1, 2, 3]  # a global the workflow does not read
    m.SCALE = 2  # rebound to an equal value
    assert m.wf.compile() is art


@pytest.mark.parametrize("executor", EXECUTOR_PARAMS)
def test_call_follows_a_module_list_mutated_in_place(make_module, executor):
    m = make_module("qa_table", """
        import namu

        WEIGHTS = [1, 2]
        OPTIONS = {"bias": 5}

        @namu.task
        def total(xs: list[int], bias: int) -> int:
            return sum(xs) + bias

        @namu.workflow
        def wf() -> int:
            return total(WEIGHTS, OPTIONS["bias"])
    """)
    assert m.wf.run(executor=executor).value == m.wf.fn() == 8
    m.WEIGHTS.append(10)
    assert m.wf.run(executor=executor).value == m.wf.fn() == 18
    m.OPTIONS["bias"] = 0
    assert m.wf.run(executor=executor).value == m.wf.fn() == 13


@pytest.mark.parametrize("executor", EXECUTOR_PARAMS)
def test_call_follows_a_redefined_sub_workflow_and_its_tasks(make_module, executor):
    m = make_module("qa_nested", """
        import namu

        @namu.task
        def inc(a: int) -> int:
            return a + 1

        @namu.workflow
        def inner(x: int) -> int:
            return inc(x)

        @namu.workflow
        def outer(x: int) -> int:
            return inner(x) * 2
    """)
    assert m.outer.run(x=1, executor=executor).value == plain(m.outer, x=1) == 4
    run_cell(m, """
        @namu.task
        def inc(a: int) -> int:
            return a + 10
    """)
    assert m.outer.run(x=1, executor=executor).value == plain(m.outer, x=1) == 22
    run_cell(m, """
        @namu.workflow
        def inner(x: int) -> int:
            return inc(inc(x))
    """)
    assert m.outer.run(x=1, executor=executor).value == plain(m.outer, x=1) == 42


@pytest.mark.parametrize("executor", EXECUTOR_PARAMS)
def test_call_follows_tasks_reached_through_attributes_and_closures(make_module, executor):
    m = make_module("qa_paths", """
        import types
        import namu

        @namu.task
        def one(a: int) -> int:
            return a + 1

        @namu.task
        def two(a: int) -> int:
            return a + 2

        ops = types.SimpleNamespace(step=one)

        def build():
            impl = one

            @namu.workflow
            def wf(x: int) -> int:
                return ops.step(impl(x))

            def rebind(task):
                nonlocal impl
                impl = task

            return wf, rebind
    """)
    wf, rebind = m.build()
    assert wf.run(x=0, executor=executor).value == 2
    m.ops.step = m.two
    assert wf.run(x=0, executor=executor).value == 3
    rebind(m.two)
    assert wf.run(x=0, executor=executor).value == 4


def test_call_follows_a_global_that_now_shadows_a_builtin(make_module):
    m = make_module("qa_builtin", """
        import namu

        @namu.workflow
        def wf(xs: list[int]) -> int:
            return len(xs)
    """)
    assert m.wf(xs=[1, 2, 3]) == 3
    run_cell(m, """
        @namu.task
        def len(xs: list[int]) -> int:
            return -1
    """)
    assert m.wf(xs=[1, 2, 3]) == m.wf.fn(xs=[1, 2, 3]) == -1


# ------------------------------------------------------------------ 15: deep sub-workflow chains
def chain_source(depth: int, *, inline: bool = True) -> str:
    """``w0`` calls a task; each ``w<i>`` calls ``w<i-1>``: ``depth`` nested sub-workflows."""
    decorator = "@namu.workflow" if inline else "@namu.workflow(inline=False)"
    lines = [
        "import namu",
        "@namu.task",
        "def inc(a: int) -> int:",
        "    return a + 1",
        decorator,
        "def w0(x: int) -> int:",
        "    return inc(x)",
    ]
    for i in range(1, depth + 1):
        lines += [decorator, f"def w{i}(x: int) -> int:", f"    return w{i - 1}(inc(x))"]
    return "\n".join(lines) + "\n"


def test_a_chain_of_300_sub_workflows_compiles_and_runs(make_module):
    m = make_module("qa_chain", chain_source(300))
    top = m.w300
    assert plain(top, x=0) == 301
    assert run_both(top, x=0).value == 301  # kernel, reference, and -O0
    assert top(x=0) == 301
    assert [v.name for v in top.compile().model.graph.inputs] == ["x"]  # not the callees' `x_300`


def test_a_chain_of_1000_sub_workflows_compiles(make_module):
    m = make_module("qa_chain_1000", chain_source(1000))
    art = namu.compile(m.w1000)
    assert art.run(x=0, executor="reference").value == 1001


@pytest.mark.skipif("kernel" not in AVAILABLE_EXECUTORS, reason="namu._kernel is not built")
def test_a_chain_of_300_sub_workflow_functions_compiles(make_module):
    """``inline=False``: 300 functions, each calling the next (the passes that analyse a
    function once per call chain take them callees first)."""
    m = make_module("qa_function_chain", chain_source(300, inline=False))
    art = namu.compile(m.w300)
    assert len(art.model.functions) == 300  # w0 ... w299; w300 is the main graph
    assert art.run(x=0, executor="kernel").value == 301
    # The executors prepare each function once, callees first, when its call first runs
    # (the reference) or before the run (the kernel): no recursion down the chain.
    assert art.run(x=0, executor="reference").value == 301


@pytest.mark.skipif("kernel" not in AVAILABLE_EXECUTORS, reason="namu._kernel is not built")
def test_the_kernel_runs_a_chain_of_600_sub_workflow_functions(make_module):
    m = make_module("qa_function_chain_600", chain_source(600, inline=False))
    assert namu.compile(m.w600).run(x=0, executor="kernel").value == 601


def nested_chain_source(depth: int) -> str:
    """Like :func:`chain_source`, but each call sits in an ``if``: after inlining, the
    graphs nest ``depth`` deep."""
    lines = [
        "import namu",
        "@namu.task",
        "def inc(a: int) -> int:",
        "    return a + 1",
        "@namu.workflow",
        "def w0(x: int) -> int:",
        "    return inc(x)",
    ]
    for i in range(1, depth + 1):
        lines += [
            "@namu.workflow",
            f"def w{i}(x: int) -> int:",
            "    if x >= 0:",
            f"        return w{i - 1}(inc(x))",
            "    return x",
        ]
    return "\n".join(lines) + "\n"


def test_control_flow_nested_24_deep_through_sub_workflows_runs_and_loads(make_module, tmp_path):
    m = make_module("qa_nested_24", nested_chain_source(24))
    assert run_both(m.w24, x=0).value == plain(m.w24, x=0) == 25  # run_both runs ONNX's checker
    m.w24.compile().save(tmp_path / "nested.onnx")
    assert namu.load(tmp_path / "nested.onnx")(x=0) == 25


def test_control_flow_nested_deeper_than_24_is_rejected_at_the_call(make_module):
    """Deeper graphs would make an artifact ONNX cannot load (protobuf's nesting limit)."""
    m = make_module("qa_nested_300", nested_chain_source(300))
    with pytest.raises(namu.WorkflowSyntaxError) as info:
        namu.compile(m.w300)
    err = info.value
    # w25's call of w24 is the first to nest 25 deep: reported there, in its file
    lines = Path(m.__file__).read_text(encoding="utf-8").splitlines()
    line = lines.index("def w25(x: int) -> int:") + 3
    assert (err.filename, err.lineno, err.col_offset) == (m.__file__, line, lines[line - 1].index("w24("))
    assert "nested more than 24 levels deep" in err.reason and "inline=False" in err.reason


def test_control_flow_nested_deeper_than_24_in_one_workflow_is_rejected(make_module):
    body = [f"{'    ' * (i + 1)}if x > {i}:" for i in range(25)] + [f"{'    ' * 26}x = inc(x)", "    return x"]
    m = make_module("qa_nested_ifs", "\n".join([
        "import namu",
        "@namu.task",
        "def inc(a: int) -> int:",
        "    return a + 1",
        "@namu.workflow",
        "def wf(x: int) -> int:",
        *body,
    ]) + "\n")
    with pytest.raises(namu.WorkflowSyntaxError) as info:
        namu.compile(m.wf)
    assert (info.value.lineno, info.value.col_offset) == (7 + 25, 26 * 4 + len("x = "))
    assert "nested more than 24 levels deep" in info.value.reason


# ------------------------------------------------------------------ 17: defaults
def test_immutable_defaults_of_workflow_parameters_are_allowed():
    @namu.workflow
    def wf(x: int, pair: tuple = (1, (2, "b")), label: str = "n", scale: float = 0.5, flag: bool = True, missing: int | None = None):
        return add(x, pair[0]), pair, label, scale, flag, missing is None

    assert run_both(wf, 3).value == plain(wf, 3) == (4, (1, (2, "b")), "n", 0.5, True, True)



@pytest.mark.parametrize("executor", AVAILABLE_EXECUTORS)
def test_a_task_mutable_default_is_shared_between_calls_as_in_python(make_module, executor):
    """A task's own default is Python's: the task function is called with the arguments
    the workflow passes, so its default list is the one Python shares between calls."""
    m = make_module("qa_task_default", """
        import namu

        @namu.task
        def collect(x: int, seen: list = []) -> int:
            seen.append(x)
            return len(seen)

        @namu.workflow
        def wf(x: int) -> tuple:
            a = collect(x)
            b = collect(a)
            return a, b
    """)
    seen = m.collect.fn.__defaults__[0]
    expected = plain(m.wf, x=7)
    assert expected == (1, 2) and seen == [7, 1]
    seen.clear()
    assert m.wf.run(x=7, executor=executor).value == expected
    assert seen == [7, 1]
    assert m.wf.run(x=7, executor=executor).value == (3, 4)  # the list lives on, as in Python
