"""``inline-functions``: replace sub-workflow calls by the bodies of their functions."""

from __future__ import annotations

import logging

import onnx_ir as ir
from onnx_ir.passes.common import InlinePass

from namu.ir.metadata import CALL_SPAN_KEY, INLINE_KEY, SPAN_KEY
from namu.ir.opsets import WORKFLOW_DOMAIN
from namu.ir.scopes import walk
from namu.passes.base import Example, NamuPass
from namu.passes.registry import register

__all__ = ["InlineFunctionsPass"]

logger = logging.getLogger(__name__)


@register(
    "inline-functions",
    "sub-workflow calls are inlined into their callers, except calls of functions marked inline=False",
    after=("resolve-symbols",),
    level=0,
)
class InlineFunctionsPass(NamuPass):
    """Inline model-local functions (namu's sub-workflows) with onnx_ir's inliner.

    A sub-workflow declared ``@namu.workflow(inline=False)`` (its FunctionProto has the
    metadata ``namu.inline = "false"``) stays a function: its calls remain
    ``namu.workflow`` call nodes, and calls inside its body are inlined into it.

    Guarantees:
        The only ``namu.workflow`` calls left, in any graph or function, call
            functions marked ``inline=False``; every other function is gone.
        Each inlined node keeps its own ``namu.span`` and gains ``namu.call_span``,
            the span of the call it was inlined through, so errors can show both
            lines; the call's other metadata (``namu.symbol``, ...) is not copied.
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
        inlined = {key for key, f in model.functions.items() if _inlinable(f)}
        if not inlined:
            return self.result(model)
        # The inliner copies the call node's metadata onto every inlined node; present
        # only the call's span, under CALL_SPAN_KEY, so that it does not overwrite the
        # callee's spans (node metadata wins over the call's in onnx_ir's cloner).
        calls = 0
        for node in walk(model):
            if node.domain == WORKFLOW_DOMAIN and node.op_identifier() in inlined:
                span = node.metadata_props.get(SPAN_KEY, "")
                node.metadata_props.clear()
                node.metadata_props[CALL_SPAN_KEY] = span
                calls += 1
        InlinePass(criteria=_inlinable)(model)
        for node in walk(model):
            if SPAN_KEY not in node.metadata_props and CALL_SPAN_KEY in node.metadata_props:
                node.metadata_props[SPAN_KEY] = node.metadata_props.pop(CALL_SPAN_KEY)
        logger.debug("inlined %d sub-workflow calls; %d functions kept", calls, len(model.functions))
        self.changed(calls)
        return self.result(model)

    def ensures(self, model: ir.Model) -> None:
        for function in model.functions.values():
            if _inlinable(function):
                self.broken(f"sub-workflow {function.name!r} is still a function")
        for node in walk(model):
            if node.domain == WORKFLOW_DOMAIN and node.op_identifier() not in model.functions:
                self.broken(f"a call of sub-workflow {node.op_type!r} is left, but its function is gone", node)


def _inlinable(function: ir.Function) -> bool:
    """A sub-workflow not marked ``inline=False``."""
    return function.metadata_props.get(INLINE_KEY) != "false"
