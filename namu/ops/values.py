"""Value ops: constants, arithmetic, comparison, logic, strings, containers.

Each computes its outputs from its inputs and attributes and nothing else (``namu.GetAttr``
and ``namu.ToList`` aside: a property or an iterator may do anything). Standard ops follow
ONNX semantics on Python scalars: ``int64`` ``Div`` truncates, ``Mod`` with ``fmod=0``
floors like Python's ``%``; Python ints do not overflow where ONNX ``int64`` would wrap;
division by zero raises ``ZeroDivisionError`` as in Python. ``namu.Arith`` is Python's own
arithmetic operator on whatever numbers it gets (the frontend lowers ``/``, ``//``, ``**``
and mixed-type arithmetic to it).

Where an op has a native kernel op, the kernel evaluates it through CPython's C API with
exactly the meaning of the Python callable here (``tests/kernel`` checks they agree).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import onnx_ir as ir

from namu.errors import IRVerificationError
from namu.ir.constants import constant_int, constant_of
from namu.ir.metadata import SPAN_KEY
from namu.ir.opsets import NAMU_DOMAIN, ONNX_DOMAIN
from namu.ir.types import (
    ARITHMETIC_OPS,
    ValueType,
    arithmetic_type,
    builtin_class,
    item_type,
    join_all,
    operator_type,
    scalar_type,
)
from namu.ops.registry import Built, OpEnv, Typer, TypeRule, op
from namu.ops.spans import with_span

__all__ = ["COMPARISONS", "NATIVE_ARITH"]

_OBJECT = ValueType.opaque()
_BOOL = ValueType.bool()


# ---------------------------------------------------------------------- type rules
def returns(vtype: ValueType) -> TypeRule:
    """A type rule: one output of type ``vtype``."""
    return lambda _typer, _node, _args: [vtype]


def _first(_typer: Typer, _node: ir.Node, args: list[ValueType]) -> list[ValueType]:
    return [args[0]]


def _joined(_typer: Typer, _node: ir.Node, args: list[ValueType]) -> list[ValueType]:
    """Standard elementwise arithmetic: the operands' (common) type."""
    return [join_all(args)]


def _items(_typer: Typer, _node: ir.Node, args: list[ValueType]) -> list[ValueType]:
    return [item_type(args[0])]


def _simple(domain: str, op_type: str, fn: Callable[..., Any], summary: str, *, spans: bool = True, **definition: Any) -> None:
    """Register an op computed by ``fn`` alone (its workflow line added to its errors)."""

    def build(node: ir.Node, _env: OpEnv) -> Built:
        return (with_span(fn, node) if spans else fn), None

    op(domain, op_type, summary, **definition)(build)


# ---------------------------------------------------------------------- constants
def _constant_type(_typer: Typer, node: ir.Node, _args: list[ValueType]) -> list[ValueType] | None:
    if "value" in node.attributes:
        tensor = node.attributes["value"].as_tensor()
        scalar = scalar_type(tensor.dtype) if tensor.shape.rank() == 0 else None
        return None if scalar is None else [scalar]
    simple = {"value_int": ValueType.int(), "value_string": ValueType.str()}
    return next(([t] for name, t in simple.items() if name in node.attributes), None)


def _constant(node: ir.Node, _env: OpEnv) -> Built:
    value = constant_of(node)
    return (lambda: value), None


op(ONNX_DOMAIN, "Constant", "a constant (a scalar `value` tensor)", types=_constant_type, pure=True, raises=False, fold="read")(
    _constant
)
op(NAMU_DOMAIN, "None", "the constant None", types=returns(ValueType.opaque("NoneType")), pure=True, raises=False, fold="read")(
    _constant
)


# ---------------------------------------------------------------------- arithmetic
def _trunc_div(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool):
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    return a / b


