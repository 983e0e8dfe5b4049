"""``verify-structure``: reject malformed IR before anything runs or mutates it."""

from __future__ import annotations

import logging

import onnx_ir as ir

from namu.errors import IRVerificationError
from namu.ir.metadata import SPAN_KEY
from namu.ir.opsets import NAMU_DOMAIN
from namu.ops.registry import lookup
from namu.ir.scopes import subgraphs
from namu.ir.types import TYPE_KEY
from namu.passes.base import Example, NamuPass
from namu.passes.registry import register

__all__ = ["VerifyStructurePass"]

logger = logging.getLogger(__name__)


@register(
    "verify-structure",
    "declared opsets, unique SSA names, every input defined before use, typed graph inputs, known namu ops",
    after=(),
    level=0,
)
class VerifyStructurePass(NamuPass):
    """Check the structural invariants every later pass and the runtime rely on.

    The checks are purely structural -- whether a called task or sub-workflow exists is
    ``resolve-symbols``'s -- and take one walk over the model. The pass changes nothing.

    Guarantees:
        Every node's domain is declared in the opset imports (its function's, in a
            function).
        SSA names are unique in the main graph and in each function, nested scopes
            included.
        Every node input is a graph input, an initializer, a value of an enclosing scope
            or an output of an earlier node, so every graph is acyclic; every graph
            output is defined.
        Every graph input is typed.
        Every namu-domain op is a known one, and every ``namu.Task`` has a ``task``
            attribute.

    Raises:
        IRVerificationError: the first violation found, with the node's source span.
    """

    EXAMPLE = Example(
        before='g (int64 x) => (int64 y) { y = Add(x, z)  z = Neg(x) }',
        error="IRVerificationError: Add: input 'z' is used before it is defined (or the graph has a cycle)",
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        checker = _Checker(model.opset_imports)
        checker.graph(model.graph, defined=set(), names=set())
        for function in model.functions.values():
            fchecker = _Checker(function.opset_imports or model.opset_imports)
            fchecker.graph(function.graph, defined=set(), names=set())
        logger.debug("verified %d nodes", checker.count)
        return ir.passes.PassResult(model, modified=False)


class _Checker:
    def __init__(self, opsets: dict[str, int]) -> None:
        self.opsets = opsets
        self.count = 0

    def fail(self, node: ir.Node | None, message: str) -> None:
        where = node.metadata_props.get(SPAN_KEY, "") if node is not None else ""
        raise IRVerificationError(f"{where}: {message}" if where else message)

    def define(self, value: ir.Value, names: set[str], node: ir.Node | None) -> None:
        name = value.name
        if not name:
            self.fail(node, "a value has no name")
        if name in names:
            self.fail(node, f"SSA name {name!r} is defined more than once")
        names.add(name)  # type: ignore[arg-type]

    def graph(self, graph: ir.Graph, defined: set[int], names: set[str]) -> None:
        """Check ``graph``; ``defined`` holds the ids of the values of enclosing scopes.

        The values ``graph`` defines are added to ``defined`` while it is checked and
        removed afterwards (one shared set: copying it per subgraph would be quadratic).
        """
        scope: list[int] = []
        for value in graph.inputs:
            self.define(value, names, None)
            if value.type is None and TYPE_KEY not in value.metadata_props:
                self.fail(None, f"graph input {value.name!r} of {graph.name!r} has no type")
            scope.append(id(value))
        for value in graph.initializers.values():
            self.define(value, names, None)
            scope.append(id(value))
        defined.update(scope)
        for node in graph:
            self.count += 1
            self.node(node, defined, names)
            for out in node.outputs:
                self.define(out, names, node)
                defined.add(id(out))
                scope.append(id(out))
        for value in graph.outputs:
            if id(value) not in defined:
                self.fail(None, f"output {value.name!r} of graph {graph.name!r} is never defined")
        defined.difference_update(scope)

    def node(self, node: ir.Node, defined: set[int], names: set[str]) -> None:
        domain, op_type = node.domain, node.op_type
        if domain not in self.opsets:
            self.fail(node, f"{op_type}: domain {domain!r} is not declared in the opset imports")
        for value in node.inputs:
            if value is not None and id(value) not in defined:
                self.fail(node, f"{op_type}: input {value.name!r} is used before it is defined (or the graph has a cycle)")
        if domain == NAMU_DOMAIN:
            if lookup(NAMU_DOMAIN, op_type) is None:
                self.fail(node, f"unknown namu op {op_type!r}")
            if op_type == "Task" and "task" not in node.attributes:
                self.fail(node, "namu.Task without a `task` attribute")
        for graph in subgraphs(node):
            self.graph(graph, defined, names)
