"""The names a compile resolved in its workflows' namespaces, to tell when it is stale.

A workflow body reads module globals, closure variables and builtins: the tasks and
sub-workflows it calls, the literal constants it folds into the IR. ``wf(...)`` reuses
one compile, so it must notice when any of those changes -- a notebook re-running a cell
rebinds a task, ``module.SCALE = 10`` rebinds a constant, ``module.TABLE.append(4)``
mutates one in place -- and compile again, as ``namu.compile(wf)`` would.

:meth:`NameReads.current` is on the path of every ``wf(...)`` call, so it costs one
lookup and one identity test per name read, plus one ``==`` against a private copy for
each *mutable* constant folded into the IR (a list or dict; immutable values need only
the identity test). Nothing is hashed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from types import CellType
from typing import Any

__all__ = ["MISSING", "NameReads", "is_mutable"]


class _Missing:
    """The value of a name that is not bound (a global that builtins resolved)."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


def is_mutable(value: Any) -> bool:
    """True when ``value`` can change in place: a list, dict, set or bytearray, or a
    tuple or frozenset holding one."""
    if isinstance(value, (list, dict, set, bytearray)):
        return True
    if isinstance(value, (tuple, frozenset)):
        return any(is_mutable(item) for item in value)
    return False


class NameReads:
    """What one compile read, and whether it still holds.

    Each read is recorded once however often the compile made it (a task called from
    300 sub-workflows of one module is one entry).
    """

    def __init__(self) -> None:
        self._keys: dict[tuple[int, str], tuple[Mapping[str, Any], str, Any]] = {}
        self._cells: dict[int, tuple[CellType, Any]] = {}
        self._attributes: dict[tuple[int, tuple[str, ...]], tuple[Any, tuple[str, ...], Any]] = {}
        self._snapshots: dict[int, tuple[Any, Any]] = {}

    def key(self, namespace: Mapping[str, Any], name: str, value: Any) -> None:
        """``namespace[name]`` was ``value`` (:data:`MISSING`: the name was not there)."""
        self._keys.setdefault((id(namespace), name), (namespace, name, value))

    def cell(self, cell: CellType, value: Any) -> None:
        """A closure variable's cell held ``value``."""
        self._cells.setdefault(id(cell), (cell, value))

    def attribute(self, base: Any, path: tuple[str, ...], value: Any) -> None:
        """``base.<path[0]>.<path[1]>...`` was ``value`` (``tasks.clean(...)``)."""
        self._attributes.setdefault((id(base), path), (base, path, value))

    def constant(self, value: Any) -> None:
        """``value`` was folded into the IR: if it is mutable, remember its contents."""
        if is_mutable(value) and id(value) not in self._snapshots:
            self._snapshots[id(value)] = (value, copy.deepcopy(value))

    def current(self) -> bool:
        """True when every name still resolves to the same object and every mutable
        constant still equals its contents at compile time."""
        for namespace, name, value in self._keys.values():
            if namespace.get(name, MISSING) is not value:
                return False
        for cell, value in self._cells.values():
            try:
                if cell.cell_contents is not value:
                    return False
            except ValueError:  # the variable was deleted
                return False
        for base, path, value in self._attributes.values():
            obj = base
            try:
                for attr in path:
                    obj = getattr(obj, attr)
            except Exception:  # noqa: BLE001 - any failure means the call no longer resolves
                return False
            if obj is not value:
                return False
        for value, snapshot in self._snapshots.values():
            if value != snapshot:
                return False
        return True
