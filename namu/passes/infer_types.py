"""``infer-types``: derive every value's type from the annotations, and check task calls.

The frontend types most values while lowering; this pass re-derives the types on the IR
(so hand-written or transformed IR is typed and checked too) in one forward sweep per
graph. It is a gradual type checker (Siek & Taha, "Gradual Typing for Functional
Languages", 2006): ``object`` -- an opaque value of unknown class -- is consistent with
every type, so only mismatches between *known* types are errors, as in mypy.

Type relations used here:

``accepts(expected, actual)``
    a value of type ``actual`` may be passed where ``expected`` is annotated: equal
    types; Python's numeric tower (``int`` where ``float`` or ``complex`` is expected,
    ``bool`` where ``int`` is); ``list[T]`` element-wise; fixed tuples item-wise; a
    subclass of a builtin class; and anything where either side is ``object`` or a
    class namu cannot see through (a user class or an ABC may have subclasses).
``join(a, b)``
    the type of a value that is an ``a`` on one path and a ``b`` on the other (an If's
    phi): equal types stay, lists and tuples join element-wise, the rest is ``object``.
"""

from __future__ import annotations

import logging

import onnx_ir as ir

from namu.errors import TypeCheckError
from namu.ir.attrs import attributes_of
from namu.ir.metadata import Parameter, TaskEntry, TaskTable
from namu.ir.opsets import NAMU_DOMAIN, ONNX_DOMAIN
from namu.ir.scopes import callees_first, subgraphs, walk
from namu.ir.types import (
    TYPE_KEY,
    ValueType,
    accepts,
    is_unknown,
    parse_type,
    set_type,
    type_of,
)
from namu.ops.registry import lookup
from namu.passes.base import Example, NamuPass, fail
from namu.passes.registry import register

__all__ = ["InferTypesPass", "check_task_call"]

logger = logging.getLogger(__name__)

_OBJECT = ValueType.opaque()
#: namu ops whose outputs keep the types the IR gives them (ops the passes after this one
#: add, and ``namu.Slot``, whose result type comes with the task it is bound to)
_UNTYPED_OUTPUTS = frozenset({"Gate", "Fused", "Send", "Recv", "Slot"})


