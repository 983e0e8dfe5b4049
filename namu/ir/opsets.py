"""Opsets namu's IR uses: the standard ONNX domain and namu's own domains.

``""`` (ai.onnx), version :data:`ONNX_OPSET`
    Arithmetic, comparison and boolean operators on scalars, ``Constant``,
    ``Identity``, ``Cast``, ``SequenceConstruct``/``SequenceAt``/``SequenceLength``,
    and ``If``/``Loop`` when every value they carry has a tensor or sequence type.

``namu``, version :data:`NAMU_OPSET`
    namu's own ops. See ``docs/ir.md`` for each op's inputs, outputs and attributes.

``namu.workflow``, version 1
    One ``FunctionProto`` per sub-workflow; a call to a sub-workflow is a node of this
    domain whose ``op_type`` is the function's name.

``namu.partition``, version 1
    After the ``partition`` pass: one ``FunctionProto`` per placement, each an
    installable target; partitions exchange values only through ``namu.Send`` /
    ``namu.Recv`` pairs.
"""

from __future__ import annotations

__all__ = [
    "NAMU_DOMAIN",
    "NAMU_OPS",
    "NAMU_OPSET",
    "ONNX_DOMAIN",
    "ONNX_OPSET",
    "PARTITION_DOMAIN",
    "WORKFLOW_DOMAIN",
    "opset_imports",
]

ONNX_DOMAIN = ""
ONNX_OPSET = 21
NAMU_DOMAIN = "namu"
NAMU_OPSET = 1
WORKFLOW_DOMAIN = "namu.workflow"
PARTITION_DOMAIN = "namu.partition"

#: namu-domain ops and a one-line summary of each (docs/ir.md has the full contract).
NAMU_OPS: dict[str, str] = {
    "Task": "call the task named by attribute `task` with the inputs (positional, then `kwnames`)",
    "Map": "fan-out: run graph `body` once per item of input 0, gather results in order",
    "If": "If with the standard attribute layout, for branches carrying opaque values",
    "Loop": "Loop with the standard input/attribute layout, for opaque loop-carried values",
    "Identity": "Identity for opaque values",
    "None": "the constant None",
    "List": "build a Python list from the inputs (items of mixed or opaque type)",
    "Tuple": "build a Python tuple from the inputs",
    "Dict": "build a dict with string keys from attribute `keys` and the inputs as values",
    "Unpack": "unpack an iterable into exactly N outputs (Python's tuple unpacking)",
    "GetItem": "input 0 [ input 1 ]: subscript load",
    "GetAttr": "input 0 . attribute `name`: attribute read",
    "Len": "len(input 0)",
    "ToList": "list(input 0): materialize an iterable (dict keys, str characters, ...)",
    "Truth": "bool(input 0): Python truthiness",
    "Arith": "Python arithmetic operator `op` (add, sub, mul, truediv, floordiv, mod, pow, neg, pos) on any numbers, exact",
    "Compare": "Python comparison `op` (eq, ne, lt, le, gt, ge) of an int with a float, exact",
    "Contains": "input 1 in input 0: Python's membership test (`x in xs`)",
    "IsNone": "input 0 is None",
    "Format": "str.format of attribute `template` with the inputs (an f-string)",
    "Slot": "call the role slot named by attribute `slot` (bound to a task by resolve-slots)",
    "Send": "send input 0 on wire `channel` to placement `to` (no outputs)",
    "Recv": "receive the value sent on wire `channel` from placement `from`",
    "Gate": "run the single op of graph `body` under a resilience policy (retries, timeout_s, fallback)",
    "Fused": "run the straight-line task calls of graph `body` as one dispatch unit",
}


def opset_imports() -> dict[str, int]:
    """The opset imports every namu model and function declares."""
    return {ONNX_DOMAIN: ONNX_OPSET, NAMU_DOMAIN: NAMU_OPSET, WORKFLOW_DOMAIN: 1, PARTITION_DOMAIN: 1}
