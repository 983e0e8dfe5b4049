"""Pass tests are before/expected: IR in as ONNX text, one pass, IR out compared.

Helpers:

* :func:`parse` -- an ``onnx_ir`` model from ONNX text, with a task table;
* :func:`listing` -- one line per node of one graph (a quick structural view);
* :func:`canonical` -- the whole structure (nodes, attributes, subgraphs, graph inputs
  and outputs), for comparing a pass's output with an expected graph;
* :func:`run_pass` -- run one registered pass with a ``CompileConfig``;
* :func:`lowered` -- a real workflow lowered by the frontend and run through the
  pipeline up to (not including) a given pass, with its live tasks;
* :func:`run_model` -- run a model with live tasks and inputs; compare before and after.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import onnx
import onnx_ir as ir
import pytest

from namu.compiler import lower
from namu.frontend.task import Task
from namu.frontend.workflow import Workflow
from namu.ir import metadata
from namu.passes import CompileConfig, PassContext, get, pipeline, run_passes
from namu.runtime.artifact import Artifact

HEADER = '<ir_version: 10, opset_import: ["" : 21, "namu" : 1, "namu.workflow" : 1]>'


def parse(
    text: str,
    pure_tasks: Sequence[str] = (),
    impure_tasks: Sequence[str] = (),
    task_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> ir.Model:
    """An onnx_ir model from ONNX text (the model header is added), with a task table.

    ``task_options`` gives extra ``@task`` options per task key (``{"t": {"retries": 2}}``);
    a key only named there is an impure task.
    """
    model = ir.serde.deserialize_model(onnx.parser.parse_model(HEADER + "\n" + text))
    task_options = dict(task_options or {})
    keys = list(dict.fromkeys([*pure_tasks, *impure_tasks, *task_options]))
    tasks = []
    for k in keys:
        options = {**({"pure": True} if k in pure_tasks else {}), **task_options.get(k, {})}
        tasks.append({"key": k, "module": "m", "qualname": k, "file": "", "digest": "sha256:" + k, "options": options})
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


def _attr_text(attr: ir.Attr, indent: str) -> list[str] | str:
    if attr.type == ir.AttributeType.GRAPH:
        return canonical(attr.as_graph(), indent + "    ")
    if attr.type == ir.AttributeType.GRAPHS:
        return [line for g in attr.as_graphs() for line in canonical(g, indent + "    ")]
    if attr.type == ir.AttributeType.TENSOR:
        return repr(attr.as_tensor().numpy().tolist())
    value = attr.value
    return repr(list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value)


def canonical(graph: ir.Graph, indent: str = "") -> list[str]:
    """The structure of ``graph`` as lines: its inputs and outputs, and per node its op,
    inputs, outputs and attributes (subgraphs nested, indented). Value names count;
    types, spans and other metadata do not."""
    lines = [f"{indent}graph({', '.join(v.name or '' for v in graph.inputs)}) -> ({', '.join(v.name or '' for v in graph.outputs)})"]
    for node in graph:
        outs = ",".join(v.name or "" for v in node.outputs)
        ins = ",".join(v.name if v is not None else "" for v in node.inputs)
        op = f"{node.domain}::{node.op_type}" if node.domain else node.op_type
        scalars = []
        nested: list[str] = []
        for name in sorted(node.attributes):
            text = _attr_text(node.attributes[name], indent)
            if isinstance(text, list):
                nested += [f"{indent}  {name}:", *text]
            else:
                scalars.append(f"{name}={text}")
        attrs = f"<{', '.join(scalars)}>" if scalars else ""
        lines.append(f"{indent}  {outs} = {op}{attrs}({ins})")
        lines += nested
    return lines


def run_pass(name: str, model: ir.Model, *, tasks: Mapping[str, Task] | None = None, **config: Any) -> ir.passes.PassResult:
    """Run the registered pass ``name`` on ``model`` with ``CompileConfig(**config)``."""
    context = PassContext(config=CompileConfig(**config), tasks=dict(tasks or {}), pipeline=(name,))
    _, records = run_passes(model, [name], context=context)
    return ir.passes.PassResult(model, modified=records[0].modified)


def lowered(workflow: Workflow, upto: str | None = None, **config: Any) -> tuple[ir.Model, dict[str, Task]]:
    """``workflow`` lowered by the frontend, then run through the ``-O2`` pipeline up to
    (not including) the pass ``upto`` (all passes when None)."""
    get(upto) if upto is not None else None  # fail early on a typo
    ir_in = lower(workflow)
    names = pipeline(CompileConfig(**config).opt_level)
    if upto is not None:
        names = names[: names.index(upto)] if upto in names else names
    context = PassContext(config=CompileConfig(**config), tasks=ir_in.tasks, pipeline=tuple(names))
    model, _ = run_passes(ir_in.model, names, context=context)
    return model, dict(ir_in.tasks)


def run_model(model: ir.Model, tasks: Mapping[str, Task], *args: Any, executor: str = "kernel", **kwargs: Any) -> Any:
    """Run ``model`` (as an artifact bound to ``tasks``) and return its value."""
    if metadata.PASSPORT_KEY not in model.metadata_props:
        model.metadata_props[metadata.PASSPORT_KEY] = metadata.dump(
            metadata.Passport(namu_version="test", workflow="test", workflow_digest="", passes=[], onnx_opset=21)
        )
    return Artifact(model, dict(tasks)).run(*args, executor=executor, **kwargs).value


@pytest.fixture
def parse_ir():
    return parse
