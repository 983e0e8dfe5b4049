"""A toy executor, the example of "How to add an executor" (docs): the reference
executor, counting the nodes it evaluates. Registered as ``counting`` when imported."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import onnx_ir as ir

from namu.runtime.executor_registry import register_executor
from namu.runtime.executors import ReferenceExecutor


@register_executor("counting")
class CountingExecutor(ReferenceExecutor):
    """The reference executor, counting the nodes it evaluates (all runs together)."""

    nodes_run = 0

    def prepare(self, graph: ir.Graph, captures: Sequence[ir.Value] = ()) -> Any:
        run = super().prepare(graph, captures)  # also called for every If/Loop/Map body
        size = len(graph)

        def counted(values: list[Any], **options: Any) -> list[Any]:
            CountingExecutor.nodes_run += size
            return run(values, **options)

        return counted
