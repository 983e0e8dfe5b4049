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
from collections.abc import Callable, Sequence

import onnx_ir as ir

from namu.errors import TypeCheckError
from namu.ir.metadata import Parameter, TaskEntry, TaskTable
from namu.ir.opsets import NAMU_DOMAIN, ONNX_DOMAIN, WORKFLOW_DOMAIN
from namu.ir.scopes import callees_first, subgraphs
from namu.ir.types import (
    TYPE_KEY,
    ValueType,
    accepts,
    arithmetic_type,
    builtin_class,
    constant_int,
    is_unknown,
    join,
    parse_type,
    set_type,
    type_of,
)
from namu.passes.base import Example, NamuPass, fail
from namu.passes.registry import register

__all__ = ["InferTypesPass", "check_task_call"]

logger = logging.getLogger(__name__)

_OBJECT = ValueType.opaque()


@register(
    "infer-types",
    "every value is typed; task and sub-workflow call arguments match their annotations",
    order=50,
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


# ---------------------------------------------------------------------- type relations
def _join_all(types: Sequence[ValueType]) -> ValueType:
    result = types[0] if types else _OBJECT
    for t in types[1:]:
        result = join(result, t)
    return result


def _elem(seq: ValueType) -> ValueType:
    """The type of the items Python's iteration over a value of type ``seq`` yields."""
    if seq.kind == "list" and seq.elem is not None:
        return seq.elem
    if seq.kind == "str":
        return ValueType.str()
    return _OBJECT


def _scalar(dtype: ir.DataType) -> ValueType | None:
    """namu's scalar type of a 0-d tensor of ``dtype``, or None if namu has none."""
    vtype = type_of(ir.Value(type=ir.TensorType(dtype)))
    return vtype if vtype.is_scalar else None


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
        kw_attr = node.attributes.data.get("kwnames")  # the plain dict: faster than the mapping's get
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
#: standard elementwise arithmetic: the result has the operands' (common) type.
_ARITHMETIC = frozenset({"Add", "Sub", "Mul", "Div", "Mod", "Neg", "Abs", "Min", "Max"})
#: ops whose result is a bool, in both domains.
_PREDICATES = frozenset(
    [(ONNX_DOMAIN, op) for op in ("Not", "And", "Or", "Xor", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual")]
    + [(NAMU_DOMAIN, "Truth"), (NAMU_DOMAIN, "Compare"), (NAMU_DOMAIN, "Contains"), (NAMU_DOMAIN, "IsNone")]
)

Rule = Callable[["_Inferer", ir.Node, list[ValueType]], "list[ValueType] | None"]


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
        in_types = [self.type(v) for v in node.inputs]
        domain, op_type = node.domain, node.op_type
        key = (domain, op_type)
        if key in _PREDICATES:
            out: list[ValueType] | None = [ValueType.bool()]
        elif domain == ONNX_DOMAIN and op_type in _ARITHMETIC:
            out = [_join_all(in_types)]
        elif domain == WORKFLOW_DOMAIN:
            out = self.call_function(node, in_types)
        else:
            rule = _RULES.get(key)
            if rule is None:
                for g in subgraphs(node):  # an op without a rule: its bodies
                    self.graph(g)
                return
            out = rule(self, node, in_types)
        if out is None:
            return
        trust = key == (NAMU_DOMAIN, "Identity")
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

    # -- control flow ---------------------------------------------------------------
    def condition(self, node: ir.Node, vtype: ValueType) -> None:
        if not is_unknown(vtype) and vtype.kind != "bool":
            fail(node, f"{node.op_type}: the condition is {vtype}, not bool", TypeCheckError)

    def if_(self, node: ir.Node, args: list[ValueType]) -> list[ValueType]:
        self.condition(node, args[0])
        then_g, else_g = node.attributes["then_branch"].as_graph(), node.attributes["else_branch"].as_graph()
        self.graph(then_g)
        self.graph(else_g)
        return [join(self.type(t), self.type(e)) for t, e in zip(then_g.outputs, else_g.outputs)]

    def loop(self, node: ir.Node, args: list[ValueType]) -> list[ValueType]:
        body = node.attributes["body"].as_graph()
        if len(args) > 1 and node.inputs[1] is not None:
            self.condition(node, args[1])
        onnx_only = node.domain == ONNX_DOMAIN
        starts = [ValueType.int(), ValueType.bool(), *args[2:]]
        for value, start in zip(body.inputs, starts):
            self.settle(node, value, start, onnx_only=onnx_only)
        carried = [self.type(v) for v in body.inputs[2:]]
        self.graph(body)
        outs = [self.type(v) for v in body.outputs]
        if outs:
            self.condition(node, outs[0])
        for value, before, after in zip(body.inputs[2:], carried, outs[1:]):
            if not is_unknown(before) and not (accepts(before, after) and accepts(after, before)):
                fail(node, f"loop-carried value {value.name!r} changes type inside the loop ({before} -> {after})", TypeCheckError)
        return carried

    def map(self, node: ir.Node, args: list[ValueType]) -> list[ValueType]:
        body = node.attributes["body"].as_graph()
        if body.inputs:
            self.settle(node, body.inputs[0], _elem(args[0]), onnx_only=False)
        self.graph(body)
        if not node.outputs or not body.outputs:
            return []
        result = self.type(body.outputs[0])
        flatten = "flatten" in node.attributes and node.attributes["flatten"].as_int()
        if flatten:
            return [result if result.kind == "list" else ValueType.opaque("list")]
        return [ValueType.list(result)]

    # -- namu ops -------------------------------------------------------------------
    def task(self, node: ir.Node, args: list[ValueType]) -> list[ValueType]:
        signature = self.tasks.get(node.attributes.data["task"].value)
        if signature is None:
            return [_OBJECT] * len(node.outputs)
        signature.check(node, args)
        return [signature.returns]

    def unpack(self, node: ir.Node, args: list[ValueType]) -> list[ValueType]:
        source, n = args[0], len(node.outputs)
        if source.items is not None:
            if len(source.items) != n:
                fail(node, f"cannot unpack {source} into {n} values", TypeCheckError)
            return list(source.items)
        return [_elem(source)] * n

    def get_item(self, node: ir.Node, args: list[ValueType]) -> list[ValueType]:
        container = args[0]
        index = constant_int(node.inputs[1]) if len(node.inputs) > 1 else None
        if container.items is not None and index is not None and -len(container.items) <= index < len(container.items):
            return [container.items[index]]
        return [_elem(container)] if container.kind in ("list", "str") else [_OBJECT]


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


def _constant(_: _Inferer, node: ir.Node, __: list[ValueType]) -> list[ValueType] | None:
    if "value" in node.attributes:
        tensor = node.attributes["value"].as_tensor()
        scalar = _scalar(tensor.dtype) if tensor.shape.rank() == 0 else None
        return None if scalar is None else [scalar]
    simple = {"value_int": ValueType.int(), "value_string": ValueType.str()}
    return next(([t] for name, t in simple.items() if name in node.attributes), None)


def _cast(_: _Inferer, node: ir.Node, __: list[ValueType]) -> list[ValueType] | None:
    scalar = _scalar(ir.DataType(node.attributes["to"].as_int()))
    return None if scalar is None else [scalar]


def _arith(_: _Inferer, node: ir.Node, args: list[ValueType]) -> list[ValueType]:
    """``namu.Arith``: Python's result type (``namu.ir.types.arithmetic_type``); an
    operand of unknown type gives ``object``."""
    op = node.attributes["op"].as_string()
    exponent = constant_int(node.inputs[1]) if op == "pow" and len(node.inputs) == 2 else None
    return [arithmetic_type(op, args, exponent) or _OBJECT]


def _sequence_empty(_: _Inferer, node: ir.Node, __: list[ValueType]) -> list[ValueType] | None:
    dtype = ir.DataType(node.attributes["dtype"].as_int()) if "dtype" in node.attributes else ir.DataType.FLOAT
    scalar = _scalar(dtype)
    return None if scalar is None else [ValueType.list(scalar)]


# One rule per op: (domain, op) -> the output types from the input types (None: unknown).
_RULES: dict[tuple[str, str], Rule] = {
    (ONNX_DOMAIN, "Constant"): _constant,
    (ONNX_DOMAIN, "Identity"): lambda _, __, a: [a[0]],
    (ONNX_DOMAIN, "Cast"): _cast,
    (ONNX_DOMAIN, "Pow"): lambda _, __, a: [a[0]],  # ONNX: the base's type
    (ONNX_DOMAIN, "StringConcat"): lambda *_: [ValueType.str()],
    (ONNX_DOMAIN, "SequenceConstruct"): lambda _, __, a: [ValueType.list(_join_all(a))],
    (ONNX_DOMAIN, "SequenceEmpty"): _sequence_empty,
    (ONNX_DOMAIN, "SequenceAt"): lambda _, __, a: [_elem(a[0])],
    (ONNX_DOMAIN, "SequenceLength"): lambda *_: [ValueType.int()],
    (ONNX_DOMAIN, "SequenceInsert"): lambda _, __, a: [a[0]],
    (ONNX_DOMAIN, "SequenceErase"): lambda _, __, a: [a[0]],
    (ONNX_DOMAIN, "If"): _Inferer.if_,
    (ONNX_DOMAIN, "Loop"): _Inferer.loop,
    (NAMU_DOMAIN, "If"): _Inferer.if_,
    (NAMU_DOMAIN, "Loop"): _Inferer.loop,
    (NAMU_DOMAIN, "Map"): _Inferer.map,
    (NAMU_DOMAIN, "Task"): _Inferer.task,
    (NAMU_DOMAIN, "Arith"): _arith,
    (NAMU_DOMAIN, "Identity"): lambda _, __, a: [a[0]],  # x: T = v -- the annotation wins
    (NAMU_DOMAIN, "None"): lambda *_: [ValueType.opaque("NoneType")],
    (NAMU_DOMAIN, "List"): lambda *_: [ValueType.opaque("list")],
    (NAMU_DOMAIN, "Tuple"): lambda _, __, a: [ValueType.opaque("tuple", items=tuple(a))],
    (NAMU_DOMAIN, "Dict"): lambda *_: [ValueType.opaque("dict")],
    (NAMU_DOMAIN, "Unpack"): _Inferer.unpack,
    (NAMU_DOMAIN, "GetItem"): _Inferer.get_item,
    (NAMU_DOMAIN, "Len"): lambda *_: [ValueType.int()],
    (NAMU_DOMAIN, "Format"): lambda *_: [ValueType.str()],
    (NAMU_DOMAIN, "GetAttr"): lambda *_: [ValueType.opaque()],
    (NAMU_DOMAIN, "ToList"): lambda _, __, a: [ValueType.list(_elem(a[0]))],
}
