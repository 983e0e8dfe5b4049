"""``inline-functions``: replace sub-workflow calls by the bodies of their functions."""

from __future__ import annotations

import logging

import onnx_ir as ir
from onnx_ir.passes.common import InlinePass

from namu.ir.metadata import CALL_SPAN_KEY, SPAN_KEY
from namu.ir.opsets import WORKFLOW_DOMAIN
from namu.passes.base import Example, NamuPass
from namu.passes.registry import register

__all__ = ["InlineFunctionsPass"]

logger = logging.getLogger(__name__)


@register(
    "inline-functions",
    "no sub-workflow calls remain: each FunctionProto body is inlined at its call sites",
    order=30,
    level=0,
)
class InlineFunctionsPass(NamuPass):
    """Inline every model-local function (namu's sub-workflows) with onnx_ir's inliner.

    Each inlined node keeps its own ``namu.span`` and gains ``namu.call_span``, the span
    of the call it was inlined through, so errors can show both lines.
    """

    EXAMPLE = Example(
        before="""
        g (int64 x) => (int64 y) { a = namu.workflow.twice(x)  y = Neg(a) }
        <domain: "namu.workflow", opset_import: ["" : 21, "namu" : 1]>
        twice (v) => (w) { w = namu.Task <task = "inc"> (v) }""",
        after="""
        g (int64 x) => (int64 y) { a = namu.Task <task = "inc"> (x)  y = Neg(a) }""",
        impure_tasks=("inc",),
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        if not model.functions:
            return ir.passes.PassResult(model, modified=False)
        # The inliner copies the call node's metadata onto every inlined node; present the
        # call's span under CALL_SPAN_KEY so that it does not overwrite the callee's spans.
        for node in ir.traversal.RecursiveGraphIterator(model.graph):
            _rename_span(node)
        for function in model.functions.values():
            for node in ir.traversal.RecursiveGraphIterator(function):
                _rename_span(node)
        result = InlinePass()(model)
        for node in ir.traversal.RecursiveGraphIterator(model.graph):
            if SPAN_KEY not in node.metadata_props and CALL_SPAN_KEY in node.metadata_props:
                node.metadata_props[SPAN_KEY] = node.metadata_props.pop(CALL_SPAN_KEY)
        logger.debug("inlined functions: modified=%s", result.modified)
        return ir.passes.PassResult(result.model, modified=result.modified)


def _rename_span(node: ir.Node) -> None:
    if node.domain == WORKFLOW_DOMAIN:
        node.metadata_props[CALL_SPAN_KEY] = node.metadata_props.pop(SPAN_KEY, "")
