"""inline-functions: sub-workflow calls are replaced by their bodies; spans survive."""

from __future__ import annotations

import os

import onnx_ir as ir
import pytest

import namu
from namu.ir.metadata import CALL_SPAN_KEY, INLINE_KEY, SPAN_KEY, SYMBOL_KEY
from namu.ir.opsets import WORKFLOW_DOMAIN
from namu.passes.inline_functions import InlineFunctionsPass
from tests.conftest import run_both


@namu.task
def inc(x: int) -> int:
    return x + 1


@namu.workflow
def twice(x: int, step: int = 1) -> int:
    y = inc(x)
    return inc(y) + step


@namu.workflow
def caller(x: int) -> int:
    a = twice(x)
    return twice(a, step=10)


def test_inlines_every_call_and_keeps_spans() -> None:
    art = namu.compile(caller, passes=["verify-structure"])
    before = [(n.domain, n.op_type) for n in art.model.graph]
    assert before.count((WORKFLOW_DOMAIN, "twice")) == 2
    assert len(art.model.functions) == 1

    result = InlineFunctionsPass()(art.model)
    assert result.modified
    after = [(n.domain, n.op_type) for n in art.model.graph]
    assert all(domain != WORKFLOW_DOMAIN for domain, _ in after)
    assert after.count(("namu", "Task")) == 4
    assert not art.model.functions
    here = os.path.abspath(__file__)
    for node in art.model.graph:
        if node.op_type == "Task":
            assert node.metadata_props[SPAN_KEY].startswith(here)  # the callee's own line
            assert node.metadata_props[CALL_SPAN_KEY].startswith(here)  # the call site


def test_inlined_and_called_versions_agree() -> None:
    called = namu.compile(caller, passes=["verify-structure"])
    inlined = namu.compile(caller)
    assert run_both(called, 3).value == run_both(inlined, 3).value == caller.fn(3) == 18


def test_nothing_to_inline_is_unmodified() -> None:
    art = namu.compile(twice)
    assert not InlineFunctionsPass()(art.model).modified


# ---------------------------------------------------------------------- inline=False
@namu.workflow(inline=False)
def kept(x: int, step: int = 1) -> int:
    y = twice(x)  # an inlined sub-workflow inside a kept one
    if y > 5:
        y = inc(y)
    return y + step


@namu.workflow
def uses_kept(n: int) -> list[int]:
    a = kept(n)
    return [kept(i, step=10) for i in [a, n]]


def test_the_decorator_takes_options() -> None:
    assert twice.inline and not kept.inline
    assert namu.workflow()(caller.fn).inline
    with pytest.raises(namu.TaskDefinitionError, match="inline"):
        namu.workflow(inline="no")  # type: ignore[arg-type]
    with pytest.raises(namu.TaskDefinitionError, match="already"):
        namu.workflow(inline=False)(kept)


def test_the_frontend_marks_kept_functions() -> None:
    art = namu.compile(uses_kept, passes=["verify-structure"])
    marks = {f.name: f.metadata_props.get(INLINE_KEY) for f in art.model.functions.values()}
    assert marks == {"kept": "false", "twice": None}


def test_keeps_calls_of_inline_false_sub_workflows_and_inlines_the_rest() -> None:
    art = namu.compile(uses_kept, passes=["verify-structure", "resolve-symbols"])
    result = InlineFunctionsPass()(art.model)
    assert result.modified
    assert [f.name for f in art.model.functions.values()] == ["kept"]
    calls = [n for n in ir.traversal.RecursiveGraphIterator(art.model.graph) if n.domain == WORKFLOW_DOMAIN]
    assert [n.op_type for n in calls] == ["kept", "kept"]
    for node in calls:  # the kept calls are untouched: own span, binding
        assert node.metadata_props[SPAN_KEY].startswith(os.path.abspath(__file__))
        assert CALL_SPAN_KEY not in node.metadata_props
        assert node.metadata_props[SYMBOL_KEY] == "kept"
    body = list(ir.traversal.RecursiveGraphIterator(next(iter(art.model.functions.values()))))
    assert all(n.domain != WORKFLOW_DOMAIN for n in body)  # `twice` was inlined into `kept`
    inlined = [n for n in body if CALL_SPAN_KEY in n.metadata_props]
    assert len(inlined) == 3  # inc, inc, Add (the default `step` is an argument of the call)
    for node in inlined:  # the call's binding is not copied onto what it inlined
        assert node.metadata_props.get(SYMBOL_KEY, "").endswith(".inc") == (node.op_type == "Task")


def test_kept_sub_workflows_run_on_both_executors_and_pass_the_checker() -> None:
    art = namu.compile(uses_kept)
    assert [f.name for f in art.model.functions.values()] == ["kept"]
    assert sum(n.domain == WORKFLOW_DOMAIN for n in ir.traversal.RecursiveGraphIterator(art.model.graph)) == 2
    proto = art.to_proto()  # run_both also runs onnx.checker.check_model(full_check=True)
    assert [(p.key, p.value) for p in proto.functions[0].metadata_props] == [(INLINE_KEY, "false")]
    for n in (0, 2, 7):
        assert run_both(art, n).value == uses_kept.fn(n)


def test_kept_sub_workflows_survive_save_and_load(tmp_path) -> None:
    art = namu.compile(uses_kept)
    path = tmp_path / "kept.onnx"
    art.save(path)
    loaded = namu.load(path)
    assert [f.metadata_props.get(INLINE_KEY) for f in loaded.model.functions.values()] == ["false"]
    assert loaded.run(3).value == uses_kept.fn(3)
