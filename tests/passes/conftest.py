"""Pass tests are before/expected: IR in as ONNX text, one pass, IR out compared."""

from __future__ import annotations

import json

import onnx
import onnx_ir as ir
import pytest

from namu.ir import metadata

HEADER = '<ir_version: 10, opset_import: ["" : 21, "namu" : 1, "namu.workflow" : 1]>'


def parse(text: str, pure_tasks: tuple[str, ...] = (), impure_tasks: tuple[str, ...] = ()) -> ir.Model:
    """An onnx_ir model from ONNX text (the model header is added), with a task table."""
    model = ir.serde.deserialize_model(onnx.parser.parse_model(HEADER + "\n" + text))
    tasks = [
        {"key": k, "module": "m", "qualname": k, "file": "", "digest": "", "options": {"pure": k in pure_tasks}}
        for k in (*pure_tasks, *impure_tasks)
    ]
    model.metadata_props[metadata.TASKS_KEY] = json.dumps({"tasks": tasks})
    return model


def listing(graph: ir.Graph) -> list[str]:
    """One line per node, ``out1,out2 = domain::Op(in1,in2)``: what a structural diff compares."""
    lines = []
    for node in graph:
        outs = ",".join(v.name or "" for v in node.outputs)
        ins = ",".join(v.name if v is not None else "" for v in node.inputs)
        op = f"{node.domain}::{node.op_type}" if node.domain else node.op_type
        lines.append(f"{outs} = {op}({ins})")
    return lines


@pytest.fixture
def parse_ir():
    return parse
