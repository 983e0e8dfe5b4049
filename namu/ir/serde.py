"""Convert between namu's in-memory IR (an ``onnx_ir.Model``) and ``onnx.ModelProto``.

onnx_ir has no opaque type, so opaque values travel in memory as untyped values whose
``metadata_props["namu.type"]`` names their type. On the way to protobuf, every such
``ValueInfoProto`` gets ``type.opaque_type = (namu, <name>)``; on the way back, onnx_ir
leaves opaque values untyped and the metadata still names the type.
"""

from __future__ import annotations

import onnx
import onnx_ir as ir

from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.types import TYPE_KEY

__all__ = ["from_proto", "to_proto"]


def to_proto(model: ir.Model) -> onnx.ModelProto:
    """Serialize ``model`` to a ``ModelProto`` with opaque types filled in."""
    proto = ir.serde.serialize_model(model)
    _fill_opaque_graph(proto.graph)
    for function in proto.functions:
        for info in function.value_info:
            _fill_opaque(info)
        for node in function.node:
            _fill_opaque_node(node)
    return proto


def from_proto(proto: onnx.ModelProto) -> ir.Model:
    """Deserialize a ``ModelProto`` into namu's in-memory IR."""
    return ir.serde.deserialize_model(proto)


def _fill_opaque(info: onnx.ValueInfoProto) -> None:
    if info.type.WhichOneof("value") is not None:
        return
    for prop in info.metadata_props:
        if prop.key == TYPE_KEY:
            info.type.opaque_type.domain = NAMU_DOMAIN
            info.type.opaque_type.name = prop.value
            return


def _fill_opaque_graph(graph: onnx.GraphProto) -> None:
    for info in (*graph.input, *graph.output, *graph.value_info):
        _fill_opaque(info)
    for node in graph.node:
        _fill_opaque_node(node)


def _fill_opaque_node(node: onnx.NodeProto) -> None:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            _fill_opaque_graph(attr.g)
        elif attr.type == onnx.AttributeProto.GRAPHS:
            for g in attr.graphs:
                _fill_opaque_graph(g)
