"""Build namu IR for any frontend: typed nodes that keep their source span, literals, calls.

An :class:`IRBuilder` makes the nodes of one source's graphs: each node gets a fresh
model-wide name, typed outputs, and the span of the source position it came from in its
metadata (``namu.span``, the onnxscript ``SourceInfo`` habit), so the runtime can say
which line a failing task was called from. Errors point at a source position too. The
frontend says what a position is through a :class:`SourceInfo` -- an ``ast`` node for
the Python frontend, a line number for a line-based format -- and passes one as ``at``
to every call.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import MutableMapping, Sequence
from typing import Any, NoReturn, Protocol

import numpy as np
import onnx_ir as ir

from namu.frontend.context import CompileContext
from namu.frontend.slot import Slot
from namu.frontend.task import Task
from namu.ir.constants import string_tensor
from namu.ir.metadata import SPAN_KEY
from namu.ir.opsets import NAMU_DOMAIN, opset_imports
from namu.ir.types import ValueType, set_type, type_of

__all__ = ["MAX_NESTING", "IRBuilder", "Scope", "SourceInfo", "base_name", "kwnames_attrs"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: How deep graphs may nest (If branches, Loop and Map bodies, counting those of the
#: sub-workflows inlined into them). An artifact must load: protobuf parses at most 100
#: nested messages (the limit of ONNX's loader and checker), each nested graph costs
#: three (graph, node, attribute), and a value's type takes up to about ten more; 24
#: levels leave room for deep types and the bodies passes add.
MAX_NESTING = 24


class SourceInfo(Protocol):
    """A frontend's source positions (``at``): the span stamped on a node, and errors."""

    def span(self, at: Any) -> str:
        """``"file:line:col"`` of the position ``at`` (line and column 1-based)."""
        ...

    def fail(self, at: Any, message: str) -> NoReturn:
        """Raise :class:`~namu.errors.WorkflowSyntaxError` pointing at ``at``."""
        ...


class Scope:
    """One graph under construction: a main graph, a function body or a subgraph.

    Attributes:
        env: the source's variables bound in this graph (or an enclosing one).
        nodes: the nodes made in this graph, in order.
        produced: ids of the values produced in this graph (its inputs included).
        depth: how many graphs enclose this one in its function.
    """

    def __init__(self, env: MutableMapping[str, ir.Value], depth: int = 0) -> None:
        self.env = env
        self.nodes: list[ir.Node] = []
        self.produced: set[int] = set()
        self.depth = depth

    def child(self) -> Scope:
        """A nested scope: sees this scope's variables; its assignments stay its own
        (O(1): a ChainMap layer, not a copy, so long workflows lower in linear time)."""
        return Scope(ChainMap({}, self.env), self.depth + 1)


def base_name(name: str | None) -> str:
    """``name`` without the ``_N`` suffix :meth:`CompileContext.fresh` may have added."""
    return (name or "v").rsplit("_", 1)[0] if name and name.rsplit("_", 1)[-1].isdigit() else (name or "v")