@register(
    "infer-types",
    "every value is typed; task and sub-workflow call arguments match their annotations",
    after=("inline-functions",),
    level=0,
)
class InferTypesPass(NamuPass):
    """Propagate types from the annotations through every op, branch, loop and fan-out,
    and check every task call against its task's parameter annotations.

    Each node's output types are derived from its inputs' types: a task call gives its
    task's return annotation (``returns`` in the task table), an ``If`` the join of its
    branches' values (the phi), a ``Loop`` its carried values' types, a ``namu.Map`` the
    list of its body's result type, ``namu.Unpack``/``namu.GetItem`` the items of a known
    tuple or list, a sub-workflow call its function's outputs, ``namu.Arith`` Python's
    result type (``int ** int`` is ``int`` for a constant non-negative exponent, else
    ``float``: an int or a float, as PEP 484's numeric tower reads ``float``); standard
    ops follow ONNX.
    A value the IR leaves untyped gets the derived type (``set_type``; standard-domain
    values only when the type is a tensor or sequence, as ONNX needs); a typed value
    keeps its type, which must accept the derived one (``namu.Identity``, the
    annotation cast ``x: T = ...``, is trusted).

    The check is gradual typing (Siek & Taha, "Gradual Typing for Functional
    Languages", 2006), as mypy does it: ``object`` -- an unannotated or unknown value
    -- is consistent with every type, so only a mismatch of two known types is an
    error. One forward sweep per graph (subgraphs and functions once each): linear.

    Tasks whose table entry has no ``params`` (artifacts compiled before the field
    existed) are not checked.

    Guarantees:
        Every output of a namu op, task call and sub-workflow call is typed, and every
            standard op's output whose type namu can express in ONNX.
        Every task call's arguments (positional, then ``kwnames`` by name) are
            accepted by the task's parameter annotations (``params`` in the task
            table): ``int`` where ``float`` is annotated, ``bool`` where ``int`` is,
            anything where the annotation is missing, ``object`` or ``Any``;
            ``list[T]`` checks its elements.
        Every sub-workflow call's arguments are accepted by its function's inputs.
        ``If`` and ``Loop`` conditions are ``bool``; loop-carried values keep their type.

    Raises:
        TypeCheckError: at the node's source line: an argument a task or sub-workflow
            does not accept (``task 'inc' parameter 'x' expects int, got str``), a
            missing or unexpected argument, a non-bool condition, a loop-carried value
            changing type, unpacking a tuple into the wrong number of names, or a typed
            value the op cannot produce.
    """

    EXAMPLE = Example(
        before="""
        g (int64 x) => (int64 y) { t = namu.Tuple(x, x)  a, b, c = namu.Unpack(t)  y = Identity(x) }""",
        error="TypeCheckError: cannot unpack tuple[int, int] into 3 values",
        note="`t` is inferred as `tuple[int, int]` from its items, so unpacking it into three "
        "names fails before the workflow runs. A task call is checked the same way against "
        "the task's annotations: `task 'inc' parameter 'x' expects int, got str`.",
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        signatures = {t.key: _TaskSignature.of(t) for t in TaskTable.of(model).tasks}
        inferer = _Inferer(signatures, model.functions)
        for function in callees_first(model):  # callees first: a call finds its callee typed
            inferer.function(function)
        inferer.graph(model.graph)
        logger.debug("typed %d values", inferer.typed)
        self.changed(inferer.typed)
        return self.result(model)

    def ensures(self, model: ir.Model) -> None:
        for node in walk(model):
            if node.domain == NAMU_DOMAIN and node.op_type in _UNTYPED_OUTPUTS or node.domain == ONNX_DOMAIN:
                continue
            for value in node.outputs:
                if not _declared(value):
                    self.broken(f"the output {value.name!r} of {node.op_type} is not typed", node)


# ---------------------------------------------------------------------- task signatures
class _TaskSignature:
    """A task's parameters as parsed types, for binding the arguments of its calls."""

    def __init__(self, key: str, params: list[Parameter] | None, returns: ValueType) -> None:
        self.key = key
        self.params = params
        self.returns = returns
        self.types = {p.name.lstrip("*"): parse_type(p.type) for p in params or []}
        names = [p.name for p in params or []]
        first_star = next((i for i, n in enumerate(names) if n.startswith("*")), len(names))
        self.positional = names[:first_star]
        self.var_positional = next((n[1:] for n in names if n.startswith("*") and not n.startswith("**")), None)
        self.var_keyword = next((n[2:] for n in names if n.startswith("**")), None)
        self.required = [p.name for p in params or [] if not p.has_default and not p.name.startswith("*")]
        #: (number of arguments, kwnames) -> the binding of a call of that shape
        self.plans: dict[tuple[int, tuple[str, ...]], list[tuple[str, ValueType]]] = {}

    @classmethod
    def of(cls, entry: TaskEntry) -> _TaskSignature:
        """The signature of the task of a task-table entry."""
        return cls(entry.key, entry.params, parse_type(entry.returns))

    def check(self, node: ir.Node, args: list[ValueType]) -> None:
        """Bind the call's arguments to the parameters and check each one's type.

        Raises:
            TypeCheckError: too many positional arguments, an unexpected or missing
                argument, or an argument the parameter's annotation does not accept.
        """
        if self.params is None:
            return
        kw_attr = attributes_of(node).get("kwnames")
        kwnames = tuple(kw_attr.as_strings()) if kw_attr is not None else ()
        plan = self.plans.get((len(args), kwnames))
        if plan is None:
            plan = self.plans[len(args), kwnames] = self.bind(node, len(args), kwnames)
        for (name, expected), actual in zip(plan, args):
            if not accepts(expected, actual):
                fail(node, f"task {self.key!r} parameter {name!r} expects {expected}, got {actual}", TypeCheckError)

    def bind(self, node: ir.Node, nargs: int, kwnames: tuple[str, ...]) -> list[tuple[str, ValueType]]:
        """The parameter (name, annotated type) each argument of a call binds to, in
        argument order (as Python binds ``f(*positional, **dict(zip(kwnames, rest)))``)."""
        npos = nargs - len(kwnames)
        plan: list[tuple[str, ValueType]] = []
        for i in range(npos):
            if i < len(self.positional):
                name = self.positional[i]
            elif self.var_positional is not None:
                name = self.var_positional
            else:
                fail(node, f"task {self.key!r} takes {len(self.positional)} positional arguments but {npos} were given", TypeCheckError)
            plan.append((name, self.types[name]))
        for name in kwnames:
            if name in self.types and name not in (self.var_positional, self.var_keyword):
                if any(bound == name for bound, _ in plan):
                    fail(node, f"task {self.key!r} got multiple values for argument {name!r}", TypeCheckError)
                plan.append((name, self.types[name]))
            elif self.var_keyword is not None:
                plan.append((name, self.types[self.var_keyword]))
            else:
                fail(node, f"task {self.key!r} got an unexpected keyword argument {name!r}", TypeCheckError)
        missing = [name for name in self.required if name not in {n for n, _ in plan}]
        if missing:
            fail(node, f"task {self.key!r} is missing the argument {missing[0]!r}", TypeCheckError)
        return plan


# ---------------------------------------------------------------------- the sweep
class _Inferer:
    """One forward sweep over a graph: derive each node's output types, check, write."""

    def __init__(self, tasks: dict[str, _TaskSignature], functions: dict[ir.OperatorIdentifier, ir.Function]) -> None:
        self.tasks = tasks
        self.functions = functions
        self.done: set[ir.OperatorIdentifier] = set()
        # Every value's type once known: as declared, else as inferred (also when ONNX
        # cannot hold it on a standard op's output), else object.
        self.types: dict[ir.Value, ValueType] = {}
        self.typed = 0

    # -- values ---------------------------------------------------------------------
    def type(self, value: ir.Value | None) -> ValueType:
        """The type of ``value``: as the IR gives it, else as inferred, else ``object``."""
        if value is None:
            return _OBJECT
        vtype = self.types.get(value)
        if vtype is None:
            vtype = self.types[value] = _declared_type(value)
        return vtype

    def settle(self, node: ir.Node, value: ir.Value, inferred: ValueType, *, onnx_only: bool, trust: bool = False) -> None:
        """Give an untyped ``value`` the ``inferred`` type, or check its declared type.

        Args:
            node: the op producing ``value``, or whose body takes it as an input.
            onnx_only: write only tensor or sequence types (standard-domain values).
            trust: the declared type is an assertion the op makes (annotation cast).

        Raises:
            TypeCheckError: ``value``'s declared type does not accept ``inferred``.
        """
        if _declared(value):
            declared = self.types[value] = type_of(value)
            if not trust and not accepts(declared, inferred):
                fail(node, f"{node.op_type}: {value.name!r} is typed {declared} but holds {inferred}", TypeCheckError)
            return
        self.types[value] = inferred
        if inferred.is_onnx or not onnx_only:
            set_type(value, inferred)
            self.typed += 1

    # -- graphs and functions -------------------------------------------------------
    def graph(self, graph: ir.Graph) -> None:
        for node in graph:
            self.node(node)

    def function(self, function: ir.Function) -> None:
        key = function.identifier()
        if key in self.done:
            return
        self.done.add(key)  # before the body: a recursive call sees the declared types
        self.graph(function.graph)

    def node(self, node: ir.Node) -> None:
        """Type ``node``'s outputs by its op's registered type rule (an op namu does not
        know: its bodies only)."""
        in_types = [self.type(v) for v in node.inputs]
        domain = node.domain
        definition = lookup(domain, node.op_type)
        if definition is None:
            for g in subgraphs(node):
                self.graph(g)
            return
        out = definition.types(self, node, in_types)
        if out is None:
            return
        trust = domain == NAMU_DOMAIN and node.op_type == "Identity"
        onnx_only = domain == ONNX_DOMAIN
        for value, vtype in zip(node.outputs, out):
            self.settle(node, value, vtype, onnx_only=onnx_only, trust=trust)

    def call_function(self, node: ir.Node, args: list[ValueType]) -> list[ValueType] | None:
        function = self.functions.get(node.op_identifier())
        if function is None:
            return None
        self.function(function)
        for param, actual in zip(function.inputs, args):
            expected = self.type(param)
            if not accepts(expected, actual):
                fail(node, f"sub-workflow {node.op_type!r} parameter {param.name!r} expects {expected}, got {actual}", TypeCheckError)
        return [self.type(v) for v in function.outputs]

    def condition(self, node: ir.Node, vtype: ValueType) -> None:
        if not is_unknown(vtype) and vtype.kind != "bool":
            fail(node, f"{node.op_type}: the condition is {vtype}, not bool", TypeCheckError)

    def fail(self, node: ir.Node, reason: str) -> None:
        fail(node, reason, TypeCheckError)

    def call_task(self, node: ir.Node, args: list[ValueType]) -> list[ValueType]:
        signature = self.tasks.get(attributes_of(node)["task"].value)
        if signature is None:
            return [_OBJECT] * len(node.outputs)
        signature.check(node, args)
        return [signature.returns]


def _declared(value: ir.Value) -> bool:
    """True when the IR gives ``value`` a type (ONNX, opaque metadata, or set in memory)."""
    return value.type is not None or TYPE_KEY in value.metadata_props or "namu.vtype" in value.meta


def _declared_type(value: ir.Value | None) -> ValueType:
    """``value``'s type as the IR gives it, else ``object`` (unknown)."""
    return type_of(value) if value is not None and _declared(value) else _OBJECT


def check_task_call(node: ir.Node, entry: TaskEntry) -> ValueType:
    """Check a ``namu.Task`` call's arguments against its task's annotations, as this
    pass checks every call: for a pass that adds a task call after it ran.

    Args:
        node: the call; its inputs' types are the IR's (``object`` when untyped).
        entry: the called task's task-table entry.

    Returns:
        The call's result type: the task's return annotation.

    Raises:
        TypeCheckError: at ``node``'s source line, as :class:`InferTypesPass` raises it.
    """
    signature = _TaskSignature.of(entry)
    signature.check(node, [_declared_type(v) for v in node.inputs])
    return signature.returns
