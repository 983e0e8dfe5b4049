"""Executors by name: the built-in ``kernel`` and ``reference``, and any other one.

An executor is an :class:`~namu.runtime.executors.Executor` subclass registered under a
name, which ``run(executor=NAME)`` and ``namu run --executor NAME`` select::

    @register_executor("counting")
    class CountingExecutor(ReferenceExecutor): ...

A package can also provide executors without being imported first, through the entry
point group ``namu.executors`` (``counting = "mypkg.executors:CountingExecutor"``): its
names are listed without importing anything, and each is imported when first selected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from namu.runtime.executors import Executor

__all__ = ["ENTRY_POINT_GROUP", "executor_class", "executor_names", "register_executor"]

#: the entry point group through which installed packages provide executors.
ENTRY_POINT_GROUP = "namu.executors"

E = TypeVar("E", bound="type[Executor]")

_EXECUTORS: dict[str, type[Executor]] = {}
#: the built-in executors, registered when ``namu.runtime.executors`` is imported
_BUILTIN = frozenset({"kernel", "reference"})


def register_executor(name: str) -> Callable[[E], E]:
    """Register the decorated :class:`~namu.runtime.executors.Executor` subclass as
    ``name``.

    Args:
        name: what ``run(executor=...)`` and ``namu run --executor`` call it.

    Raises:
        ValueError: ``name`` is empty, or taken by another class.
        TypeError: what is decorated is not an ``Executor`` subclass.
    """
    if not name or name != name.strip():
        raise ValueError(f"an executor name must be non-empty text without surrounding spaces, got {name!r}")

    def register(cls: E) -> E:
        from namu.runtime.executors import Executor

        if not (isinstance(cls, type) and issubclass(cls, Executor)):
            raise TypeError(f"executor {name!r} must be a subclass of namu.runtime.executors.Executor, got {cls!r}")
        known = _EXECUTORS.get(name)
        if known is not None and known is not cls:
            raise ValueError(f"executor {name!r} is already registered ({known.__module__}.{known.__qualname__})")
        _EXECUTORS[name] = cls
        return cls

    return register


def executor_class(name: str) -> type[Executor]:
    """The executor registered as ``name``, imported on first use (a built-in one, or
    one an entry point names).

    Raises:
        ValueError: no executor is registered as ``name`` (the message lists those that are).
        Exception: importing the module an entry point names failed (a note names the
            entry point).
    """
    cls = _EXECUTORS.get(name)
    if cls is not None:
        return cls
    if name in _BUILTIN:
        import namu.runtime.executors  # noqa: F401 - registers kernel and reference

        return _EXECUTORS[name]
    entry = next((e for e in _entry_points() if e.name == name), None)
    if entry is None:
        raise ValueError(f"unknown executor {name!r}; registered executors: {', '.join(executor_names())}")
    try:
        register_executor(name)(entry.load())
    except Exception as exc:
        exc.add_note(f"while loading executor {name!r} ({entry.value}, entry point group {ENTRY_POINT_GROUP})")
        raise
    return _EXECUTORS[name]


def executor_names() -> list[str]:
    """The names of every executor: registered, built in, or named by an entry point of
    ``namu.executors`` (listed without importing anything)."""
    return sorted({*_EXECUTORS, *_BUILTIN, *(e.name for e in _entry_points())})


def _entry_points() -> list[EntryPoint]:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))
