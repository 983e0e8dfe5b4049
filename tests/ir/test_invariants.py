"""Invariants every artifact holds: ONNX-valid, spans on every op, typed values, metadata."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import onnx_ir as ir
import pytest

import namu
from namu.ir import metadata
from namu.ir.serde import from_proto
from namu.ir.types import TYPE_KEY, ValueType, type_of
from namu.runtime.user_code import import_path
from tests.frontend import wf_samples

ROOT = Path(__file__).resolve().parents[2]


def _workflows() -> list[namu.Workflow]:
    found: list[namu.Workflow] = []
    modules = [wf_samples, *(import_path(p) for p in sorted((ROOT / "examples").glob("*.py")))]
    for module in modules:
        for obj in vars(module).values():
            if isinstance(obj, namu.Workflow) and obj not in found:
                found.append(obj)
    return found


WORKFLOWS = _workflows()


def _all_nodes(graph: ir.Graph):
    for node in graph:
        yield node
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.GRAPH:
                yield from _all_nodes(attr.as_graph())


def test_there_are_workflows_to_check() -> None:
    assert len(WORKFLOWS) >= 10


@pytest.mark.parametrize("wf", WORKFLOWS, ids=lambda wf: wf.name)
def test_artifact_passes_full_check_and_keeps_spans(wf: namu.Workflow) -> None:
    art = namu.compile(wf)
    proto = art.to_proto()
    onnx.checker.check_model(proto, full_check=True)
    source = wf.compile().signature.file
    for node in _all_nodes(art.model.graph):
        span = node.metadata_props.get(metadata.SPAN_KEY, "")
        path, line, col = span.rsplit(":", 2)
        assert Path(path).is_absolute() and int(line) > 0 and int(col) > 0, (node, span)
    assert art.signature.file == source


@pytest.mark.parametrize("wf", WORKFLOWS, ids=lambda wf: wf.name)
def test_serialized_types_round_trip(wf: namu.Workflow) -> None:
    art = namu.compile(wf)
    proto = art.to_proto()
    for info in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        kind = info.type.WhichOneof("value")
        assert kind in ("tensor_type", "sequence_type", "opaque_type"), info
        if kind == "opaque_type":
            assert info.type.opaque_type.domain == "namu"
    reloaded = from_proto(proto)
    before = {v.name: type_of(v) for v in [*art.model.graph.inputs, *art.model.graph.outputs]}
    after = {v.name: type_of(v) for v in [*reloaded.graph.inputs, *reloaded.graph.outputs]}
    assert before == after


def test_metadata_is_json_with_the_documented_keys() -> None:
    art = namu.compile(WORKFLOWS[0])
    props = art.to_proto().metadata_props
    keys = {p.key: json.loads(p.value) for p in props}
    assert set(keys) == {metadata.TASKS_KEY, metadata.SIGNATURE_KEY, metadata.PASSPORT_KEY}
    assert set(keys[metadata.PASSPORT_KEY]) == {
        "namu_version",
        "workflow",
        "workflow_digest",
        "passes",
        "onnx_opset",
        "options",
        "capabilities",
    }


def test_literals_are_stored_typed_not_as_repr() -> None:
    @namu.workflow
    def literals() -> tuple:
        return 7, 2.5, "text", True, None, [1, 2], {"k": "v"}

    art = namu.compile(literals)
    constants = [n for n in art.model.graph if n.op_type == "Constant"]
    dtypes = sorted(n.attributes["value"].as_tensor().dtype.name for n in constants)
    assert dtypes == ["BOOL", "DOUBLE", "INT64", "INT64", "INT64", "STRING", "STRING"]
    assert literals() == (7, 2.5, "text", True, None, [1, 2], {"k": "v"})


def test_opaque_values_carry_their_type_name() -> None:
    @namu.task
    def record(x: int) -> dict[str, int]:
        return {"x": x}

    @namu.workflow
    def wf(x: int):
        return record(x)

    (out,) = namu.compile(wf).model.graph.outputs
    assert type_of(out) == ValueType.opaque("dict")
    assert out.metadata_props[TYPE_KEY] == "dict"
