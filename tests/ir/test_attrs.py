"""namu.ir.attrs: the fast attribute access relies on how onnx_ir stores attributes."""

from __future__ import annotations

import onnx_ir as ir

from namu.ir.attrs import attributes_of


def test_attributes_of_is_the_live_dict_behind_node_attributes() -> None:
    """Fails when onnx_ir stops keeping a node's attributes in a plain dict (the
    ``UserDict.data`` of ``ir.Attributes``): then switch namu.ir.attrs to the public API."""
    node = ir.Node("namu", "Task", [], attributes=[ir.AttrString("task", "add")])
    attrs = attributes_of(node)
    assert type(attrs) is dict
    assert attrs == {"task": node.attributes["task"]}

    node.attributes["retries"] = ir.AttrInt64("retries", 2)  # public writes are seen ...
    assert attrs["retries"].value == 2
    attrs["cache"] = ir.AttrInt64("cache", 1)  # ... and writes here are the node's
    assert node.attributes.get_int("cache") == 1
    del node.attributes["task"]
    assert "task" not in attrs
    assert attributes_of(node) is attrs


def test_attributes_of_a_deserialized_node() -> None:
    """Nodes read from protobuf keep their attributes in the same dict."""
    proto = ir.serde.serialize_node(
        ir.Node("", "Constant", [], attributes=[ir.AttrInt64("value_int", 3)], num_outputs=1)
    )
    node = ir.serde.deserialize_node(proto)
    assert attributes_of(node) == {"value_int": node.attributes["value_int"]}
    assert attributes_of(node)["value_int"].value == 3
