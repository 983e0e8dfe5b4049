"""expand-defaults: every task call carries its options; the task's own win over the compile's."""

from __future__ import annotations

import textwrap
from typing import Any

import onnx
import onnx_ir as ir
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import namu
from namu.ir import metadata
from namu.ir.metadata import TaskOptions
from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.serde import to_proto
from namu.passes import CompileConfig
from namu.passes.expand_defaults import task_defaults
from tests.conftest import run_both
from tests.passes.conftest import canonical, lowered, parse, run_model, run_pass

OPTION_NAMES = ("retries", "timeout_s", "cache", "priority", "placement")


def _options(node: ir.Node) -> dict[str, Any]:
    return {name: node.attributes[name].value for name in OPTION_NAMES}


def _task_nodes(model: ir.Model) -> list[ir.Node]:
    graphs = [model.graph, *model.functions.values()]
    return [
        n for g in graphs for n in ir.traversal.RecursiveGraphIterator(g) if (n.domain, n.op_type) == (NAMU_DOMAIN, "Task")
    ]


def test_the_compile_defaults_fill_tasks_without_options() -> None:
    model = parse('g (int64 x) => (int64 y) { y = namu.Task <task = "t"> (x) }', impure_tasks=("t",))
    assert run_pass("expand-defaults", model, retries=3, timeout_s=1.5, cache=True, priority=7, placement="pool").modified
    assert _options(next(iter(model.graph))) == {
        "retries": 3, "timeout_s": 1.5, "cache": 1, "priority": 7, "placement": "pool",
    }


def test_without_a_config_the_defaults_mean_no_retries_no_limit_local() -> None:
    model = parse('g (int64 x) => (int64 y) { y = namu.Task <task = "t"> (x) }', impure_tasks=("t",))
    run_pass("expand-defaults", model)
    assert _options(next(iter(model.graph))) == {
        "retries": 0, "timeout_s": 0.0, "cache": 0, "priority": 0, "placement": "local",
    }


def test_explicit_task_options_win_over_the_compile() -> None:
    model = parse(
        'g (int64 x) => (int64 y) { y = namu.Task <task = "t"> (x) }',
        task_options={"t": {"retries": 0, "timeout_s": 2.5, "cache": False, "priority": -1, "placement": "gpu"}},
    )
    run_pass("expand-defaults", model, retries=3, timeout_s=9.0, cache=True, priority=7, placement="pool")
    assert _options(next(iter(model.graph))) == {
        "retries": 0, "timeout_s": 2.5, "cache": 0, "priority": -1, "placement": "gpu",
    }


def test_an_explicit_no_timeout_overrides_the_compile_timeout() -> None:
    model = parse('g (int64 x) => (int64 y) { y = namu.Task <task = "t"> (x) }', task_options={"t": {"timeout_s": None}})
    run_pass("expand-defaults", model, timeout_s=9.0)
    assert _options(next(iter(model.graph)))["timeout_s"] == 0.0


def test_unset_placement_and_priority_mean_the_compile_default() -> None:
    model = parse(
        'g (int64 x) => (int64 y) { y = namu.Task <task = "t"> (x) }',
        task_options={"t": {"placement": None, "priority": None}},
    )
    run_pass("expand-defaults", model, priority=5, placement="pool")
    assert _options(next(iter(model.graph)))["placement"] == "pool"
    assert _options(next(iter(model.graph)))["priority"] == 5


def test_pure_tasks_are_cached() -> None:
    model = parse('g (int64 x) => (int64 y) { y = namu.Task <task = "p"> (x) }', task_options={"p": {"pure": True, "cache": False}})
    run_pass("expand-defaults", model)
    assert _options(next(iter(model.graph)))["cache"] == 1


NESTED = """
g (bool c, int64 x) => (int64 y) {
  y = If (c) <
    then_branch = t () => (int64 b) { b = namu.workflow.f(x) },
    else_branch = e () => (int64 d) { d = namu.Task <task = "t"> (x) }
  >
}
<domain: "namu.workflow", opset_import: ["" : 21, "namu" : 1]>
f (v) => (w) { w = namu.Task <task = "t"> (v) }
"""


def test_fills_subgraphs_and_functions() -> None:
    model = parse(textwrap.dedent(NESTED), impure_tasks=("t",))
    run_pass("expand-defaults", model, retries=2)
    nodes = _task_nodes(model)
    assert len(nodes) == 2
    assert all(_options(n)["retries"] == 2 for n in nodes)


def test_attributes_a_node_has_are_kept_and_a_second_run_changes_nothing() -> None:
    model = parse(
        'g (int64 x) => (int64 y) { y = namu.Task <task = "t", retries = 9> (x) }',
        impure_tasks=("t",),
    )
    assert run_pass("expand-defaults", model, retries=2).modified
    assert _options(next(iter(model.graph)))["retries"] == 9
    assert not run_pass("expand-defaults", model, retries=2).modified


