"""The wire envelope: a versioned protobuf message, payload tensors as ONNX ``TensorProto``.

The schema, version 1 (fields are only ever added, never renumbered or removed, so a
newer peer reads an older one's messages and the other way round)::

    syntax = "proto3";
    package namu.federated;
    import "onnx/onnx-ml.proto";

    message Envelope {
      uint32 version = 1;                  // WIRE_VERSION of the sender
      string kind = 2;                     // hello, welcome, refused, request, reply, error, bye
      string sender = 3;                   // peer ids
      string recipient = 4;
      string channel = 5;                  // the remote fan-out's channel
      uint64 round = 6;                    // exchanges of the channel so far, this one included
      uint64 correlation = 7;              // the exchange id
      uint64 item = 8;                     // the item's index in the fan-out
      int64 deadline_ns = 9;               // when the exchange closes (Unix time, ns)
      string digest = 10;                  // the sender's artifact digest (hello)
      repeated onnx.TensorProto tensors = 11;  // the payload's arrays
      string structure = 12;               // the payload's shape, as JSON, naming tensors by index
    }

The message class is built from this descriptor at import (``google.protobuf``'s
descriptor pool, with onnx's own ``TensorProto``), so no generated code is checked in.

A payload is a tree of ``None``, bools, ints, floats, strings, numpy arrays and numpy
scalars (each a ``TensorProto``), lists, tuples and dicts with string keys. Nothing
else crosses the wire -- in particular nothing is unpickled from the network.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import onnx
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from onnx import numpy_helper

from namu.federated.node import WIRE_VERSION, Envelope

__all__ = ["EnvelopeProto", "WireValueError", "check_wire_value", "decode", "encode"]


class WireValueError(TypeError):
    """A value cannot cross the wire (the message names its type and where it is)."""


def _message_class() -> Any:
    onnx_file = onnx.TensorProto.DESCRIPTOR.file
    pool = descriptor_pool.Default()
    name = "namu/federated/envelope.proto"
    try:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName("namu.federated.Envelope"))
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto(name=name, package="namu.federated", syntax="proto3",
                                               dependency=[onnx_file.name])
    message = proto.message_type.add(name="Envelope")
    F = descriptor_pb2.FieldDescriptorProto
    scalar = [
        ("version", F.TYPE_UINT32), ("kind", F.TYPE_STRING), ("sender", F.TYPE_STRING),
        ("recipient", F.TYPE_STRING), ("channel", F.TYPE_STRING), ("round", F.TYPE_UINT64),
        ("correlation", F.TYPE_UINT64), ("item", F.TYPE_UINT64), ("deadline_ns", F.TYPE_INT64),
        ("digest", F.TYPE_STRING),
    ]
    for number, (field, kind) in enumerate(scalar, start=1):
        message.field.add(name=field, number=number, type=kind, label=F.LABEL_OPTIONAL)
    message.field.add(name="tensors", number=11, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                      type_name=".onnx.TensorProto")
    message.field.add(name="structure", number=12, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("namu.federated.Envelope"))


#: the protobuf message class of the envelope
EnvelopeProto = _message_class()


def encode(envelope: Envelope) -> bytes:
    """``envelope`` as protobuf bytes.

    Raises:
        WireValueError: the payload holds a value that cannot cross the wire.
    """
    tensors: list[onnx.TensorProto] = []
    structure = _tree(envelope.payload, tensors, "payload")
    message = EnvelopeProto(
        version=envelope.version, kind=envelope.kind, sender=envelope.sender, recipient=envelope.recipient,
        channel=envelope.channel, round=envelope.round, correlation=envelope.correlation, item=envelope.item,
        deadline_ns=envelope.deadline_ns, digest=envelope.digest, structure=json.dumps(structure),
    )
    message.tensors.extend(tensors)
    return message.SerializeToString()


def decode(data: bytes) -> Envelope:
    """The :class:`Envelope` in protobuf ``data`` (fields a newer sender added are ignored).

    Raises:
        google.protobuf.message.DecodeError: ``data`` is not an envelope.
        ValueError: its payload structure is malformed.
    """
    message = EnvelopeProto.FromString(data)
    tensors = list(message.tensors)
    payload = _value(json.loads(message.structure), tensors) if message.structure else None
    return Envelope(
        kind=message.kind, sender=message.sender, recipient=message.recipient, channel=message.channel,  # type: ignore[arg-type]
        round=message.round, correlation=message.correlation, item=message.item, deadline_ns=message.deadline_ns,
        payload=payload, digest=message.digest, version=message.version or WIRE_VERSION,
    )


#: leaves that always cross the wire
_SCALARS = frozenset({type(None), bool, int, float, str})


def check_wire_value(value: Any, where: str = "payload") -> None:
    """Check that ``value`` can cross the wire, without encoding it (what a one-process
    federation checks, so a program that runs there runs across processes too). Builds
    nothing unless it fails: a few hundred nanoseconds for a list of arrays.

    Raises:
        WireValueError: it holds a value that cannot (the message says where).
    """
    if not _crosses(value):
        _tree(value, [], where)  # raises, saying where


def _crosses(value: Any) -> bool:
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is list or kind is tuple:
        for item in value:
            if type(item) not in _SCALARS and not _crosses(item):
                return False
        return True
    if kind is np.ndarray:
        return value.dtype.kind != "O"
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (type(item) not in _SCALARS and not _crosses(item)):
                return False
        return True
    return isinstance(value, (bool, int, float, str, np.generic, list, tuple)) and _tree_ok(value)


def _tree_ok(value: Any) -> bool:
    """Subclasses of the leaf and container types: checked the slow way."""
    try:
        _tree(value, [], "payload")
    except WireValueError:
        return False
    return True


def _tree(value: Any, tensors: list[onnx.TensorProto], where: str) -> Any:
    """The JSON structure of ``value``, its arrays appended to ``tensors``."""
    if value is None:
        return None
    if isinstance(value, bool):
        return {"b": value}
    if isinstance(value, int):
        return {"i": str(value)}  # any size, exactly
    if isinstance(value, float):
        return {"f": value.hex() if math.isfinite(value) else repr(value)}
    if isinstance(value, str):
        return {"s": value}
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype == object:
            raise WireValueError(f"{where}: an object array cannot cross the wire")
        tensors.append(numpy_helper.from_array(array))
        return {"t": len(tensors) - 1, "scalar": isinstance(value, np.generic)}
    if isinstance(value, (list, tuple)):
        items = [_tree(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]
        return {"l" if isinstance(value, list) else "u": items}
    if isinstance(value, dict):
        pairs = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise WireValueError(f"{where}: a dict key of type {type(key).__name__} cannot cross the wire (use str keys)")
            pairs.append([key, _tree(item, tensors, f"{where}[{key!r}]")])
        return {"d": pairs}
    name = type(value).__name__
    raise WireValueError(
        f"{where}: {'an' if name[0] in 'aeiouAEIOU' else 'a'} {name} cannot cross the wire; send numpy arrays, numbers, strings, "
        "bools, None, and lists, tuples and dicts of them"
    )


def _value(tree: Any, tensors: list[onnx.TensorProto]) -> Any:
    if tree is None:
        return None
    (kind, raw), *rest = tree.items()
    if kind == "b":
        return bool(raw)
    if kind == "i":
        return int(raw)
    if kind == "f":
        return float.fromhex(raw) if raw not in ("nan", "inf", "-inf") else float(raw)
    if kind == "s":
        return str(raw)
    if kind == "t":
        array = numpy_helper.to_array(tensors[raw])
        return array[()] if rest and rest[0][1] else array
    if kind == "l":
        return [_value(v, tensors) for v in raw]
    if kind == "u":
        return tuple(_value(v, tensors) for v in raw)
    if kind == "d":
        return {key: _value(v, tensors) for key, v in raw}
    raise ValueError(f"malformed wire payload: unknown kind {kind!r}")
