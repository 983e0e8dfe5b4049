"""A readable listing of a namu model: one line per node, nested graphs indented.

::

    graph compute(%x: int, %n: int = 5):
      %c = Constant(2)                                # wf.py:12:9
      %y = namu.Task[task=add](%x, %c)                # wf.py:12:9
      %ys = namu.Map(%xs)                             # wf.py:13:10
        body(%v: int):
          %r = namu.Task[task=inv](%v)                # wf.py:13:11
          return %r
      return %y, %ys

Values are written ``%name``; a missing optional input is ``_``. The option attributes
of a task call (``retries``, ``timeout_s``, ``cache``, ``priority``, ``placement``) are
shown only where they differ from no-retries, no-limit, no-cache, 0 and ``local``. ``Constant`` nodes show
their literal value. Graph attributes (``If`` branches, ``Loop`` and ``Map`` bodies) are
listed under their node with their inputs and a final ``return`` line. Functions (the
``namu.workflow`` domain, if any survived inlining) follow the main graph. The trailing
comment is the node's source span (file name, line, column); ``via`` names the
sub-workflow call a node was inlined through.

The printer reads only the IR: it imports no task code.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterable, Sequence
from typing import Any

import onnx_ir as ir

from namu.ir.metadata import CALL_SPAN_KEY, SPAN_KEY
from namu.ir.scopes import walk
from namu.ir.types import TYPE_KEY, type_of

__all__ = ["count_nodes", "format_graph", "format_node"]

#: the comment column is never pushed further right than this.
_MAX_COMMENT_COLUMN = 72
_INDENT = "  "


def format_graph(model: ir.Model | ir.Graph, *, spans: bool = True) -> str:
    """The listing of ``model`` (its main graph, then its functions).

    Args:
        model: an ``onnx_ir.Model`` (or a single ``onnx_ir.Graph``).
        spans: end node lines with ``# file:line:col`` when the node has a span.

    Returns:
        The listing, lines separated by ``\\n``, without a trailing newline.
    """
    rows: list[tuple[str, str]] = []
    if isinstance(model, ir.Model):
        graph = model.graph
        functions: Iterable[ir.Function] = model.functions.values()
    else:
        graph, functions = model, ()
    rows.append((f"graph {graph.name or 'main'}({_params(graph.inputs)}):", ""))
    _graph_rows(graph, 1, rows, spans)
    for function in functions:
        rows.append(("", ""))
        prefix = f"{function.domain}." if function.domain else ""
        rows.append((f"function {prefix}{function.name}({_params(function.inputs)}):", ""))
        _graph_rows(function.graph if hasattr(function, "graph") else function, 1, rows, spans)
    return _align(rows)


def format_node(node: ir.Node) -> str:
    """One node as ``%out = domain.Op[attrs](%in, ...)`` (without nested graphs or span)."""
    outs = ", ".join(_name(v) for v in node.outputs)
    call = f"{_op_name(node)}{_attrs(node)}({_args(node)})"
    return f"{outs} = {call}" if outs else call


def count_nodes(model: ir.Model | ir.Graph) -> int:
    """Number of nodes of a graph, or of a model's main graph and functions (kept
    sub-workflows, partitions), including nested subgraphs."""
    return len(walk(model))


# ---------------------------------------------------------------------- internals
def _graph_rows(graph: Any, depth: int, rows: list[tuple[str, str]], spans: bool) -> None:
    pad = _INDENT * depth
    for init in getattr(graph, "initializers", {}).values():
        rows.append((f"{pad}{_name(init)} = initializer({_value_summary(init.const_value)})", ""))
    for node in graph:
        rows.append((pad + format_node(node), _span_comment(node) if spans else ""))
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.GRAPH:
                _subgraph_rows(attr.name, attr.as_graph(), depth + 1, rows, spans)
            elif attr.type == ir.AttributeType.GRAPHS:
                for i, sub in enumerate(attr.as_graphs()):
                    _subgraph_rows(f"{attr.name}[{i}]", sub, depth + 1, rows, spans)
    outputs = ", ".join(_name(v) for v in graph.outputs)
    rows.append((f"{pad}return {outputs}" if outputs else f"{pad}return", ""))


def _subgraph_rows(label: str, graph: ir.Graph, depth: int, rows: list[tuple[str, str]], spans: bool) -> None:
    rows.append((f"{_INDENT * depth}{label}({_params(graph.inputs)}):", ""))
    _graph_rows(graph, depth + 1, rows, spans)


def _align(rows: Sequence[tuple[str, str]]) -> str:
    widths = [len(code) for code, comment in rows if comment]
    column = min(max(widths, default=0), _MAX_COMMENT_COLUMN) + 2
    lines = []
    for code, comment in rows:
        if comment:
            lines.append(f"{code.ljust(column)}# {comment}")
        else:
            lines.append(code)
    return "\n".join(lines)


def _name(value: ir.Value | None) -> str:
    if value is None:
        return "_"
    return f"%{value.name}" if value.name else "%<unnamed>"


def _params(values: Sequence[ir.Value]) -> str:
    return ", ".join(_param(v) for v in values)


def _param(value: ir.Value) -> str:
    # FunctionProto inputs carry no type: show the type only when the IR records one.
    if value.type is None and TYPE_KEY not in value.metadata_props:
        return _name(value)
    return f"{_name(value)}: {type_of(value)}"


def _op_name(node: ir.Node) -> str:
    return f"{node.domain}.{node.op_type}" if node.domain else node.op_type


def _args(node: ir.Node) -> str:
    if node.domain == "" and node.op_type == "Constant" and not node.inputs:
        value = node.attributes.get("value")
        if value is not None and value.type == ir.AttributeType.TENSOR:
            return _tensor_literal(value.as_tensor())
    inputs = list(node.inputs)
    while inputs and inputs[-1] is None:  # trailing optional inputs: omitted, as in ONNX
        inputs.pop()
    return ", ".join(_name(v) for v in inputs)


#: option attributes of ``namu.Task`` (filled by expand-defaults) not shown at their
#: neutral values: a listing shows the policies a call really has.
_NEUTRAL_TASK_ATTRS: dict[str, Any] = {"retries": 0, "timeout_s": 0.0, "cache": 0, "priority": 0, "placement": "local"}


def _attrs(node: ir.Node) -> str:
    parts = []
    task = node.domain == "namu" and node.op_type == "Task"
    for attr in node.attributes.values():
        if attr.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS):
            continue  # listed under the node
        if node.domain == "" and node.op_type == "Constant" and attr.name == "value":
            continue  # shown as the argument
        if task and attr.name in _NEUTRAL_TASK_ATTRS and attr.value == _NEUTRAL_TASK_ATTRS[attr.name]:
            continue
        parts.append(f"{attr.name}={_attr_value(node, attr)}")
    return f"[{', '.join(parts)}]" if parts else ""


def _attr_value(node: ir.Node, attr: ir.Attr) -> str:
    if attr.is_ref():
        return f"@{attr.ref_attr_name}"
    t = attr.type
    if t == ir.AttributeType.INT:
        if node.op_type == "Cast" and attr.name == "to":
            try:
                return ir.DataType(attr.as_int()).name
            except ValueError:
                return str(attr.as_int())
        return str(attr.as_int())
    if t == ir.AttributeType.FLOAT:
        return _float32(attr.as_float())
    if t == ir.AttributeType.STRING:
        text = attr.as_string()
        return text if text.isidentifier() else json.dumps(text)
    if t == ir.AttributeType.INTS:
        return "[" + ", ".join(str(i) for i in attr.as_ints()) + "]"
    if t == ir.AttributeType.FLOATS:
        return "[" + ", ".join(_float32(f) for f in attr.as_floats()) + "]"
    if t == ir.AttributeType.STRINGS:
        return "[" + ", ".join(json.dumps(s) for s in attr.as_strings()) + "]"
    if t == ir.AttributeType.TENSOR:
        return _tensor_literal(attr.as_tensor())
    if t == ir.AttributeType.TENSORS:
        return "[" + ", ".join(_tensor_literal(x) for x in attr.as_tensors()) + "]"
    return f"<{t.name.lower()}>"


def _float32(value: float) -> str:
    """A float attribute (ONNX stores them as float32) as the shortest decimal that reads
    back as the same float32: ``0.05``, not ``0.05000000074505806``."""
    if math.isfinite(value):
        stored = struct.unpack("f", struct.pack("f", value))[0]
        for digits in range(1, 10):
            text = f"{value:.{digits}g}"
            if struct.unpack("f", struct.pack("f", float(text)))[0] == stored:
                return repr(float(text))
    return _float(value)


def _float(value: float) -> str:
    if math.isfinite(value):
        return repr(float(value))
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _tensor_literal(tensor: Any) -> str:
    """A scalar tensor as a Python-like literal; larger tensors as ``dtype[shape]``."""
    try:
        array = tensor.numpy()
    except Exception:  # noqa: BLE001 - an external or unreadable tensor
        return f"<tensor {getattr(tensor, 'dtype', '?')}>"
    if array.size == 1 and array.ndim == 0:
        return _scalar_literal(array.reshape(-1)[0], tensor.dtype)
    if array.size <= 8:
        items = ", ".join(_scalar_literal(x, tensor.dtype) for x in array.reshape(-1))
        return f"{tensor.dtype.name.lower()}{list(array.shape)}{{{items}}}"
    return _value_summary(tensor)


def _scalar_literal(item: Any, dtype: ir.DataType) -> str:
    if dtype == ir.DataType.STRING:
        text = item.decode("utf-8", errors="replace") if isinstance(item, bytes) else str(item)
        return json.dumps(text, ensure_ascii=False)
    if dtype == ir.DataType.BOOL:
        return "True" if bool(item) else "False"
    if dtype in (ir.DataType.FLOAT, ir.DataType.DOUBLE, ir.DataType.FLOAT16, ir.DataType.BFLOAT16):
        return _float(float(item))
    return str(item.item() if hasattr(item, "item") else item)


def _value_summary(tensor: Any) -> str:
    if tensor is None:
        return "?"
    shape = getattr(tensor, "shape", None)
    dims = list(shape) if shape is not None else []
    return f"{getattr(tensor.dtype, 'name', '?').lower()}{dims}"


def _span_comment(node: ir.Node) -> str:
    span = node.metadata_props.get(SPAN_KEY, "")
    via = node.metadata_props.get(CALL_SPAN_KEY, "")
    text = _short_span(span)
    if via and via != span:
        text = f"{text} via {_short_span(via)}" if text else f"via {_short_span(via)}"
    return text


def _short_span(span: str) -> str:
    """``/abs/dir/wf.py:12:9`` -> ``wf.py:12:9``."""
    if not span:
        return ""
    path, sep, pos = _split_span(span)
    return f"{os.path.basename(path)}{sep}{pos}" if sep else os.path.basename(span)


def _split_span(span: str) -> tuple[str, str, str]:
    # The path may itself contain ':' (Windows drives); line and column are the last two fields.
    parts = span.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return parts[0], ":", f"{parts[1]}:{parts[2]}"
    return span, "", ""
