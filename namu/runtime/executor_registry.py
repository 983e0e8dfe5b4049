"""Executors by name: the built-in ``kernel`` and ``reference``, and any other one.

An executor is an :class:`~namu.runtime.executors.Executor` subclass registered under a
name, which ``run(executor=NAME)`` and ``namu run --executor NAME`` select::

    @register_executor("counting")
    class CountingExecutor(ReferenceExecutor): ...

A package can also provide executors without being imported first, through the entry
point group ``namu.executors`` (``counting = "mypkg.executors:CountingExecutor"``): they
are loaded the first time a name is not found, or the names are listed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from namu.runtime.executors import Executor

__all__ = ["ENTRY_POINT_GROUP", "executor_class", "executor_names", "register_executor"]

#: the entry point group through which installed packages provide executors.
ENTRY_POINT_GROUP = "namu.executors"

E = TypeVar("E", bound="type[Executor]")

_EXECUTORS: dict[str, type[Executor]] = {}
_plugins_loaded = False


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
    """The executor registered as ``name``.

    Raises:
        ValueError: no executor is registered as ``name`` (the message lists those that are).
    """
    cls = _EXECUTORS.get(name)
    if cls is None:
        _load_plugins()
        cls = _EXECUTORS.get(name)
    if cls is None:
        raise ValueError(f"unknown executor {name!r}; registered executors: {', '.join(executor_names())}")
    return cls


def executor_names() -> list[str]:
    """The names of every registered executor, sorted (entry points included)."""
    _load_plugins()
    return sorted(_EXECUTORS)


def _load_plugins() -> None:
    """Register the built-in executors and those of the ``namu.executors`` entry points
    (once per process)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True  # before loading: a plugin may list the executors itself
    from importlib.metadata import entry_points

    import namu.runtime.executors  # noqa: F401 - registers kernel and reference

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in _EXECUTORS:
            continue
        try:
            register_executor(entry.name)(entry.load())
        except Exception as exc:
            _plugins_loaded = False  # the next look-up fails the same way instead of missing executors
            exc.add_note(f"while loading executor {entry.name!r} ({entry.value}, entry point group {ENTRY_POINT_GROUP})")
            raise