def test_unknown_keys_get_the_compile_defaults() -> None:
    model = parse('g (int64 x) => (int64 y) { y = namu.Task <task = "t"> (x) }')
    run_pass("expand-defaults", model, retries=4)
    assert _options(next(iter(model.graph)))["retries"] == 4


def test_only_task_nodes_get_attributes() -> None:
    model = parse('g (int64 x) => (int64 y) { a = Neg(x)  y = namu.Task <task = "t"> (a) }', impure_tasks=("t",))
    run_pass("expand-defaults", model)
    expected = parse(
        'g (int64 x) => (int64 y) { a = Neg(x)  y = namu.Task <task = "t", retries = 0, timeout_s = 0.0,'
        ' cache = 0, priority = 0, placement = "local"> (a) }'
    )
    assert canonical(model.graph) == canonical(expected.graph)


# ---------------------------------------------------------------------- real workflows
@namu.task(retries=3, timeout_s=2.5, priority=4, placement="local")
def careful(x: int) -> int:
    return x * 2


@namu.task(pure=True)
def square(x: int) -> int:
    return x * x


@namu.task
def plain(x: int) -> int:
    return x + 1


@namu.workflow
def flow(xs: list[int]) -> list[int]:
    return [plain(careful(square(x))) for x in xs]


def test_the_frontends_task_table_says_which_options_were_set() -> None:
    model, _ = lowered(flow, upto="expand-defaults")
    run_pass("expand-defaults", model, retries=1, cache=False, priority=2)
    by_task = {n.attributes["task"].as_string(): _options(n) for n in _task_nodes(model)}
    assert by_task == {
        "square": {"retries": 1, "timeout_s": 0.0, "cache": 1, "priority": 2, "placement": "local"},
        "careful": {"retries": 3, "timeout_s": 2.5, "cache": 0, "priority": 4, "placement": "local"},
        "plain": {"retries": 1, "timeout_s": 0.0, "cache": 0, "priority": 2, "placement": "local"},
    }


def test_expanded_artifacts_are_valid_onnx_and_run_the_same(executor: str) -> None:
    before, tasks = lowered(flow, upto="expand-defaults")
    after, _ = lowered(flow, upto="infer-types")
    assert any("retries" in n.attributes for n in _task_nodes(after))
    onnx.checker.check_model(to_proto(after), full_check=True)
    assert run_model(after, tasks, [1, 2, 3], executor=executor) == run_model(before, tasks, [1, 2, 3], executor=executor)
    assert run_both(namu.compile(flow), [1, 2]).value == flow.fn([1, 2]) == [3, 9]


# ---------------------------------------------------------------------- the rule
_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "retries": st.integers(0, 5),
        "timeout_s": st.none() | st.sampled_from([0.5, 2.0, 30.0]),
        "pure": st.booleans(),
        "cache": st.booleans(),
        "priority": st.none() | st.integers(-3, 3),
        "placement": st.none() | st.sampled_from(["local", "gpu"]),
    },
)
_CONFIG = st.fixed_dictionaries(
    {},
    optional={
        "retries": st.integers(0, 5),
        "timeout_s": st.none() | st.sampled_from([1.0, 60.0]),
        "cache": st.booleans(),
        "priority": st.integers(-3, 3),
        "placement": st.sampled_from(["local", "pool"]),
    },
)


@settings(max_examples=150, deadline=None)
@given(options=_OPTIONS, config=_CONFIG)
def test_each_option_is_the_tasks_when_set_else_the_compiles(options: dict[str, Any], config: dict[str, Any]) -> None:
    # Through the task table's JSON, as a compile sees it.
    loaded = metadata.TaskTable.model_validate_json(
        metadata.dump(metadata.TaskTable(tasks=[metadata.TaskEntry(
            key="t", module="m", qualname="t", file="", digest="d", options=TaskOptions(**options)
        )]))
    ).tasks[0].options
    cfg = CompileConfig(**config)
    got = {a.name: a.value for a in task_defaults(loaded, cfg)}
    timeout = options.get("timeout_s", cfg.timeout_s)  # an explicit None wins
    expected = {
        "retries": options.get("retries", cfg.retries),
        "timeout_s": pytest.approx(timeout or 0.0),
        "cache": int(options.get("pure", False) or options.get("cache", cfg.cache)),
        "priority": options["priority"] if options.get("priority") is not None else cfg.priority,
        "placement": options["placement"] if options.get("placement") is not None else cfg.placement,
    }
    assert got == expected
