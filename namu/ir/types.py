"""namu's static types, and how they map onto ONNX types.

Every SSA value has a :class:`ValueType`. The mapping onto ONNX is fixed:

=====================  ==========================================  =====================
Python annotation       ValueType                                   ONNX type
=====================  ==========================================  =====================
``int``                 ``ValueType.int()``                          ``tensor(int64)``, shape ``[]``
``float``               ``ValueType.float()``                        ``tensor(double)``, shape ``[]``
``bool``                ``ValueType.bool()``                         ``tensor(bool)``, shape ``[]``
``str``                 ``ValueType.str()``                          ``tensor(string)``, shape ``[]``
``list[T]``             ``ValueType.list(T)``                        ``seq(<T>)`` when T maps to ONNX
anything else           ``ValueType.opaque(name)``                   ``opaque(namu, name)``
=====================  ==========================================  =====================

onnx_ir has no opaque type, so an opaque value carries its type name in the value's
``metadata_props`` under :data:`TYPE_KEY`; :mod:`namu.ir.serde` writes the ONNX
``opaque_type`` when saving and reads it back when loading.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Sequence
from typing import Any

import onnx_ir as ir

__all__ = [
    "ARITHMETIC_OPS",
    "operator_type",
    "accepts",
    "builtin_class",
    "is_unknown",
    "join",
    "TYPE_KEY",
    "ValueType",
    "arithmetic_type",
    "item_type",
    "join_all",
    "scalar_type",
    "from_annotation",
    "parse_type",
    "set_type",
    "type_of",
    "value_like",
]

#: metadata key holding the type name of an opaque value.
TYPE_KEY = "namu.type"

_SCALARS: dict[str, ir.DataType] = {
    "int": ir.DataType.INT64,
    "float": ir.DataType.DOUBLE,
    "bool": ir.DataType.BOOL,
    "str": ir.DataType.STRING,
}
_DTYPE_TO_SCALAR = {dtype: name for name, dtype in _SCALARS.items()}


@dataclasses.dataclass(frozen=True)
class ValueType:
    """The static type of one SSA value.

    Attributes:
        kind: ``"int"``, ``"float"``, ``"bool"``, ``"str"``, ``"list"`` or ``"opaque"``.
        elem: the element type of a ``"list"``.
        name: the Python type name of an ``"opaque"`` value (``"object"`` when unknown).
        items: element types of a fixed-length tuple (opaque ``"tuple"``), if known.
    """

    kind: str
    elem: ValueType | None = None
    name: str = ""
    items: tuple[ValueType, ...] | None = None

    # -- constructors -----------------------------------------------------------------
    @classmethod
    def int(cls) -> ValueType:
        return cls("int")

    @classmethod
    def float(cls) -> ValueType:
        return cls("float")

    @classmethod
    def bool(cls) -> ValueType:
        return cls("bool")

    @classmethod
    def str(cls) -> ValueType:
        return cls("str")

    @classmethod
    def list(cls, elem: ValueType) -> ValueType:
        return cls("list", elem=elem)

    @classmethod
    def opaque(cls, name: str = "object", items: tuple[ValueType, ...] | None = None) -> ValueType:
        return cls("opaque", name=name, items=items)

    # -- queries ----------------------------------------------------------------------
    @property
    def is_scalar(self) -> bool:
        """True for int, float, bool and str: the types ONNX arithmetic accepts."""
        return self.kind in _SCALARS

    @property
    def is_numeric(self) -> bool:
        return self.kind in ("int", "float", "bool")

    @functools.cached_property
    def onnx_type(self) -> ir.TypeProtocol | None:
        """The ONNX type, or ``None`` when the value is opaque to ONNX (computed once per
        type; onnx_ir's type objects are immutable, so values share it)."""
        if self.kind in _SCALARS:
            return ir.TensorType(_SCALARS[self.kind])
        if self.kind == "list" and self.elem is not None:
            inner = self.elem.onnx_type
            return None if inner is None else ir.SequenceType(inner)
        return None

    @property
    def onnx_shape(self) -> ir.Shape | None:
        return ir.Shape([]) if self.kind in _SCALARS else None

    @property
    def is_onnx(self) -> bool:
        """True when standard ONNX ops may carry this value (tensor or sequence)."""
        return self.onnx_type is not None

    def __str__(self) -> str:
        if self.kind == "list":
            return f"list[{self.elem}]"
        if self.kind == "opaque":
            if self.items is not None:
                return f"tuple[{', '.join(str(i) for i in self.items)}]"
            return self.name
        return self.kind


def from_annotation(annotation: Any) -> ValueType:
    """Map a Python annotation to a :class:`ValueType`.

    ``inspect.Parameter.empty``, ``typing.Any`` and unknown classes become opaque types;
    ``list[T]`` keeps its element type; ``tuple[A, B]`` keeps its item types.
    """
    if annotation is Any or annotation is inspect.Parameter.empty or annotation is object:
        return ValueType.opaque("object")
    if annotation in (int, float, bool, str):
        return ValueType(annotation.__name__)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is list and len(args) == 1:
        return ValueType.list(from_annotation(args[0]))
    if origin is tuple and args and args[-1] is not Ellipsis:
        return ValueType.opaque("tuple", items=tuple(from_annotation(a) for a in args))
    if annotation is None or annotation is types.NoneType:
        return ValueType.opaque("NoneType")
    if isinstance(annotation, type):
        if annotation.__module__ == "builtins":
            return ValueType.opaque(annotation.__qualname__)
        return ValueType.opaque(f"{annotation.__module__}.{annotation.__qualname__}")
    if origin is not None and isinstance(origin, type) and origin.__module__ == "builtins":
        return ValueType.opaque(origin.__qualname__)
    return ValueType.opaque("object")


#: Python's arithmetic and bitwise operators, by their names in the ``operator`` module:
#: the values of ``namu.Arith``'s ``op`` attribute (``neg``, ``pos`` and ``invert`` take
#: one operand, the rest two).
ARITHMETIC_OPS = (
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos",
    "and_", "or_", "xor", "lshift", "rshift", "invert", "matmul",
)
#: the bitwise operators of :data:`ARITHMETIC_OPS` (``&``, ``|``, ``^`` on two bools give a bool)
_BITWISE = frozenset({"and_", "or_", "xor"})


def arithmetic_type(op: str, operands: Sequence[ValueType], exponent: int | None = None) -> ValueType | None:
    """The type of Python's ``operator.<op>`` (one of :data:`ARITHMETIC_OPS`) on operands
    of the types ``operands``; None when an operand is not a number (int, float, bool).

    namu's ``float``, like the annotation under PEP 484's numeric tower, stands for "an
    int or a float" (an ``int`` is acceptable where a ``float`` is expected): that is the
    type of a result that is an int for some operand values and a float for others.

    * ``truediv``: ``float``;
    * ``pow`` of ints (or bools): ``float`` when ``exponent`` (its value, when it is a
      constant) is negative (``2 ** -1`` is ``0.5``), else ``int``. An exponent only
      known at run time is typed ``int``, as for a non-negative one: that is the common
      case (``2 ** i`` over a ``range``), it keeps such a value usable as a loop-carried
      ``int``, and a negative exponent still computes Python's float at run time (the
      static type is then only an approximation, as annotations are in Python;
      typeshed itself types ``int ** int`` by the exponent's literal sign, ``Any`` when
      unknown). ``pow`` with a float operand is ``float`` (a negative base with a
      fractional exponent gives a ``complex``, as in Python);
    * the others (``add``, ``sub``, ``mul``, ``floordiv``, ``mod``, ``neg``, ``pos``):
      ``float`` if an operand is a float, else ``int`` (bools compute as ints).
    """
    if not all(t.is_numeric for t in operands):
        return None
    if op == "matmul":
        return None
    if op in _BITWISE | {"lshift", "rshift", "invert"}:
        if any(t.kind == "float" for t in operands):
            return None  # Python raises TypeError
        return ValueType.bool() if op in _BITWISE and all(t.kind == "bool" for t in operands) else ValueType.int()
    has_float = any(t.kind == "float" for t in operands)
    if op == "truediv" or has_float:
        return ValueType.float()
    if op == "pow" and operands[1].kind != "bool" and exponent is not None and exponent < 0:
        return ValueType.float()
    return ValueType.int()


def operator_type(op: str, operands: Sequence[ValueType]) -> ValueType:
    """The type of Python's ``operator.<op>`` (one of :data:`ARITHMETIC_OPS`) on operands
    of any types: :func:`arithmetic_type` for numbers; for sequences what Python gives
    (``str + str``, ``str * int`` and ``str % x`` are ``str``; ``list + list`` a list of
    the joined item types; ``list * int`` the list's type; ``tuple + tuple`` a tuple of
    both item types); else ``object``. A combination Python refuses (``"a" + 1``) raises
    its ``TypeError`` at run time, as in Python."""
    numeric = arithmetic_type(op, operands)
    if numeric is not None:
        return numeric
    kinds = [t.kind for t in operands]
    if op == "add" and len(operands) == 2:
        a, b = operands
        if kinds == ["str", "str"]:
            return ValueType.str()
        if kinds == ["list", "list"] and a.elem is not None and b.elem is not None:
            return ValueType.list(join(a.elem, b.elem))
        if a.items is not None and b.items is not None:
            return ValueType.opaque("tuple", items=a.items + b.items)
        cls = builtin_class(a)
        if cls in (list, tuple, bytes) and cls is builtin_class(b):
            return ValueType.opaque(cls.__name__)
    if op == "mul" and len(operands) == 2:
        for seq, count in (operands, operands[::-1]):
            if count.kind in ("int", "bool"):
                if seq.kind in ("str", "list"):
                    return seq
                cls = builtin_class(seq)
                if cls in (tuple, bytes):
                    return ValueType.opaque(cls.__name__)
    if op == "mod" and operands and operands[0].kind == "str":
        return ValueType.str()
    return ValueType.opaque()


# ---------------------------------------------------------------------- type relations
#: the kinds whose values are builtin scalars
_SCALAR_KINDS = frozenset({"int", "float", "bool", "str"})
#: PEP 484's numeric tower: an int is acceptable where a float or complex is expected.
_NUMERIC_TOWER: dict[type, tuple[type, ...]] = {complex: (float, int), float: (int,)}


def is_unknown(vtype: ValueType | None) -> bool:
    """True for no type at all or plain ``object`` (Python's ``Any``)."""
    return vtype is None or (vtype.kind == "opaque" and vtype.name == "object" and vtype.items is None)


def builtin_class(vtype: ValueType) -> type | None:
    """The builtin class of values of ``vtype``, or None for a class namu cannot see."""
    if vtype.kind in ("int", "float", "bool", "str", "list"):
        return getattr(builtins, vtype.kind)
    if vtype.kind != "opaque":
        return None
    if vtype.name == "NoneType":
        return type(None)
    cls = getattr(builtins, vtype.name, None) if "." not in vtype.name else None
    return cls if isinstance(cls, type) else None


def accepts(expected: ValueType, actual: ValueType) -> bool:
    """True when a value of type ``actual`` may be passed where ``expected`` is annotated
    (PEP 484: subclasses, and the numeric tower: an int where a float is expected)."""
    if expected is actual or (expected.kind == actual.kind and expected.kind in _SCALAR_KINDS):
        return True
    if is_unknown(expected) or is_unknown(actual) or expected == actual:
        return True
    if expected.kind == "list" and actual.kind == "list":
        anything = ValueType.opaque()
        return accepts(expected.elem or anything, actual.elem or anything)
    if expected.items is not None and actual.items is not None:
        return len(expected.items) == len(actual.items) and all(map(accepts, expected.items, actual.items))
    want, have = builtin_class(expected), builtin_class(actual)
    if want is None or have is None:
        return True  # a user class or an ABC: it may be a (virtual) subclass
    return issubclass(have, want) or issubclass(have, _NUMERIC_TOWER.get(want, ()))


def join_all(types: Sequence[ValueType]) -> ValueType:
    """The :func:`join` of every type of ``types`` (``object`` for none)."""
    result = types[0] if types else ValueType.opaque()
    for t in types[1:]:
        result = join(result, t)
    return result


def item_type(seq: ValueType) -> ValueType:
    """The type of the items Python's iteration over a value of type ``seq`` yields."""
    if seq.kind == "list" and seq.elem is not None:
        return seq.elem
    if seq.kind == "str":
        return ValueType.str()
    if seq.kind == "opaque" and seq.name == "range":
        return ValueType.int()
    return ValueType.opaque()


def scalar_type(dtype: ir.DataType) -> ValueType | None:
    """namu's scalar type of a 0-d tensor of ``dtype``, or None if namu has none."""
    vtype = type_of(ir.Value(type=ir.TensorType(dtype)))
    return vtype if vtype.is_scalar else None


def join(a: ValueType, b: ValueType) -> ValueType:
    """The type of a value that is an ``a`` or a ``b`` (the phi of two paths)."""
    if a == b:
        return a
    if a.kind == "list" and b.kind == "list" and a.elem is not None and b.elem is not None:
        return ValueType.list(join(a.elem, b.elem))
    if a.items is not None and b.items is not None and len(a.items) == len(b.items):
        return ValueType.opaque("tuple", items=tuple(map(join, a.items, b.items)))
    cls = builtin_class(a)
    if cls is not None and cls is builtin_class(b):
        return ValueType.opaque(cls.__name__)  # e.g. list[int] | list: a list
    return ValueType.opaque()


def _from_onnx(onnx_type: ir.TypeProtocol) -> ValueType:
    if isinstance(onnx_type, ir.TensorType):
        scalar = _DTYPE_TO_SCALAR.get(onnx_type.dtype)
        return ValueType(scalar) if scalar is not None else ValueType.opaque(f"tensor({onnx_type.dtype.name.lower()})")
    if isinstance(onnx_type, ir.SequenceType):
        return ValueType.list(_from_onnx(onnx_type.elem_type))  # type: ignore[arg-type]
    return ValueType.opaque()


def parse_type(text: str) -> ValueType:
    """Parse the string form of a ValueType (the inverse of ``str``)."""
    text = text.strip()
    if text in _SCALARS:
        return ValueType(text)
    if text.startswith("list[") and text.endswith("]"):
        return ValueType.list(parse_type(text[5:-1]))
    if text.startswith("tuple[") and text.endswith("]"):
        return ValueType.opaque("tuple", items=tuple(parse_type(p) for p in _split_top(text[6:-1])))
    return ValueType.opaque(text)


def _split_top(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def set_type(value: ir.Value, vtype: ValueType) -> None:
    """Give ``value`` its ONNX type and shape, and record namu's type where ONNX has none."""
    value.type = vtype.onnx_type
    value.shape = vtype.onnx_shape
    value.meta["namu.vtype"] = vtype
    if vtype.is_onnx:
        value.metadata_props.pop(TYPE_KEY, None)
    else:
        value.metadata_props[TYPE_KEY] = str(vtype)


def type_of(value: ir.Value) -> ValueType:
    """The :class:`ValueType` of ``value`` (read back from ONNX type or metadata)."""
    cached = value.meta.get("namu.vtype")
    if cached is not None:
        return cached
    if TYPE_KEY in value.metadata_props:
        vtype = parse_type(value.metadata_props[TYPE_KEY])
    elif value.type is not None:
        vtype = _from_onnx(value.type)
    else:
        vtype = ValueType.opaque()
    value.meta["namu.vtype"] = vtype
    return vtype


def value_like(value: ir.Value, name: str | None = None) -> ir.Value:
    """A new value with ``value``'s type (``object`` if it has none), named ``name``
    (default: ``value``'s name)."""
    new = ir.Value(name=value.name if name is None else name)
    set_type(new, type_of(value))
    return new
