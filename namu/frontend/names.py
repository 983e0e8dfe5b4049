"""What a name in a workflow body means: a local, or what the workflow's module holds.

A name the body assigns is local to the whole body, as in Python; any other name is
resolved where the workflow is defined -- its closure variable, else its module's
global, else the builtin -- and each resolution is recorded in the compile's
:class:`~namu.frontend.reads.NameReads`, which a cached compile re-checks before it is
reused.
"""

from __future__ import annotations

import ast
from collections.abc import Container
from typing import TYPE_CHECKING, Any, NoReturn

from namu.frontend.reads import MISSING, NameReads

if TYPE_CHECKING:
    from types import CellType

    from namu.frontend.context import CompileContext
    from namu.frontend.source import FunctionSource

__all__ = ["NameResolution", "Namespace", "is_literal"]


class NameResolution:
    """Name lookups of the Python lowering (mixed into ``namu.frontend.lower._Lowering``)."""

    ctx: CompileContext
    src: FunctionSource
    local_sites: dict[str, ast.AST]  # local name -> its first assignment
    local_names: set[str]  # names assigned in the body, and the parameters
    _globals: dict[str, Any]
    _builtins: dict[str, Any]
    _cells: dict[str, CellType]

    def _resolve(self, name: str) -> Any:
        """What ``name`` means where the workflow is defined -- its closure variable, else
        its module's global, else the builtin -- or :data:`MISSING`. Each resolution is
        recorded in ``ctx.reads``, which a cached compile re-checks before it is reused."""
        return self._lookup(name, self.ctx.reads)

    def _lookup(self, name: str, reads: NameReads | None) -> Any:
        """:meth:`_resolve`, recording in ``reads`` unless it is None."""
        cell = self._cells.get(name)
        if cell is not None:
            try:
                value = cell.cell_contents
            except ValueError:  # a closure variable not assigned (yet)
                return MISSING
            if reads is not None:
                reads.cell(cell, value)
            return value
        value = self._globals.get(name, MISSING)
        if reads is not None:
            reads.key(self._globals, name, value)
        if value is MISSING:
            value = self._builtins.get(name, MISSING)
            if reads is not None:
                reads.key(self._builtins, name, value)
        return value

    def _fail_unbound_local(self, node: ast.AST, name: str) -> NoReturn:
        """Reject a read of a local name the body has not assigned yet on this path."""
        site = self.local_sites.get(name)
        where = f" (it is assigned at line {self.src.position(site)[0]})" if site is not None else ""
        self.src.fail(
            node,
            f"`{name}` is local in the workflow{where} and is read here before it is assigned; "
            "Python raises UnboundLocalError (a name assigned anywhere in a function is local "
            "to all of it: rename the local or the global)",
        )

    def _global_path(self, func: ast.expr) -> tuple[ast.Name, tuple[str, ...]] | None:
        """``(base, attributes)`` of ``name`` or ``name.a.b``, else None."""
        path: list[str] = []
        while isinstance(func, ast.Attribute):
            path.append(func.attr)
            func = func.value
        return (func, tuple(reversed(path))) if isinstance(func, ast.Name) else None

    def _global_constant(self, node: ast.expr, scope_env: Container[str]) -> Any:
        """The literal constant (``is_literal``) a module-level name or a dotted path from
        one reads (``SEP``, ``math.pi``, ``Config.NAME``; the read recorded in
        ``ctx.reads``), or :data:`MISSING`: a body's variable, a local name, anything else."""
        found = self._global_path(node)
        if found is None or found[0].id in scope_env or found[0].id in self.local_names:
            return MISSING
        owner = self._resolve(found[0].id)
        value = owner if not found[1] or owner is MISSING else self._follow(owner, found[1])
        return value if value is not MISSING and is_literal(value) else MISSING

    def _follow(self, base: Any, path: tuple[str, ...]) -> Any:
        """``base.<path...>`` (recorded in ``ctx.reads``), or :data:`MISSING`."""
        obj = base
        for attr in path:
            try:
                obj = getattr(obj, attr)
            except Exception:  # noqa: BLE001 - a missing or failing attribute: not callable here
                return MISSING
        if path:
            self.ctx.reads.attribute(base, path, obj)
        return obj


class Namespace:
    """The workflow's names as a mapping, for ``eval`` of its annotations: each lookup goes
    through :meth:`NameResolution._resolve`, so it is recorded like any other read."""

    def __init__(self, lowering: NameResolution) -> None:
        self._lowering = lowering

    def __getitem__(self, name: str) -> Any:
        value = self._lowering._resolve(name)
        if value is MISSING:
            raise KeyError(name)
        return value


def is_literal(value: Any) -> bool:
    """``value`` is None, a bool, int, float or str, or a list, tuple or str-keyed dict of
    them: a constant a workflow may fold into its IR."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_literal(v) for k, v in value.items())
    return False
