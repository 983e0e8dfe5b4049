"""resolve-symbols: every call is bound to its definition, unknown names fail at their line."""

from __future__ import annotations

import json
import textwrap

import onnx_ir as ir
import pytest

import namu
from namu.ir.metadata import DIGEST_KEY, SPAN_KEY, SYMBOL_KEY, TASKS_KEY
from namu.ir.opsets import NAMU_DOMAIN, WORKFLOW_DOMAIN
from tests.passes.conftest import canonical, lowered, parse, run_pass

NESTED = """
g (bool c, int64 x) => (int64 y) {
  a = namu.Task <task = "inc"> (x)
  y = If (c) <
    then_branch = t () => (int64 b) { b = namu.workflow.twice(a) },
    else_branch = e () => (int64 d) { d = namu.Task <task = "dec"> (a) }
  >
}
<domain: "namu.workflow", opset_import: ["" : 21, "namu" : 1]>
twice (v) => (w) { u = namu.Task <task = "inc"> (v)  w = namu.Task <task = "inc"> (u) }
"""


def _calls(model: ir.Model) -> list[ir.Node]:
    graphs = [model.graph, *model.functions.values()]
    return [
        node
        for graph in graphs
        for node in ir.traversal.RecursiveGraphIterator(graph)
        if (node.domain, node.op_type) == (NAMU_DOMAIN, "Task") or node.domain == WORKFLOW_DOMAIN
    ]


def test_stamps_every_call_in_graphs_subgraphs_and_functions() -> None:
    model = parse(textwrap.dedent(NESTED), impure_tasks=("inc", "dec"))
    before = canonical(model.graph)
    result = run_pass("resolve-symbols", model)
    assert result.modified
    assert canonical(model.graph) == before  # only metadata changes
    stamps = [(n.op_type, dict(n.metadata_props)) for n in _calls(model)]
    assert stamps == [
        ("Task", {SYMBOL_KEY: "m.inc", DIGEST_KEY: "sha256:inc"}),
        ("twice", {SYMBOL_KEY: "twice"}),
        ("Task", {SYMBOL_KEY: "m.dec", DIGEST_KEY: "sha256:dec"}),
        ("Task", {SYMBOL_KEY: "m.inc", DIGEST_KEY: "sha256:inc"}),
        ("Task", {SYMBOL_KEY: "m.inc", DIGEST_KEY: "sha256:inc"}),
    ]


def test_is_idempotent() -> None:
    model = parse(textwrap.dedent(NESTED), impure_tasks=("inc", "dec"))
    assert run_pass("resolve-symbols", model).modified
    assert not run_pass("resolve-symbols", model).modified


@namu.task
def inc(x: int) -> int:
    return x + 1


@namu.workflow(inline=False)
def twice(x: int) -> int:
    return inc(inc(x))


@namu.workflow
def caller(x: int) -> int:
    return twice(inc(x))


def test_binds_a_lowered_workflow_to_the_live_definitions() -> None:
    model, tasks = lowered(caller, upto="resolve-symbols")
    run_pass("resolve-symbols", model, tasks=tasks)
    calls = _calls(model)
    assert {n.metadata_props[SYMBOL_KEY] for n in calls} == {f"{__name__}.inc", "twice"}
    for node in calls:
        if node.op_type == "Task":
            assert node.metadata_props[DIGEST_KEY] == inc.digest


def test_compiled_artifacts_carry_the_binding() -> None:
    art = namu.compile(caller, passes=["verify-structure", "resolve-symbols"])
    call = next(n for n in art.model.graph if n.domain == WORKFLOW_DOMAIN)
    assert call.metadata_props[SYMBOL_KEY] == "twice"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('g (int64 x) => (int64 y) { y = namu.Task <task = "ghost"> (x) }', "task 'ghost' is not in the task table"),
        ('g (int64 x) => (int64 y) { y = namu.workflow.missing(x) }', "call to unknown sub-workflow 'missing'"),
        (
            (
                'g (int64 x) => (int64 y) { y = namu.workflow.f(x) }\n'
                '<domain: "namu.workflow", opset_import: ["" : 21, "namu" : 1]>\n'
                'f (v) => (w) { w = namu.Task <task = "ghost"> (v) }'
            ),
            "task 'ghost' is not in the task table",
        ),
        (
            (
                'g (bool c, int64 x) => (int64 y) { y = If (c) <'
                ' then_branch = t () => (int64 a) { a = namu.Task <task = "ghost"> (x) },'
                ' else_branch = e () => (int64 b) { b = Identity(x) } > }'
            ),
            "task 'ghost' is not in the task table",
        ),
    ],
)
def test_unknown_names_are_compile_errors(text: str, message: str) -> None:
    with pytest.raises(namu.CompileError, match=message):
        run_pass("resolve-symbols", parse(text, impure_tasks=("inc",)))


def test_an_unknown_task_points_at_the_call() -> None:
    model = parse('g (int64 x) => (int64 y) { a = Neg(x)  y = namu.Task <task = "ghost"> (a) }')
    list(model.graph)[1].metadata_props[SPAN_KEY] = "/src/wf.py:7:9"
    with pytest.raises(namu.CompileError) as caught:
        run_pass("resolve-symbols", model)
    assert caught.value.span == "/src/wf.py:7:9"
    assert str(caught.value) == "/src/wf.py:7:9: task 'ghost' is not in the task table"


def test_a_model_without_a_task_table_has_no_tasks() -> None:
    model = parse('g (int64 x) => (int64 y) { y = namu.Task <task = "inc"> (x) }', impure_tasks=("inc",))
    del model.metadata_props[TASKS_KEY]
    with pytest.raises(namu.CompileError, match="task 'inc' is not in the task table"):
        run_pass("resolve-symbols", model)


def _table_with_inc(digest: str) -> str:
    entry = {"key": "inc", "module": __name__, "qualname": "inc", "file": "", "digest": digest}
    return json.dumps({"tasks": [entry]})


def test_a_live_task_must_match_the_recorded_digest() -> None:
    model = parse('g (int64 x) => (int64 y) { y = namu.Task <task = "inc"> (x) }')
    model.metadata_props[TASKS_KEY] = _table_with_inc("sha256:stale")
    with pytest.raises(namu.CompileError) as caught:
        run_pass("resolve-symbols", model, tasks={"inc": inc})
    assert caught.value.reason == (
        f"task 'inc' ({__name__}.inc) does not match the task table: "
        f"its source digest is {inc.digest}, the table records sha256:stale"
    )


def test_a_matching_live_task_binds() -> None:
    model = parse('g (int64 x) => (int64 y) { y = namu.Task <task = "inc"> (x) }')
    model.metadata_props[TASKS_KEY] = _table_with_inc(inc.digest)
    run_pass("resolve-symbols", model, tasks={"inc": inc})
    assert next(iter(model.graph)).metadata_props[DIGEST_KEY] == inc.digest
