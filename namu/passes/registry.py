"""The pass registry: a pass is added to namu by writing one module that registers it.

Every module in :mod:`namu.passes` (other than the infrastructure modules) is imported
when the package is, so ``@register`` is all a new pass needs. ``order`` places the pass
in the canonical pipeline and ``level`` is the lowest ``-O`` level that runs it (0: the
pass is required, it lowers or verifies and cannot be disabled); a pass without
``order`` is available by name only (``namu.compile(wf, passes=[...])``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import onnx_ir as ir

__all__ = ["PassInfo", "get", "register", "registered"]


@dataclasses.dataclass(frozen=True)
class PassInfo:
    """A registered pass.

    Attributes:
        name: kebab-case name used on the command line (``verify-structure``).
        summary: one line saying what the pass guarantees afterwards.
        cls: the ``onnx_ir.passes.PassBase`` subclass; instantiated fresh per run.
        order: position in the default pipeline, or ``None``.
        level: lowest optimization level (``-O``) whose pipeline includes the pass;
            0 marks a required pass.
    """

    name: str
    summary: str
    cls: type[ir.passes.PassBase]
    order: int | None
    level: int = 2

    @property
    def required(self) -> bool:
        """The pass verifies or lowers the IR: every pipeline runs it."""
        return self.order is not None and self.level == 0


_REGISTRY: dict[str, PassInfo] = {}


def register(
    name: str, summary: str, *, order: int | None = None, level: int = 2
) -> Callable[[type[ir.passes.PassBase]], type[ir.passes.PassBase]]:
    """Class decorator registering a pass under ``name``.

    Args:
        name: kebab-case name.
        summary: one line: what holds after the pass.
        order: position in the canonical pipeline (None: by name only).
        level: lowest ``-O`` level that runs it (0: required).

    Raises:
        ValueError: the name or the pipeline position is already taken, or ``level``
            is not 0, 1 or 2.
    """
    if level not in (0, 1, 2):
        raise ValueError(f"level must be 0, 1 or 2, got {level!r}")

    def decorate(cls: type[ir.passes.PassBase]) -> type[ir.passes.PassBase]:
        if name in _REGISTRY:
            raise ValueError(f"pass {name!r} is already registered")
        if order is not None and any(p.order == order for p in _REGISTRY.values()):
            raise ValueError(f"pipeline position {order} is already taken")
        _REGISTRY[name] = PassInfo(name, summary, cls, order, level)
        cls.pass_name = name  # type: ignore[attr-defined]
        return cls

    return decorate


def get(name: str) -> PassInfo:
    """The pass registered under ``name``.

    Raises:
        KeyError: no such pass (the message lists the registered ones).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown pass {name!r}; registered passes: {known}") from None


def registered() -> list[PassInfo]:
    """Every registered pass, pipeline passes first in pipeline order, then by name."""
    return sorted(_REGISTRY.values(), key=lambda p: (p.order is None, p.order or 0, p.name))
