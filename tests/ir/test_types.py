"""namu's value types: annotation mapping, ONNX mapping, and string round trips."""

from __future__ import annotations

import operator
from typing import Any

import onnx_ir as ir
from hypothesis import given
from hypothesis import strategies as st

from namu.ir.types import ARITHMETIC_OPS, ValueType, arithmetic_type, from_annotation, parse_type, set_type, type_of

scalars = st.sampled_from([ValueType.int(), ValueType.float(), ValueType.bool(), ValueType.str()])
opaques = st.sampled_from(["object", "dict", "NoneType", "pathlib.Path"]).map(ValueType.opaque)
value_types = st.recursive(
    scalars | opaques,
    lambda inner: inner.map(ValueType.list) | st.lists(inner, min_size=1, max_size=3).map(lambda items: ValueType.opaque("tuple", items=tuple(items))),
    max_leaves=6,
)


@given(value_types)
def test_string_form_round_trips(vtype: ValueType) -> None:
    assert parse_type(str(vtype)) == vtype


@given(value_types)
def test_value_metadata_round_trips(vtype: ValueType) -> None:
    value = ir.Value(name="v")
    set_type(value, vtype)
    fresh = ir.Value(name="v", type=value.type, shape=value.shape, metadata_props=dict(value.metadata_props))
    assert type_of(fresh) == vtype


def test_annotations_map_to_onnx_types() -> None:
    assert from_annotation(int).onnx_type == ir.TensorType(ir.DataType.INT64)
    assert from_annotation(float).onnx_type == ir.TensorType(ir.DataType.DOUBLE)
    assert from_annotation(str).onnx_type == ir.TensorType(ir.DataType.STRING)
    assert from_annotation(list[list[bool]]).onnx_type == ir.SequenceType(ir.SequenceType(ir.TensorType(ir.DataType.BOOL)))
    assert from_annotation(list[dict]).onnx_type is None  # a list of opaque values is opaque
    assert from_annotation(dict[str, int]) == ValueType.opaque("dict")
    assert from_annotation(tuple[int, str]) == ValueType.opaque("tuple", items=(ValueType.int(), ValueType.str()))
    assert from_annotation(Any) == ValueType.opaque("object")


numbers = st.one_of(st.integers(-(10**30), 10**30), st.floats(-1e6, 1e6), st.booleans())


@given(op=st.sampled_from(ARITHMETIC_OPS), a=numbers, b=st.one_of(st.integers(-5, 5), st.floats(-5, 5), st.booleans()), known=st.booleans())
def test_arithmetic_type_holds_python_results(op: str, a: Any, b: Any, known: bool) -> None:
    """The type of ``operator.<op>`` says what Python computes: an ``int`` type means an int
    (or a bool), ``float`` means a float or an int (PEP 484's numeric tower)."""
    operands = (a,) if op in ("neg", "pos", "invert") else (a, b)
    exponent = b if known and op == "pow" and type(b) is int else None
    vtype = arithmetic_type(op, [ValueType(type(v).__name__) for v in operands], exponent)
    try:
        result = getattr(operator, op)(*operands)
    except (ArithmeticError, ValueError):  # 1 / 0, 1 << -1: Python's error at run time
        return
    except TypeError:  # `1.0 & 2`, `~1.5`, `2 @ 3`: refused by Python, typed None
        assert vtype is None
        return
    if op in ("and_", "or_", "xor") and all(type(v) is bool for v in operands):
        assert vtype == ValueType.bool() and type(result) is bool
        return
    allowed = {"int": (int,), "float": (float, int, complex)}[vtype.kind]  # type: ignore[union-attr]
    if op == "pow" and exponent is None and vtype.kind == "int" and isinstance(b, int) and b < 0:
        assert isinstance(result, float)  # an unknown exponent is typed int; a negative one gives a float
        return
    assert isinstance(result, allowed), (op, operands, result, vtype)


def test_int_pow_type_follows_a_constant_exponent() -> None:
    i = ValueType.int()
    assert arithmetic_type("pow", [i, i], 2) == i
    assert arithmetic_type("pow", [i, i], -1) == ValueType.float()
    assert arithmetic_type("pow", [i, i]) == i  # known at run time only: the common case
    assert arithmetic_type("pow", [i, ValueType.bool()]) == i
    assert arithmetic_type("truediv", [i, i]) == ValueType.float()
    assert arithmetic_type("add", [ValueType.bool(), ValueType.bool()]) == i
    assert arithmetic_type("add", [i, ValueType.str()]) is None
