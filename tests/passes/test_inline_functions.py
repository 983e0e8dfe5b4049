"""inline-functions: sub-workflow calls are replaced by their bodies; spans survive."""

from __future__ import annotations

import os

import namu
from namu.ir.metadata import CALL_SPAN_KEY, SPAN_KEY
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