def _pow(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and b < 0:
        raise ValueError(f"{a} ** {b}: a negative exponent on ints gives a float; use floats")
    return a**b


_SAFE_ARITH = {"pure": True, "raises": False, "fold": "evaluate", "types": _joined}
_simple(ONNX_DOMAIN, "Add", operator.add, "a + b", native="add", **_SAFE_ARITH)
_simple(ONNX_DOMAIN, "Sub", operator.sub, "a - b", native="sub", **_SAFE_ARITH)
_simple(ONNX_DOMAIN, "Mul", operator.mul, "a * b", native="mul", **_SAFE_ARITH)
_simple(ONNX_DOMAIN, "Neg", operator.neg, "-a", native="neg", **_SAFE_ARITH)
_simple(ONNX_DOMAIN, "Div", _trunc_div, "a / b (ints truncate, as ONNX int64 Div)", pure=True, fold="evaluate", types=_joined)
_simple(ONNX_DOMAIN, "Pow", _pow, "a ** b", pure=True, fold="evaluate", types=_first)  # ONNX: the base's type


@op(ONNX_DOMAIN, "Mod", "a % b (fmod=0: Python's floor modulo; fmod=1: C's fmod)", types=_joined, pure=True, fold="evaluate")
def _mod(node: ir.Node, _env: OpEnv) -> Built:
    attr = node.attributes.get("fmod")
    return with_span(math.fmod if attr is not None and attr.as_int() else operator.mod, node), None


#: ``namu.Arith``'s ``op`` attribute -> Python's operator (``namu.ir.types.ARITHMETIC_OPS``).
_ARITH: dict[str, Callable[..., Any]] = {name: getattr(operator, name) for name in ARITHMETIC_OPS}
#: the ``namu.Arith`` operators the native kernel evaluates itself (through CPython's
#: number protocol: exactly Python's operator).
NATIVE_ARITH = frozenset({"add", "sub", "mul", "neg"})


def _arith_type(_typer: Typer, node: ir.Node, args: list[ValueType]) -> list[ValueType]:
    """Python's result type (``namu.ir.types.arithmetic_type`` on numbers,
    ``operator_type`` on sequences); ``object`` where it depends on the values."""
    name = node.attributes["op"].as_string()
    exponent = constant_int(node.inputs[1]) if name == "pow" and len(node.inputs) == 2 else None
    return [arithmetic_type(name, args, exponent) or operator_type(name, args)]


def _arith_native(node: ir.Node) -> str | None:
    name = node.attributes["op"].as_string()
    return name if name in NATIVE_ARITH else None


@op(
    NAMU_DOMAIN,
    "Arith",
    "Python's operator `op` (add, sub, mul, truediv, floordiv, mod, pow, neg, pos, and_, or_, xor, lshift, rshift, "
    "invert, matmul) on any values: its result and its errors (`str % x`, `list + list`, `\"a\" + 1` raising TypeError)",
    types=_arith_type,
    native=_arith_native,
    pure=True,
    fold="evaluate",
)
def _arith(node: ir.Node, _env: OpEnv) -> Built:
    name = node.attributes["op"].as_string()
    fn = _ARITH.get(name)
    if fn is None:
        raise IRVerificationError(
            f"{node.metadata_props.get(SPAN_KEY, '?')}: namu.Arith op {name!r} is not one of {', '.join(_ARITH)}"
        )
    return with_span(fn, node), None


def _cast_type(_typer: Typer, node: ir.Node, _args: list[ValueType]) -> list[ValueType] | None:
    scalar = scalar_type(ir.DataType(node.attributes["to"].as_int()))
    return None if scalar is None else [scalar]


_CASTS: dict[ir.DataType, type] = {
    ir.DataType.INT64: int,
    ir.DataType.INT32: int,
    ir.DataType.DOUBLE: float,
    ir.DataType.FLOAT: float,
    ir.DataType.BOOL: bool,
    ir.DataType.STRING: str,
}


@op(ONNX_DOMAIN, "Cast", "convert to the scalar type `to`", types=_cast_type, pure=True, fold="evaluate")
def _cast(node: ir.Node, _env: OpEnv) -> Built:
    target = ir.DataType(node.attributes["to"].as_int())
    if target not in _CASTS:
        raise IRVerificationError(f"Cast to {target} is not supported by namu's runtime")
    return with_span(_CASTS[target], node), None


# ---------------------------------------------------------------------- comparison and logic
_SAFE_PREDICATE = {"pure": True, "raises": False, "fold": "evaluate", "types": returns(_BOOL)}
_simple(ONNX_DOMAIN, "Equal", operator.eq, "a == b", native="eq", **_SAFE_PREDICATE)
_simple(ONNX_DOMAIN, "Less", operator.lt, "a < b", native="lt", **_SAFE_PREDICATE)
_simple(ONNX_DOMAIN, "LessOrEqual", operator.le, "a <= b", native="le", **_SAFE_PREDICATE)
_simple(ONNX_DOMAIN, "Greater", operator.gt, "a > b", native="gt", **_SAFE_PREDICATE)
_simple(ONNX_DOMAIN, "GreaterOrEqual", operator.ge, "a >= b", native="ge", **_SAFE_PREDICATE)
_simple(ONNX_DOMAIN, "Not", operator.not_, "not a", native="not", **_SAFE_PREDICATE)
_simple(ONNX_DOMAIN, "And", lambda a, b: a and b, "a and b", native="and", **_SAFE_PREDICATE)
_simple(ONNX_DOMAIN, "Or", lambda a, b: a or b, "a or b", native="or", **_SAFE_PREDICATE)

#: ``namu.Compare``'s ``op`` attribute -> Python's comparison (also its native op's name).
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt,
    "le": operator.le, "gt": operator.gt, "ge": operator.ge,
}


