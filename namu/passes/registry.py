"""The pass registry: a pass is added to namu by writing one module that registers it.

Every module in :mod:`namu.passes` (other than the infrastructure modules) is imported
when the package is, so ``@register`` is all a new pass needs. A pass says where it runs
by naming the passes it runs after (``after=``) and, where that reads better, before
(``before=``); it never asks which other passes are in the pipeline. The canonical
pipeline is the deterministic topological order of those constraints
(:func:`canonical_order`). ``level`` is the lowest ``-O`` level that runs the pass (0:
the pass is required, it lowers or verifies and cannot be disabled); ``group`` puts it in
a clean-up group that the pipeline repeats until no pass of it changes the model;
``provides`` names the capabilities the pass gives the runtime, which the passport
records. A pass that declares neither ``after`` nor ``before`` is available by name only
(``namu.compile(wf, passes=[...])``).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterable, Mapping

import onnx_ir as ir

__all__ = ["PassInfo", "canonical_order", "get", "register", "registered"]


@dataclasses.dataclass(frozen=True)
class PassInfo:
    """A registered pass.

    Attributes:
        name: kebab-case name used on the command line (``verify-structure``).
        summary: one line saying what the pass guarantees afterwards.
        cls: the ``onnx_ir.passes.PassBase`` subclass; instantiated fresh per run.
        after: the passes this one runs after (``()``: after none), or None.
        before: the passes this one runs before.
        level: lowest optimization level (``-O``) whose pipeline includes the pass;
            0 marks a required pass.
        group: the clean-up group the pass belongs to (``"cleanup"``), or None.
        provides: the passport capabilities the pass gives the runtime
            (``namu.ir.metadata.CAPABILITY_*``).
        only_removes_unread: the pass's only change is removing nodes whose results
            nobody reads (a dead-code sweeper).
    """

    name: str
    summary: str
    cls: type[ir.passes.PassBase]
    after: tuple[str, ...] | None = None
    before: tuple[str, ...] = ()
    level: int = 2
    group: str | None = None
    provides: tuple[str, ...] = ()
    only_removes_unread: bool = False

    @property
    def in_pipeline(self) -> bool:
        """The pass declares its place in the canonical pipeline (``after`` or ``before``)."""
        return self.after is not None or bool(self.before)

    @property
    def required(self) -> bool:
        """The pass verifies or lowers the IR: every pipeline runs it."""
        return self.in_pipeline and self.level == 0


_REGISTRY: dict[str, PassInfo] = {}


def _names(what: str, names: Iterable[str]) -> tuple[str, ...]:
    if isinstance(names, str):
        raise TypeError(f"{what}= takes a tuple of pass names, got the string {names!r}")
    return tuple(names)


def register(
    name: str,
    summary: str,
    *,
    after: Iterable[str] | None = None,
    before: Iterable[str] = (),
    level: int = 2,
    group: str | None = None,
    provides: Iterable[str] = (),
    only_removes_unread: bool = False,
) -> Callable[[type[ir.passes.PassBase]], type[ir.passes.PassBase]]:
    """Class decorator registering a pass under ``name``.

    Args:
        name: kebab-case name.
        summary: one line: what holds after the pass.
        after: names of the passes this one runs after; ``()`` puts it in the pipeline
            after none of them; None (and no ``before``): by name only. The names are
            checked when the pipeline is first ordered, so a pass may name one
            registered later.
        before: names of the passes this one runs before (puts it in the pipeline).
        level: lowest ``-O`` level that runs it (0: required).
        group: a clean-up group (kebab-case): consecutive passes of one group repeat,
            in order, until none of them changes the model. Each must reach its own
            fixpoint in one run (running it again right away changes nothing).
        provides: passport capabilities (``namu.ir.metadata.CAPABILITY_*``) the pass
            gives the runtime; the pipeline records them when the pass runs.
        only_removes_unread: the pass changes the model only by removing nodes whose
            results nobody reads. Such a change gives the other passes of its group
            nothing new to do -- no remaining node reads anything else -- so they do not
            run again for it (a group's passes must not depend on how many readers a
            value has).

    Raises:
        ValueError: the name is already taken, the pass names itself in ``after`` or
            ``before``, ``level`` is not 0, 1 or 2, or ``group`` is not kebab-case.
        TypeError: ``after``, ``before`` or ``provides`` is a single string, not a
            sequence of names.
    """
    if level not in (0, 1, 2):
        raise ValueError(f"level must be 0, 1 or 2, got {level!r}")
    if group is not None and not re.fullmatch(r"[a-z]+(-[a-z]+)*", group):
        raise ValueError(f"group must be a kebab-case name, got {group!r}")
    runs_after = _names("after", after) if after is not None else None
    runs_before = _names("before", before)
    capabilities = _names("provides", provides)
    if name in (*(runs_after or ()), *runs_before):
        raise ValueError(f"pass {name!r} cannot run before or after itself")

    def decorate(cls: type[ir.passes.PassBase]) -> type[ir.passes.PassBase]:
        if name in _REGISTRY:
            raise ValueError(f"pass {name!r} is already registered")
        _REGISTRY[name] = PassInfo(
            name, summary, cls, runs_after, runs_before, level, group, capabilities, only_removes_unread
        )
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
    """Every registered pass: the pipeline's in pipeline order, then the others by name.

    Raises:
        ValueError: as :func:`canonical_order`.
    """
    others = sorted((p for p in _REGISTRY.values() if not p.in_pipeline), key=lambda p: p.name)
    return [*canonical_order(), *others]


def canonical_order() -> list[PassInfo]:
    """The passes of the canonical pipeline, in order.

    The order is a topological sort of the passes' ``after``/``before`` constraints in
    which each group runs as one block (a constraint on a member holds for the whole
    group; inside the group, its members' constraints among themselves order them).
    Ties -- passes the constraints leave free -- go to the pass that has been ready the
    longest (whose last prerequisite was placed first), then to the first name in
    alphabetical order: a pass runs as early as its constraints allow. The order depends
    only on the declarations, never on the order the modules were imported in.

    Raises:
        ValueError: a pass names a pass that is not registered, or not in the pipeline;
            or the constraints form a cycle (the message lists it).
    """
    return list(_order(tuple(_REGISTRY.values())))


@functools.lru_cache(maxsize=8)
def _order(infos: tuple[PassInfo, ...]) -> tuple[PassInfo, ...]:
    """:func:`canonical_order` of the registry ``infos`` (cached: the registry rarely changes)."""
    known = {p.name: p for p in infos}
    members = {p.name: p for p in infos if p.in_pipeline}
    for p in members.values():
        for other in (*(p.after or ()), *p.before):
            if other not in known:
                raise ValueError(f"pass {p.name!r} is ordered against {other!r}, which is not a registered pass")
            if other not in members:
                raise ValueError(f"pass {p.name!r} is ordered against {other!r}, which runs by name only")
    # A unit is a pass, or a whole group; edges between units order the blocks.
    unit = {name: (f"group {p.group!r}" if p.group else name) for name, p in members.items()}
    unit_preds: dict[str, set[str]] = {u: set() for u in unit.values()}
    inner_preds: dict[str, set[str]] = {name: set() for name in members}
    for p in members.values():
        for first, then in [*((a, p.name) for a in p.after or ()), *((p.name, b) for b in p.before)]:
            if unit[first] == unit[then]:
                inner_preds[then].add(first)
            else:
                unit_preds[unit[then]].add(unit[first])
    blocks: dict[str, list[str]] = {}
    for name in members:
        blocks.setdefault(unit[name], []).append(name)
    order: list[PassInfo] = []
    for u in _toposort(unit_preds):
        names = blocks[u]
        inner = _toposort({n: inner_preds[n] for n in names}) if len(names) > 1 else names
        order += [members[n] for n in inner]
    return tuple(order)


def _toposort(preds: Mapping[str, set[str]]) -> list[str]:
    """The keys of ``preds`` with each after all of its predecessors (Kahn's algorithm);
    among the ready ones, the one whose last predecessor was placed first, then the
    first by name.

    Raises:
        ValueError: the predecessors form a cycle.
    """
    placed: dict[str, int] = {}
    remaining = set(preds)
    while remaining:
        ready = [n for n in remaining if preds[n].issubset(placed)]
        if not ready:
            raise ValueError(f"the passes' ordering constraints form a cycle: {_cycle(preds, remaining)}")
        best = min(ready, key=lambda n: (max((placed[p] for p in preds[n]), default=-1), n))
        placed[best] = len(placed)
        remaining.remove(best)
    return list(placed)


def _cycle(preds: Mapping[str, set[str]], remaining: set[str]) -> str:
    """A cycle among ``remaining`` (each has a predecessor among them), as ``a -> b -> a``."""
    path = [min(remaining)]
    while path.count(path[-1]) < 2:
        path.append(min(p for p in preds[path[-1]] if p in remaining))
    start = path.index(path[-1])
    return " -> ".join(reversed(path[start:]))
