"""Fast access to a node's attributes, in one place.

onnx_ir keeps a node's attributes in an ``ir.Attributes``, a ``collections.UserDict``
whose mapping methods run in Python: ``get`` costs about three times a ``dict``'s and
iterating about six times, which shows in passes that look at every node. namu reads
the plain ``dict`` underneath, through :func:`attributes_of` only;
``tests/ir/test_attrs.py`` fails if onnx_ir stops keeping the attributes there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx_ir as ir

__all__ = ["attributes_of"]


def attributes_of(node: ir.Node) -> dict[str, ir.Attr]:
    """The attributes of ``node`` by name: the live ``dict`` behind ``node.attributes``.

    Reads see every change made through ``node.attributes``, and an ``ir.Attr`` set here
    is the node's attribute (without ``ir.Attributes``' type checks: set only ``ir.Attr``
    objects under their own name).

    Args:
        node: an onnx_ir node.

    Returns:
        The node's own dict (not a copy).
    """
    return node.attributes.data
