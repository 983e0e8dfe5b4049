"""The two executors of a graph: the native kernel and the pure-Python reference.

Both prepare a graph once into a runner ``run(inputs + captured) -> outputs`` and build
node callables with :func:`namu.runtime.ops.build_op`, so they share every op's meaning.
They differ only in scheduling:

* :class:`KernelExecutor` compiles the graph into a ``namu._kernel.Plan`` (slots,
  dependency counts, a priority ready queue, liveness) and lets Rust drive the calls;
* :class:`ReferenceExecutor` walks the nodes in their stored (topological) order with a
  dict of values. It is the semantic oracle the kernel is tested against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import onnx_ir as ir

from namu.ir.scopes import node_captures
from namu.runtime.ops import ErrorHandler, SubgraphRunner, build_node, constant_of, is_constant
from namu.runtime.tasks import TaskBinding

__all__ = ["EXECUTORS", "Executor", "KernelExecutor", "ReferenceExecutor"]


class Executor:
    """Base: prepares graphs (and their subgraphs) into runners."""

    name = "?"

    def __init__(
        self,
        tasks: dict[str, TaskBinding],
        functions: dict[str, ir.Function] | None = None,
        *,
        observed: bool = False,
    ) -> None:
        self.tasks = tasks
        self.functions = functions or {}
        self.observed = observed

    def subgraph(self, graph: ir.Graph, captures: Sequence[ir.Value]) -> SubgraphRunner:
        return self.prepare(graph, captures)

    def prepare(self, graph: ir.Graph, captures: Sequence[ir.Value] = ()) -> SubgraphRunner:
        raise NotImplementedError


class ReferenceExecutor(Executor):
    """Evaluate nodes one by one in their stored order; values live in a dict."""

    name = "reference"

    def prepare(self, graph: ir.Graph, captures: Sequence[ir.Value] = ()) -> SubgraphRunner:
        params = [*graph.inputs, *captures]
        Step = tuple[Callable[..., Any] | None, ErrorHandler | None, Any, list[ir.Value | None], list[ir.Value]]
        steps: list[Step] = []
        for node in graph:
            const = constant_of(node)
            if is_constant(const):
                steps.append((None, None, const, [], list(node.outputs)))
                continue
            inputs = [*node.inputs, *node_captures(node)]
            fn, handler = build_node(node, self)
            steps.append((fn, handler, None, inputs, list(node.outputs)))
        outputs = list(graph.outputs)

        def run(values: list[Any]) -> list[Any]:
            env: dict[int, Any] = {id(p): v for p, v in zip(params, values)}
            for fn, handler, const, inputs, outs in steps:
                if fn is None:
                    env[id(outs[0])] = const
                    continue
                try:
                    result = fn(*[None if v is None else env[id(v)] for v in inputs])
                except Exception as exc:
                    if handler is None:
                        raise
                    raise handler(exc) from exc
                if len(outs) == 1:
                    env[id(outs[0])] = result
                elif outs:
                    if len(result) != len(outs):
                        raise ValueError(f"op returned {len(result)} values, expected {len(outs)}")
                    for o, r in zip(outs, result):
                        env[id(o)] = r
            return [env[id(o)] for o in outputs]

        return run


class KernelExecutor(Executor):
    """Compile each graph into a native ``Plan`` run by the Rust kernel."""

    name = "kernel"

    def prepare(self, graph: ir.Graph, captures: Sequence[ir.Value] = ()) -> SubgraphRunner:
        from namu._kernel import Plan

        slots: dict[int, int] = {}

        def slot(value: ir.Value) -> int:
            index = slots.get(id(value))
            if index is None:
                index = slots[id(value)] = len(slots)
            return index

        input_slots = [slot(v) for v in [*graph.inputs, *captures]]
        nodes: list[tuple[Callable[..., Any], list[int], list[int]]] = []
        handlers: list[ErrorHandler | None] = []
        constants: list[tuple[int, Any]] = []
        for node in graph:
            const = constant_of(node)
            if is_constant(const):
                constants.append((slot(node.outputs[0]), const))
                continue
            in_slots = [-1 if v is None else slot(v) for v in node.inputs]
            in_slots += [slot(v) for v in node_captures(node)]
            out_slots = [slot(v) for v in node.outputs]
            fn, handler = build_node(node, self)
            nodes.append((fn, in_slots, out_slots))
            handlers.append(handler)
        output_slots = [slot(v) for v in graph.outputs]
        plan = Plan(len(slots), nodes, input_slots, output_slots, constants, error_handlers=handlers)
        return plan.run


EXECUTORS: dict[str, type[Executor]] = {"kernel": KernelExecutor, "reference": ReferenceExecutor}