def _compare_type(_typer: Typer, _node: ir.Node, args: list[ValueType]) -> list[ValueType]:
    """``bool`` when both operands are of builtin types (whose comparisons give bools),
    else ``object`` (a class's ``__eq__`` may return anything: numpy gives arrays)."""
    return [_BOOL if all(t.is_scalar or builtin_class(t) is not None for t in args) else _OBJECT]


@op(
    NAMU_DOMAIN,
    "Compare",
    "Python comparison `op` (eq, ne, lt, le, gt, ge) of any two values: exact for an int with a float, "
    "`1 == \"1\"` is False and `\"a\" < 1` raises TypeError, as in Python",
    types=_compare_type,
    native=lambda node: node.attributes["op"].as_string(),
    pure=True,
    fold="evaluate",
)
def _compare(node: ir.Node, _env: OpEnv) -> Built:
    return COMPARISONS[node.attributes["op"].as_string()], None


_simple(NAMU_DOMAIN, "Truth", bool, "bool(input 0): Python truthiness", native="truth", pure=True, fold="evaluate", types=returns(_BOOL))
_simple(NAMU_DOMAIN, "IsNone", lambda x: x is None, "input 0 is None", pure=True, raises=False, fold="evaluate", types=returns(_BOOL))
_simple(
    NAMU_DOMAIN, "Contains", operator.contains, "input 1 in input 0: Python's membership test (`x in xs`)",
    pure=True, fold="evaluate", types=returns(_BOOL),
)


# ---------------------------------------------------------------------- identity, strings
_simple(ONNX_DOMAIN, "Identity", lambda x: x, "input 0 itself", native="identity", pure=True, raises=False, fold="evaluate", types=_first)
_simple(
    NAMU_DOMAIN, "Identity", lambda x: x, "Identity for opaque values (`x: T = v`: the annotation wins)",
    native="identity", pure=True, raises=False, fold="evaluate", types=_first,
)
_simple(
    ONNX_DOMAIN, "StringConcat", operator.add, "a + b on strings",
    native="add", pure=True, raises=False, fold="evaluate", types=returns(ValueType.str()),
)


@op(NAMU_DOMAIN, "Format", "str.format of attribute `template` with the inputs (an f-string)",
    types=returns(ValueType.str()), pure=True, fold="evaluate")
def _format(node: ir.Node, _env: OpEnv) -> Built:
    return with_span(node.attributes["template"].as_string().format, node), None


@op(NAMU_DOMAIN, "GetAttr", "input 0 . attribute `name`: attribute read", types=returns(_OBJECT))
def _get_attr(node: ir.Node, _env: OpEnv) -> Built:
    return with_span(operator.attrgetter(node.attributes["name"].as_string()), node), None


# ---------------------------------------------------------------------- containers
def _list_of_joined(_typer: Typer, _node: ir.Node, args: list[ValueType]) -> list[ValueType]:
    return [ValueType.list(join_all(args))]


def _sequence_empty_type(_typer: Typer, node: ir.Node, _args: list[ValueType]) -> list[ValueType] | None:
    dtype = ir.DataType(node.attributes["dtype"].as_int()) if "dtype" in node.attributes else ir.DataType.FLOAT
    scalar = scalar_type(dtype)
    return None if scalar is None else [ValueType.list(scalar)]


def _items_list(*items: Any) -> list[Any]:
    return list(items)


_CONSTRUCTOR = {"pure": True, "raises": False, "fold": "keep"}
_simple(
    ONNX_DOMAIN, "SequenceConstruct", _items_list, "a list of the inputs",
    spans=False, native="list", fresh=True, types=_list_of_joined, **_CONSTRUCTOR,
)
_simple(ONNX_DOMAIN, "SequenceEmpty", list, "an empty list", spans=False, fresh=True, types=_sequence_empty_type, **_CONSTRUCTOR)
_simple(
    NAMU_DOMAIN, "List", _items_list, "build a Python list from the inputs (items of mixed or opaque type)",
    spans=False, native="list", fresh=True, types=returns(ValueType.opaque("list")), **_CONSTRUCTOR,
)
_simple(
    NAMU_DOMAIN, "Tuple", lambda *items: items, "build a Python tuple from the inputs",
    spans=False, native="tuple", types=lambda _t, _n, args: [ValueType.opaque("tuple", items=tuple(args))], **_CONSTRUCTOR,
)


