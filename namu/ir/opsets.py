"""Opsets namu's IR uses: the standard ONNX domain and namu's own domains.

``""`` (ai.onnx), version :data:`ONNX_OPSET`
    Arithmetic, comparison and boolean operators on scalars, ``Constant``,
    ``Identity``, ``Cast``, ``SequenceConstruct``/``SequenceAt``/``SequenceLength``,
    and ``If``/``Loop`` when every value they carry has a tensor or sequence type.

``namu``, version :data:`NAMU_OPSET`
    namu's own ops, each defined once in the op registry (:mod:`namu.ops`); see
    ``docs/ir.md`` for each op's inputs, outputs and attributes.

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

def opset_imports() -> dict[str, int]:
    """The opset imports every namu model and function declares."""
    return {ONNX_DOMAIN: ONNX_OPSET, NAMU_DOMAIN: NAMU_OPSET, WORKFLOW_DOMAIN: 1, PARTITION_DOMAIN: 1}
