"""What a run returns besides its value, and the per-run state ops report into."""

from __future__ import annotations

import contextvars
import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from namu.runtime.cache import DiskCache
    from namu.runtime.checkpoint import Journal
    from namu.runtime.hooks import RunHooks

__all__ = ["RunResult", "RunState", "SkippedItem", "current_run"]


@dataclasses.dataclass(frozen=True)
class SkippedItem:
    """A fan-out item dropped because a task with ``on_error="skip"`` failed on it.

    Attributes:
        task: the failing task's name.
        span: ``"file:line:col"`` of the task call in the workflow.
        index: position of the item in its fan-out.
        error: ``"ExceptionType: message"`` of the task's exception.
    """

    task: str
    span: str
    index: int
    error: str


@dataclasses.dataclass
class RunState:
    """Mutable state of one run, visible to ops through :func:`current_run`.

    Attributes:
        hooks: the run's hooks (composed into one), or None.
        events: the events ``hooks`` overrides (``namu.runtime.hooks.needs``).
        skipped: fan-out items dropped so far.
        disk_cache: the on-disk result cache enabled for the run, or None.
        journal: the run's checkpoint journal (``checkpoint=``), or None; besides task
            calls it keeps the replies of remote fan-outs (:mod:`namu.runtime.federation`).
    """

    hooks: RunHooks | None = None
    events: frozenset[str] = frozenset()
    skipped: list[SkippedItem] = dataclasses.field(default_factory=list)
    disk_cache: DiskCache | None = None
    journal: Journal | None = None


_CURRENT: contextvars.ContextVar[RunState | None] = contextvars.ContextVar("namu_run", default=None)


def current_run() -> RunState | None:
    """The state of the run executing in this context, or None outside a run."""
    return _CURRENT.get()


def enter_run(state: RunState) -> contextvars.Token[RunState | None]:
    return _CURRENT.set(state)


def exit_run(token: contextvars.Token[RunState | None]) -> None:
    _CURRENT.reset(token)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """The outcome of a workflow run.

    Attributes:
        value: what the workflow returned.
        skipped: fan-out items dropped by ``on_error="skip"`` tasks, in order.
        elapsed_s: wall time of the run, in seconds.
        executor: ``"kernel"`` or ``"reference"``.
        resumed_calls: task calls served from the run's checkpoint instead of running
            (0 without ``checkpoint=``).
    """

    value: Any
    skipped: list[SkippedItem]
    elapsed_s: float
    executor: str
    resumed_calls: int = 0
