"""``verify-structure``: reject malformed IR before anything runs or mutates it."""

from __future__ import annotations

import logging

import onnx_ir as ir

from namu.errors import IRVerificationError
from namu.ir.metadata import SPAN_KEY, TASKS_KEY, TaskTable
from namu.ir.opsets import NAMU_DOMAIN, NAMU_OPS, WORKFLOW_DOMAIN
from namu.ir.types import TYPE_KEY
from namu.passes.base import Example, NamuPass
from namu.passes.registry import register

__all__ = ["VerifyStructurePass"]

logger = logging.getLogger(__name__)


@register(
    "verify-structure",
    "declared opsets, unique SSA names, every input defined before use, typed graph inputs, known namu ops",
    order=10,
    level=0,
)
class VerifyStructurePass(NamuPass):
    """Check the structural invariants every later pass and the runtime rely on.

    Checks, for the main graph, every subgraph and every function: each node's domain is
    declared in the opset imports; SSA names are unique (including across nested scopes);
    each node input is a graph input, an outer-scope value, or the output of an earlier
    node (which also proves the graph is acyclic); graph inputs are typed; namu-domain ops
    are known; task calls name a task of the task table; sub-workflow calls name a
    function of the model.

    Raises:
        IRVerificationError: the first violation found, with the node's source span.
    """

    EXAMPLE = Example(
        before='g (int64 x) => (int64 y) { y = Add(x, z)  z = Neg(x) }',
        error="IRVerificationError: Add: input 'z' is used before it is defined (or the graph has a cycle)",
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        tasks: set[str] | None = None
        if TASKS_KEY in model.metadata_props:
            tasks = set(TaskTable.model_validate_json(model.metadata_props[TASKS_KEY]).by_key())
        functions = {f.name for f in model.functions.values() if f.domain == WORKFLOW_DOMAIN}
        checker = _Checker(model.opset_imports, tasks, functions)
        checker.graph(model.graph, visible=set(), names=set())
        for function in model.functions.values():
            fchecker = _Checker(function.opset_imports or model.opset_imports, tasks, functions)
            fchecker.graph(function.graph, visible=set(), names=set())
        logger.debug("verified %d nodes", checker.count)
        return ir.passes.PassResult(model, modified=False)


class _Checker:
    def __init__(self, opsets: dict[str, int], tasks: set[str] | None, functions: set[str]) -> None:
        self.opsets = opsets
        self.tasks = tasks
        self.functions = functions
        self.count = 0

    def fail(self, node: ir.Node | None, message: str) -> None:
        where = node.metadata_props.get(SPAN_KEY, "") if node is not None else ""
        raise IRVerificationError(f"{where}: {message}" if where else message)

    def define(self, value: ir.Value, names: set[str], node: ir.Node | None) -> None:
        if not value.name:
            self.fail(node, "a value has no name")
        if value.name in names:
            self.fail(node, f"SSA name {value.name!r} is defined more than once")
        names.add(value.name)  # type: ignore[arg-type]

    def graph(self, graph: ir.Graph, visible: set[int], names: set[str]) -> None:
        defined = set(visible)
        for value in graph.inputs:
            self.define(value, names, None)
            if value.type is None and TYPE_KEY not in value.metadata_props:
                self.fail(None, f"graph input {value.name!r} of {graph.name!r} has no type")
            defined.add(id(value))
        for value in graph.initializers.values():
            self.define(value, names, None)
            defined.add(id(value))
        for node in graph:
            self.count += 1
            self.node(node, defined, names)
            for out in node.outputs:
                self.define(out, names, node)
                defined.add(id(out))
        for value in graph.outputs:
            if id(value) not in defined:
                self.fail(None, f"output {value.name!r} of graph {graph.name!r} is never defined")

    def node(self, node: ir.Node, defined: set[int], names: set[str]) -> None:
        if node.domain not in self.opsets:
            self.fail(node, f"{node.op_type}: domain {node.domain!r} is not declared in the opset imports")
        for value in node.inputs:
            if value is not None and id(value) not in defined:
                self.fail(node, f"{node.op_type}: input {value.name!r} is used before it is defined (or the graph has a cycle)")
        if node.domain == NAMU_DOMAIN and node.op_type not in NAMU_OPS:
            self.fail(node, f"unknown namu op {node.op_type!r}")
        if node.domain == NAMU_DOMAIN and node.op_type == "Task":
            attr = node.attributes.get("task")
            if attr is None:
                self.fail(node, "namu.Task without a `task` attribute")
            elif self.tasks is not None and attr.as_string() not in self.tasks:
                self.fail(node, f"task {attr.as_string()!r} is not in the task table")
        if node.domain == WORKFLOW_DOMAIN and node.op_type not in self.functions:
            self.fail(node, f"call to unknown sub-workflow {node.op_type!r}")
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.GRAPH:
                self.graph(attr.as_graph(), defined, names)
            elif attr.type == ir.AttributeType.GRAPHS:
                for g in attr.as_graphs():
                    self.graph(g, defined, names)