class IRBuilder:
    """Makes the IR of one source, in the graphs (:class:`Scope`) the frontend opens.

    Args:
        ctx: the compile's context (names, task table, functions).
        src: the source's positions; every method takes one as ``at``.

    Attributes:
        nesting: the deepest graph nesting made so far (:meth:`nest`).
    """

    #: What the nesting error advises (a frontend adds its own way out).
    nesting_advice = "move the inner work into a task"

    def __init__(self, ctx: CompileContext, src: SourceInfo) -> None:
        self.ctx = ctx
        self.src = src
        self.nesting = 0

    def nest(self, depth: int, at: Any, why: str = "") -> None:
        """Graphs nest ``depth`` deep at ``at``: record it, or reject it past :data:`MAX_NESTING`.

        Raises:
            WorkflowSyntaxError: deeper than an artifact can hold (``why`` says what counts).
        """
        if depth > MAX_NESTING:
            self.src.fail(
                at,
                f"control flow is nested more than {MAX_NESTING} levels deep here{why}, more than an "
                f"ONNX artifact can hold; {self.nesting_advice}",
            )
        self.nesting = depth

    def emit(
        self,
        scope: Scope,
        op_type: str,
        inputs: Sequence[ir.Value | None],
        out_types: Sequence[ValueType],
        at: Any,
        *,
        domain: str = "",
        attrs: Sequence[ir.Attr] = (),
        names: Sequence[str] | None = None,
    ) -> list[ir.Value]:
        """Append a node ``domain::op_type(inputs)`` to ``scope``, spanned at ``at``.

        Args:
            out_types: one type per output.
            names: a name hint per output (default: the op type in lower case).

        Returns:
            The node's outputs, typed.
        """
        node = ir.Node(
            domain,
            op_type,
            inputs,
            attributes=list(attrs),
            num_outputs=len(out_types),
            name=self.ctx.fresh(f"n_{op_type}"),
        )
        if scope.depth > self.nesting:
            self.nest(scope.depth, at)
        node.metadata_props[SPAN_KEY] = self.src.span(at)
        hints = names or [op_type.lower()] * len(out_types)
        for value, vtype, hint in zip(node.outputs, out_types, hints):
            value.name = self.ctx.fresh(hint)
            set_type(value, vtype)
            scope.produced.add(id(value))
        scope.nodes.append(node)
        return list(node.outputs)

    def emit1(self, scope: Scope, op_type: str, inputs: Sequence[ir.Value | None], out: ValueType, at: Any, **kw: Any) -> ir.Value:
        """:meth:`emit` of a node with one output, typed ``out``."""
        return self.emit(scope, op_type, inputs, [out], at, **kw)[0]

    def graph_input(self, scope: Scope, hint: str, vtype: ValueType) -> ir.Value:
        """A new value of type ``vtype`` that no node produces: an input of ``scope``'s graph."""
        value = ir.Value(name=self.ctx.fresh(hint))
        set_type(value, vtype)
        scope.produced.add(id(value))
        return value

    def main_graph(self, scope: Scope, inputs: list[ir.Value], outputs: list[ir.Value], name: str) -> ir.Graph:
        """``scope``'s nodes as a model's main graph or a function's, named ``name``, with
        namu's opset imports."""
        return ir.Graph(inputs, outputs, nodes=scope.nodes, name=name, opset_imports=opset_imports())

    def subgraph(self, scope: Scope, inputs: list[ir.Value], outputs: list[ir.Value], hint: str) -> ir.Graph:
        """``scope``'s nodes as a graph (a branch or a body), named after ``hint``."""
        return ir.Graph(inputs, outputs, nodes=scope.nodes, name=self.ctx.fresh(hint))

    def constant(self, scope: Scope, value: Any, at: Any, hint: str = "const") -> ir.Value:
        """A typed literal: ``Constant`` for scalars, sequences / namu ops for containers.

        Raises:
            WorkflowSyntaxError: an int beyond 64 bits, a dict with a non-string key, or a
                value of another type.
        """
        if value is None:
            return self.emit1(scope, "None", [], ValueType.opaque("NoneType"), at, domain=NAMU_DOMAIN, names=[hint])
        if isinstance(value, bool):
            tensor = ir.tensor(np.array(value, dtype=np.bool_))
            return self.emit1(scope, "Constant", [], ValueType.bool(), at, attrs=[ir.AttrTensor("value", tensor)], names=[hint])
        if isinstance(value, int):
            if not _INT64_MIN <= value <= _INT64_MAX:
                self.src.fail(at, f"integer literal {value} does not fit in 64 bits")
            tensor = ir.tensor(np.array(value, dtype=np.int64))
            return self.emit1(scope, "Constant", [], ValueType.int(), at, attrs=[ir.AttrTensor("value", tensor)], names=[hint])
        if isinstance(value, float):
            tensor = ir.tensor(np.array(value, dtype=np.float64))
            return self.emit1(scope, "Constant", [], ValueType.float(), at, attrs=[ir.AttrTensor("value", tensor)], names=[hint])
        if isinstance(value, str):
            tensor = string_tensor(value)
            return self.emit1(scope, "Constant", [], ValueType.str(), at, attrs=[ir.AttrTensor("value", tensor)], names=[hint])
        if isinstance(value, (list, tuple)):
            items = [self.constant(scope, v, at) for v in value]
            return self.container(scope, "List" if isinstance(value, list) else "Tuple", items, at)
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                self.src.fail(at, "dict constants need string keys")
            items = [self.constant(scope, v, at) for v in value.values()]
            return self.dictionary(scope, list(value), items, at)
        self.src.fail(at, f"a constant of type {type(value).__name__} cannot be used in a workflow")

    def container(self, scope: Scope, kind: str, items: list[ir.Value], at: Any) -> ir.Value:
        """A ``"List"`` or ``"Tuple"`` of ``items``: ``SequenceConstruct`` when ONNX can
        type the list, else ``namu.List`` / ``namu.Tuple``."""
        types = [type_of(v) for v in items]
        if kind == "List":
            if items and all(t == types[0] for t in types) and types[0].is_onnx:
                return self.emit1(scope, "SequenceConstruct", items, ValueType.list(types[0]), at, names=["list"])
            return self.emit1(scope, "List", items, ValueType.opaque("list"), at, domain=NAMU_DOMAIN)
        return self.emit1(scope, "Tuple", items, ValueType.opaque("tuple", items=tuple(types)), at, domain=NAMU_DOMAIN)

    def dictionary(self, scope: Scope, keys: list[str], values: list[ir.Value], at: Any) -> ir.Value:
        """``namu.Dict``: a dict with string keys."""
        return self.emit1(scope, "Dict", values, ValueType.opaque("dict"), at, domain=NAMU_DOMAIN, attrs=[ir.AttrStrings("keys", keys)])

    def identity(self, scope: Scope, value: ir.Value, at: Any) -> ir.Value:
        """A copy of ``value`` made in ``scope``."""
        vtype = type_of(value)
        domain = "" if vtype.is_onnx else NAMU_DOMAIN
        return self.emit1(scope, "Identity", [value], vtype, at, domain=domain, names=[base_name(value.name)])

    def ensure_local(self, scope: Scope, value: ir.Value, at: Any) -> ir.Value:
        """Graph outputs must be produced in their own graph: copy outer values in."""
        if id(value) in scope.produced and value.producer() is not None:
            return value
        return self.identity(scope, value, at)

    def dedupe_outputs(self, scope: Scope, outputs: list[ir.Value], at: Any) -> None:
        """Copy each value that ``outputs`` lists again, so every output is distinct."""
        seen: set[int] = set()
        for i, v in enumerate(outputs):
            if id(v) in seen:
                outputs[i] = self.identity(scope, v, at)
            seen.add(id(outputs[i]))

    def cast(self, scope: Scope, value: ir.Value, to: ValueType, at: Any) -> ir.Value:
        """``value`` as the tensor type ``to`` (itself when it has that type)."""
        if type_of(value) == to:
            return value
        dtype = to.onnx_type.dtype  # type: ignore[union-attr]
        return self.emit1(scope, "Cast", [value], to, at, attrs=[ir.AttrInt64("to", dtype.value)], names=[base_name(value.name)])

    def truth(self, scope: Scope, value: ir.Value, at: Any) -> ir.Value:
        """A bool tensor holding Python's ``bool(value)``."""
        if type_of(value).kind == "bool":
            return value
        return self.emit1(scope, "Truth", [value], ValueType.bool(), at, domain=NAMU_DOMAIN, names=["cond"])

    def call_task(self, scope: Scope, task: Task, inputs: list[ir.Value], at: Any, kwnames: Sequence[str] = ()) -> ir.Value:
        """``namu.Task``: a call of ``task``, which joins the task table.

        Args:
            inputs: the positional arguments, then the keyword arguments' values.
            kwnames: the keywords of the last ``len(kwnames)`` inputs.
        """
        attrs: list[ir.Attr] = [ir.AttrString("task", self.ctx.task_key(task)), *kwnames_attrs(kwnames)]
        return self.emit1(scope, "Task", inputs, task.return_type, at, domain=NAMU_DOMAIN, attrs=attrs, names=[task.name])

    def call_slot(self, scope: Scope, slot: Slot, inputs: list[ir.Value], at: Any, kwnames: Sequence[str] = ()) -> ir.Value:
        """``namu.Slot <slot="name">``: a call of a role slot, bound to a task by
        ``resolve-slots``; ``inputs`` and ``kwnames`` as for :meth:`call_task`."""
        attrs: list[ir.Attr] = [ir.AttrString("slot", slot.name), *kwnames_attrs(kwnames)]
        if slot.role is not None:
            attrs.append(ir.AttrString("role", slot.role))
        if slot.default is not None:
            self.ctx.slots.setdefault(slot.name, slot.default)  # under the compile's own bindings
        return self.emit1(scope, "Slot", inputs, slot.return_type, at, domain=NAMU_DOMAIN, attrs=attrs, names=[slot.name])


def kwnames_attrs(kwnames: Sequence[str]) -> list[ir.Attr]:
    """The ``kwnames`` attribute of a call whose last inputs are keyword arguments (none without)."""
    return [ir.AttrStrings("kwnames", list(kwnames))] if kwnames else []
