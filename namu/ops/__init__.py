"""namu's ops: one definition per op (see :mod:`namu.ops.registry`)."""

from namu.ops.registry import ANY_OP, OpDef, OpEnv, definition, lookup, op, registered

__all__ = ["ANY_OP", "OpDef", "OpEnv", "definition", "lookup", "op", "registered"]