@op(NAMU_DOMAIN, "Dict", "build a dict with string keys from attribute `keys` and the inputs as values",
    types=returns(ValueType.opaque("dict")), fresh=True, **_CONSTRUCTOR)
def _dict(node: ir.Node, _env: OpEnv) -> Built:
    keys = tuple(node.attributes["keys"].as_strings())
    return (lambda *values: dict(zip(keys, values))), None


_simple(ONNX_DOMAIN, "SequenceLength", len, "len(input 0)", native="len", pure=True, raises=False, fold="evaluate", types=returns(ValueType.int()))
_simple(NAMU_DOMAIN, "Len", len, "len(input 0)", native="len", pure=True, fold="evaluate", types=returns(ValueType.int()))
_simple(ONNX_DOMAIN, "SequenceAt", operator.getitem, "input 0 [ input 1 ]", native="getitem", pure=True, fold="evaluate", types=_items)
_simple(
    NAMU_DOMAIN, "ToList", list, "list(input 0): materialize an iterable (dict keys, str characters, ...)",
    fresh=True, fold="evaluate", types=lambda _t, _n, args: [ValueType.list(item_type(args[0]))],
)


def _get_item_type(_typer: Typer, node: ir.Node, args: list[ValueType]) -> list[ValueType]:
    container = args[0]
    index = constant_int(node.inputs[1]) if len(node.inputs) > 1 else None
    if container.items is not None and index is not None and -len(container.items) <= index < len(container.items):
        return [container.items[index]]
    return [item_type(container)] if container.kind in ("list", "str") else [_OBJECT]


_simple(NAMU_DOMAIN, "GetItem", operator.getitem, "input 0 [ input 1 ]: subscript load", native="getitem", pure=True, fold="evaluate", types=_get_item_type)


def _slice_type(_typer: Typer, _node: ir.Node, args: list[ValueType]) -> list[ValueType]:
    container = args[0]
    if container.kind in ("str", "list"):
        return [container]
    cls = builtin_class(container)
    return [ValueType.opaque(cls.__name__)] if cls in (tuple, bytes) else [_OBJECT]


def _slice(value: Any, start: Any, stop: Any, step: Any) -> Any:
    return value[start:stop:step]


_simple(NAMU_DOMAIN, "Slice", _slice, "input 0 [ input 1 : input 2 : input 3 ]: Python's slicing (None: omitted)",
        pure=True, fold="evaluate", types=_slice_type)
_simple(NAMU_DOMAIN, "Set", lambda *items: set(items), "a set of the inputs (`{a, b}`)",
        fresh=True, pure=True, fold="keep", types=returns(ValueType.opaque("set")))


def _unpack_type(typer: Typer, node: ir.Node, args: list[ValueType]) -> list[ValueType]:
    source, n = args[0], len(node.outputs)
    star = _star(node)
    if star is not None:
        return [ValueType.opaque("list") if i == star else item_type(source) for i in range(n)]
    if source.items is not None:
        if len(source.items) != n:
            typer.fail(node, f"cannot unpack {source} into {n} values")
        return list(source.items)
    return [item_type(source)] * n


def _star(node: ir.Node) -> int | None:
    """The output a starred target (``*rest``) takes, or None."""
    attr = node.attributes.get("star")
    return attr.as_int() if attr is not None else None


@op(NAMU_DOMAIN, "Unpack", "unpack an iterable into exactly N outputs (Python's tuple unpacking); with `star`, "
    "that output gets a list of the items the others leave (`a, *rest, b = x`)", types=_unpack_type, pure=True,
    fold="evaluate")
def _unpack(node: ir.Node, _env: OpEnv) -> Built:
    n = len(node.outputs)
    star = _star(node)

    def unpack(value: Any) -> tuple[Any, ...]:
        items = tuple(value)
        if len(items) != n:
            qualifier = "too many" if len(items) > n else "not enough"
            raise ValueError(f"{qualifier} values to unpack (expected {n}, got {len(items)})")
        return items

    def unpack_starred(value: Any) -> tuple[Any, ...]:
        items = tuple(value)
        if len(items) < n - 1:
            raise ValueError(f"not enough values to unpack (expected at least {n - 1}, got {len(items)})")
        end = len(items) - (n - 1 - star)  # type: ignore[operator]
        return (*items[:star], list(items[star:end]), *items[end:])

    return with_span(unpack if star is None else unpack_starred, node), None
