"""Reading the value of a constant op, as namu's runtime reads it (and writing a string
constant's tensor, :func:`string_tensor`).

One reader for everyone: the executors (which write constants into their slots once per
plan), ``fold-constants`` and ``simplify-control-flow`` (which evaluate what depends on
constants) and ``infer-types`` (which needs a constant exponent or index). A constant is
a ``Constant`` with a scalar ``value`` tensor, or ``namu.None``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir

from namu.ir.opsets import NAMU_DOMAIN

__all__ = [
    "NOT_CONSTANT",
    "constant_int",
    "constant_of",
    "constant_value",
    "is_constant",
    "is_constant_op",
    "string_tensor",
]

#: what :func:`constant_of` and :func:`constant_value` return for a non-constant
NOT_CONSTANT: Any = object()


def is_constant_op(node: ir.Node) -> bool:
    """Whether ``node`` is a constant op (``Constant``, ``namu.None``), readable or not."""
    return (node.domain == "" and node.op_type == "Constant") or (node.domain == NAMU_DOMAIN and node.op_type == "None")


def constant_of(node: ir.Node) -> Any:
    """The Python value of a constant node, else :data:`NOT_CONSTANT`.

    ``Constant``'s ``value`` tensor is read as a Python scalar (``int``, ``float``,
    ``bool``; a string tensor as ``str``); ``namu.None`` is ``None``.

    Raises:
        KeyError: a ``Constant`` without a ``value`` attribute (``value_int`` & co. are
            not read by the runtime).
    """
    if node.domain == "" and node.op_type == "Constant":
        tensor = node.attributes["value"].as_tensor()
        array = tensor.numpy()
        if tensor.dtype == ir.DataType.STRING:
            item = array.reshape(-1)[0] if array.ndim else array.item()
            return item.decode("utf-8") if isinstance(item, bytes) else str(item)
        return array.item()
    if node.domain == NAMU_DOMAIN and node.op_type == "None":
        return None
    return NOT_CONSTANT


def is_constant(value: Any) -> bool:
    """Whether ``value`` (from :func:`constant_of`) is a constant's value."""
    return value is not NOT_CONSTANT


def constant_value(value: ir.Value | None) -> Any:
    """The value of ``value`` when a readable constant node produces it, else
    :data:`NOT_CONSTANT` (also for a ``Constant`` the runtime cannot read).

    Reading a tensor attribute is slow (onnx_ir checks a protocol): callers that ask
    often about the same values remember the answers.
    """
    producer = value.producer() if value is not None else None
    if producer is None or not is_constant_op(producer):
        return NOT_CONSTANT
    try:
        return constant_of(producer)
    except Exception:  # noqa: BLE001 - e.g. Constant<value_float>: the run fails on it too
        return NOT_CONSTANT


def constant_int(value: ir.Value | None) -> int | None:
    """The value of ``value`` when a ``Constant`` op makes it an integer (a 0-d integer
    ``value`` tensor, or ``value_int``), else None."""
    node = value.producer() if value is not None else None
    if node is None or node.domain != "" or node.op_type != "Constant":
        return None
    if "value_int" in node.attributes:
        return node.attributes["value_int"].as_int()
    if "value" in node.attributes:
        array = node.attributes["value"].as_tensor().numpy()
        if array.shape == () and array.dtype.kind in "iu":  # signed or unsigned integers
            return int(array)
    return None


def string_tensor(text: str) -> ir.StringTensor:
    """The scalar string tensor of a ``Constant`` holding ``text`` (UTF-8), as
    :func:`constant_of` reads it back.

    Raises:
        UnicodeEncodeError: ``text`` holds a lone surrogate.
    """
    return ir.StringTensor(np.array([text.encode("utf-8")], dtype=object).reshape(()), shape=ir.Shape([]))
