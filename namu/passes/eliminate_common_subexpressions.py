"""``eliminate-common-subexpressions``: compute each pure expression once per scope."""

from __future__ import annotations

import logging
import struct
from collections.abc import Hashable

import onnx_ir as ir

from namu.ir.attrs import attributes_of
from namu.ir.scopes import subgraphs, top_graphs
from namu.passes.base import Example, NamuPass
from namu.passes.effects import CONTROL_FLOW, FRESH_MUTABLE, PURE_BUILTINS, pure_tasks, task_of
from namu.passes.registry import register
from namu.passes.rewire import replace_node

__all__ = ["EliminateCommonSubexpressionsPass"]

logger = logging.getLogger(__name__)

_MERGEABLE = PURE_BUILTINS - FRESH_MUTABLE


@register(
    "eliminate-common-subexpressions",
    "no pure op or pure task call repeats an equal computation of the same scope or an enclosing one",
    after=("fold-constants",),
    group="cleanup",
    level=1,
)
class EliminateCommonSubexpressionsPass(NamuPass):
    """Merge equal pure computations: the later one reads the earlier one's results.

    Value numbering in one pass over each graph in topological order (Cocke, "Global
    Common Subexpression Elimination", 1970; on SSA, a hash table from
    ``(domain, op_type, attributes, input values)`` to the first node computing it
    suffices). Merged are calls of ``pure=True`` tasks with the same task, inputs and
    ``kwnames`` (and other attributes), and builtin ops that have no effect with the
    same op, attributes and inputs; constants of equal value (same dtype and bytes, so
    ``0.0`` and ``-0.0`` stay apart) merge too, within their own graph (a constant is
    free to run; reading an enclosing one would cost the subgraph a capture).

    Scopes: a subgraph (If branch, Loop or Map body) sees the table of the nodes of the
    enclosing graphs that precede its node, so one of its nodes may be replaced by an
    equal value of an enclosing scope (which dominates it) or of its own graph, never
    by one of a sibling branch. A node whose result is a graph output keeps its name:
    a merged task call there becomes an ``Identity`` of the earlier result; a builtin op
    there stays (an ``Identity`` would cost as much).

    Never merged: calls of impure tasks (effects), ``Slot``/``Send``/``Recv``/``Gate``/
    ``Fused``, sub-workflow calls, control flow (its bodies are value-numbered, but whole
    If/Loop/Map nodes are not compared), and ops that return a fresh mutable list or dict
    (``SequenceConstruct``, ``namu.List``, ``namu.Dict``, ``namu.ToList`` ...): in Python
    ``[x]`` twice is two lists, and a task mutating one must not change the other.

    onnx_ir's ``CommonSubexpressionEliminationPass`` is not used: it would merge impure
    task calls (it knows no effects), stays in the main graph (no subgraphs, no
    enclosing scopes), compares string constants by object address, and renames the
    surviving value after a removed graph output.

    Guarantees:
        No mergeable node computes what a node before it in its graph, or before its
            control-flow node in an enclosing graph, computes from the same values
            (except builtin ops producing graph outputs, see above).
        Readers of removed nodes read the surviving node's outputs; graph outputs keep
            their names.
        One pass, linear in the number of nodes.
    """

    EXAMPLE = Example(
        before="""
        g (int64 x) => (int64 y) {
          a = namu.Task <task = "square"> (x)
          b = namu.Task <task = "square"> (x)
          l1 = namu.Task <task = "log"> (x)
          l2 = namu.Task <task = "log"> (x)
          s = Add(a, b)
          t = Add(a, b)
          y = Add(s, t)
        }""",
        after="""
        g (int64 x) => (int64 y) {
          a = namu.Task <task = "square"> (x)
          l1 = namu.Task <task = "log"> (x)
          l2 = namu.Task <task = "log"> (x)
          s = Add(a, a)
          y = Add(s, s)
        }""",
        pure_tasks=("square",),
        impure_tasks=("log",),
        note="`square` is pure, so its second call goes; `log` has an effect and runs twice.",
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        numbering = _Numbering(pure_tasks(model))
        for graph in top_graphs(model):
            numbering.graph(graph)
        logger.debug("merged %d nodes", numbering.merged)
        self.changed(numbering.merged)
        return self.result(model)


class _Numbering:
    """A scoped value-numbering table: entries of a subgraph vanish when it is done."""

    def __init__(self, pure: frozenset[str]) -> None:
        self.pure = pure
        self.table: dict[Hashable, ir.Node] = {}
        self.merged = 0
        #: id(attribute) -> (the attribute, kept alive so that its id stays its own; its
        #: key). expand-defaults gives every call of a task the same option attributes.
        self._attribute_keys: dict[int, tuple[ir.Attr, Hashable | None]] = {}

    def graph(self, graph: ir.Graph) -> None:
        added: list[Hashable] = []
        for node in list(graph):
            if (node.domain, node.op_type) in CONTROL_FLOW:
                for body in subgraphs(node):
                    self.graph(body)
                continue
            key = self.key(node, graph)
            if key is None:
                continue
            kept = self.table.get(key)
            if kept is None:
                self.table[key] = node
                added.append(key)
                continue
            if task_of(node) is None and any(out.is_graph_output() for out in node.outputs):
                continue
            replace_node(graph, node, kept.outputs)
            self.merged += 1
        for key in added:
            del self.table[key]

    def key(self, node: ir.Node, graph: ir.Graph) -> Hashable | None:
        """What ``node`` (of ``graph``) computes, or None when it must not be merged."""
        task = task_of(node)
        if task is not None:
            if task not in self.pure:
                return None
        elif (node.domain, node.op_type) not in _MERGEABLE:
            return None
        attrs = self.attributes_key(node)
        if attrs is None:
            return None
        # A constant costs nothing to run (executors preload it), and reading an enclosing
        # scope's costs a capture: builtin ops without inputs merge within their graph only.
        scope = id(graph) if not node.inputs and task is None else None
        return (node.domain, node.op_type, node.overload, len(node.outputs), tuple(node.inputs), attrs, scope)

    def attributes_key(self, node: ir.Node) -> Hashable | None:
        """A hashable value equal for nodes with equal attributes (None: not comparable)."""
        keys = []
        for name, attr in attributes_of(node).items():
            known = self._attribute_keys.get(id(attr))
            if known is None:
                known = self._attribute_keys[id(attr)] = (attr, _attribute_key(attr))
            if known[1] is None:
                return None
            keys.append((name, known[1]))
        keys.sort()
        return tuple(keys)


def _attribute_key(attr: ir.Attr) -> Hashable | None:
    """A hashable value equal for equal attributes (None: not comparable)."""
    kind = attr.type
    if kind in (ir.AttributeType.INT, ir.AttributeType.STRING):
        return (kind, attr.value)
    if kind == ir.AttributeType.FLOAT:
        return (kind, struct.pack("<d", attr.value))  # 0.0 != -0.0
    if kind in (ir.AttributeType.INTS, ir.AttributeType.STRINGS):
        return (kind, tuple(attr.value))
    if kind == ir.AttributeType.FLOATS:
        return (kind, tuple(struct.pack("<d", v) for v in attr.value))
    if kind == ir.AttributeType.TENSOR:
        tensor = attr.value  # as_tensor() would check a protocol: slow on big graphs
        array = tensor.numpy()
        data = tuple(array.reshape(-1).tolist()) if tensor.dtype == ir.DataType.STRING else array.tobytes()
        return (kind, tensor.dtype, tuple(array.shape), data)
    return None
