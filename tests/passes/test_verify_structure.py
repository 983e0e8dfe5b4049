"""verify-structure: malformed IR is rejected with a clear message, good IR passes."""

from __future__ import annotations

import onnx_ir as ir
import pytest

import namu
from namu.ir.metadata import SPAN_KEY
from namu.passes.verify_structure import VerifyStructurePass
from tests.passes.conftest import parse


def test_accepts_well_formed_ir() -> None:
    model = parse('g (int64 x) => (int64 y) { y = namu.Task <task = "t"> (x) }', impure_tasks=("t",))
    assert not VerifyStructurePass()(model).modified


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('g (int64 x) => (int64 y) { y = other.Op(x) }', "domain 'other' is not declared"),
        ('g (int64 x) => (int64 y) { y = namu.Frobnicate(x) }', "unknown namu op 'Frobnicate'"),
        ('g (int64 x) => (int64 y) { y = namu.Task (x) }', "without a `task` attribute"),
        ('g (x) => (int64 y) { y = Neg(x) }', "graph input 'x' of 'g' has no type"),
    ],
)
def test_rejects_malformed_ir(text: str, message: str) -> None:
    with pytest.raises(namu.IRVerificationError, match=message):
        VerifyStructurePass()(parse(text))


@pytest.mark.parametrize(
    "text",
    [
        'g (int64 x) => (int64 y) { y = namu.Task <task = "ghost"> (x) }',
        'g (int64 x) => (int64 y) { y = namu.workflow.missing(x) }',
    ],
)
def test_symbols_are_not_its_business(text: str) -> None:
    # Unknown tasks and sub-workflows are resolve-symbols' errors; the structure is fine.
    assert not VerifyStructurePass()(parse(text)).modified


def test_rejects_use_before_definition_with_the_source_span() -> None:
    model = parse("g (int64 x) => (int64 y) { a = Neg(x)  y = Add(a, x) }")
    first, second = list(model.graph)
    second.metadata_props[SPAN_KEY] = "/src/wf.py:7:5"
    model.graph.remove(first)
    model.graph.append(first)
    with pytest.raises(namu.IRVerificationError, match=r"^/src/wf.py:7:5: Add: input 'a' is used before it is defined"):
        VerifyStructurePass()(model)


def test_rejects_duplicate_ssa_names_across_scopes() -> None:
    model = parse(
        """
        g (bool c, int64 x) => (int64 y) {
          y = If (c) <
            then_branch = t () => (int64 x) { x = Identity(c) },
            else_branch = e () => (int64 b) { b = Identity(c) }
          >
        }
        """
    )
    with pytest.raises(namu.IRVerificationError, match="SSA name 'x' is defined more than once"):
        VerifyStructurePass()(model)


def test_every_value_must_be_defined_for_outputs() -> None:
    model = parse("g (int64 x) => (int64 y) { y = Neg(x) }")
    model.graph.outputs[0] = ir.Value(name="ghost")
    with pytest.raises(namu.IRVerificationError, match="output 'ghost'"):
        VerifyStructurePass()(model)
