"""namu's value types: annotation mapping, ONNX mapping, and string round trips."""

from __future__ import annotations

from typing import Any

import onnx_ir as ir
from hypothesis import given
from hypothesis import strategies as st

from namu.ir.types import ValueType, parse_type, from_annotation, python_type, set_type, type_of

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


def test_python_types_for_validation() -> None:
    assert python_type(from_annotation(list[int])) == list[int]
    assert python_type(ValueType.opaque("dict")) is dict
    assert python_type(ValueType.opaque("pathlib.Path")) is Any
