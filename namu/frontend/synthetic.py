"""Python syntax the frontend's source-to-source rewrites make, placed at the source
position of the code it replaces (so an error in it points at the user's line), and the
statement lists they walk."""

from __future__ import annotations

import ast
from typing import TypeVar

__all__ = ["assign", "at", "const", "is_none", "name", "nested_blocks"]

_Node = TypeVar("_Node", bound=ast.AST)


def at(node: _Node, where: ast.AST) -> _Node:
    """``node`` at ``where``'s source position."""
    ast.copy_location(node, where)
    if hasattr(where, "end_lineno"):
        node.end_lineno, node.end_col_offset = where.end_lineno, where.end_col_offset  # type: ignore[attr-defined]
    return node


def name(identifier: str, where: ast.AST) -> ast.Name:
    """A read of variable ``identifier``."""
    return at(ast.Name(id=identifier, ctx=ast.Load()), where)


def const(value: object, where: ast.AST) -> ast.Constant:
    """The literal ``value``."""
    return at(ast.Constant(value=value), where)


def assign(identifier: str, value: ast.expr, where: ast.AST) -> ast.Assign:
    """``identifier = value``."""
    return at(ast.Assign(targets=[at(ast.Name(id=identifier, ctx=ast.Store()), where)], value=value), where)


def is_none(identifier: str, where: ast.AST, *, negate: bool = False) -> ast.Compare:
    """``identifier is None`` (``is not None`` with ``negate``)."""
    op: ast.cmpop = ast.IsNot() if negate else ast.Is()
    return at(ast.Compare(left=name(identifier, where), ops=[op], comparators=[const(None, where)]), where)


def nested_blocks(stmt: ast.stmt) -> list[list[ast.stmt]]:
    """The statement lists nested in ``stmt``, as the very lists it holds (a rewrite
    replaces one in place with ``block[:] = ...``): an ``if``'s or a loop's body and
    ``else``, a ``try``'s body, handlers, ``else`` and ``finally``, a ``match``'s cases."""
    blocks = [getattr(stmt, field) for field in ("body", "orelse", "finalbody") if isinstance(getattr(stmt, field, None), list)]
    return blocks + [part.body for part in (*getattr(stmt, "handlers", []), *getattr(stmt, "cases", []))]
