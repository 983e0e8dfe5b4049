"""Run hooks: what a run tells the code watching it.

A hook is an object of a :class:`RunHooks` subclass that overrides the events it wants
(every method of :class:`RunHooks` does nothing). Pass it as a run option::

    class Timer(namu.RunHooks):
        def on_task_start(self, call):
            self.started[call.span] = time.perf_counter()

        def on_task_end(self, call, source):
            print(call.task, source, time.perf_counter() - self.started.pop(call.span))

    artifact.run(x, hooks=Timer())

Several hooks compose: ``hooks=[progress, Timer()]`` (or :func:`compose`) calls each, in
order, for the events it overrides. The progress bar of ``namu run``
(:class:`namu.runtime.progress.ProgressHooks`), the checkpoint journal
(:class:`namu.runtime.checkpoint.Journal`) and the call statistics (:class:`CallStats`)
are hooks.

**Zero cost when unused.** A run prepares its task callables for the task events its
hooks override (:func:`needs`), and caches that preparation per set of events: a run
without hooks runs the very plans it ran before hooks existed (a plain task is still
the user's own function, called directly by the kernel), and hooks that only count
fan-out items leave task calls unwrapped too.

Events, in the order a run raises them:

===============================  ========================================================
``on_run_start(run)``            the run starts (:class:`RunInfo`)
``on_task_start(call)``          a task call starts (:class:`TaskCall`)
``on_task_lookup(call, digest)`` a store of results may serve it (the run's
                                 checkpoint journal is such a hook), before the
                                 task's caches
``on_task_retry(call, ...)``     an attempt failed and the call will be tried again
``on_task_end(call, source)``    the call returned: ``"run"`` (it ran), ``"cache"`` (a
                                 result cache served it) or ``"checkpoint"`` (a hook's
                                 store, the run's checkpoint, served it)
``on_task_error(call, error)``   the call failed for good (before a fallback runs)
``on_task_skip(item)``           a fan-out item was dropped (``on_error="skip"``)
``on_fanout(items)``             a fan-out of ``items`` paths started
``on_item_done()``               one fan-out path finished or was skipped
``on_event(name, data)``         anything else an op reports (:func:`emit`): tokens,
                                 cost, wire messages
``on_stopping(message)``         an interrupted run waits for calls it cannot stop
``on_run_end(run, error)``       the run ended (``error`` is None when it succeeded)
===============================  ========================================================

Hooks run on the thread that raised the event (a worker thread for thread-mode calls,
the event loop's thread for async ones): make them thread-safe and quick. An exception a
hook raises propagates into the run.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from namu.runtime.result import current_run

if TYPE_CHECKING:
    from namu.runtime.result import SkippedItem

__all__ = ["PREPARED_EVENTS", "TASK_EVENTS", "CallStats", "RunHooks", "RunInfo", "TaskCall", "compose", "emit", "needs"]

#: the events a task callable must raise itself (so it is wrapped when hooks need one)
TASK_EVENTS = frozenset({"task_start", "task_lookup", "task_end", "task_error", "task_retry"})
#: the events a run's preparation depends on: runs whose hooks need the same ones share
#: their prepared plans (the others are raised where they happen, at no cost)
PREPARED_EVENTS = TASK_EVENTS | {"fanout", "item_done"}


@dataclasses.dataclass(frozen=True, slots=True)
class RunInfo:
    """The run an event belongs to.

    Attributes:
        workflow: the workflow's name.
        executor: the executor's registered name (``"kernel"``, ``"reference"``, ...).
    """

    workflow: str
    executor: str


@dataclasses.dataclass(frozen=True, slots=True)
class TaskCall:
    """One task call site (the same object for every call made there).

    Attributes:
        task: the task's name (its qualified name).
        key: its key in the artifact's task table.
        span: ``"file:line:col"`` of the call in the workflow.
        cached: the call's result may come from a result cache (``cache``/``pure``).
        digest: the digest of the task's code (what a store of results keys on).
    """

    task: str
    key: str
    span: str
    cached: bool = False
    digest: str = ""


class RunHooks:
    """Base class of run hooks: override the events you need (see the module docs).

    Every method does nothing; :func:`needs` tells which ones a hook overrides.
    """

    def on_run_start(self, run: RunInfo) -> None:
        """The run starts."""

    def on_run_end(self, run: RunInfo, error: BaseException | None) -> None:
        """The run ended; ``error`` is what it raises, or None."""

    def on_task_start(self, call: TaskCall) -> None:
        """A task call starts."""

    def on_task_lookup(self, call: TaskCall, args_digest: bytes) -> tuple[bool, Any]:
        """Serve a call from a store of results (the run's checkpoint is one).

        Args:
            call: the call site.
            args_digest: the content digest of the call's arguments
                (:func:`namu.runtime.content.content_digest`).

        Returns:
            ``(True, result)`` to serve the call without running it; else
            ``(False, record)``, where ``record(result)`` (or None) is given the call's
            result once it has one (it ran, or a result cache served it).
        """
        return False, None

    def on_task_end(self, call: TaskCall, source: str) -> None:
        """A task call returned; ``source`` is ``"run"``, ``"cache"`` or ``"checkpoint"``."""

    def on_task_error(self, call: TaskCall, error: BaseException) -> None:
        """A task call failed for good with ``error`` (the task's own exception)."""

    def on_task_retry(self, call: TaskCall, attempt: int, error: BaseException, delay_s: float) -> None:
        """Attempt ``attempt`` (0-based) failed with ``error``; the next starts in ``delay_s`` seconds."""

    def on_task_skip(self, item: SkippedItem) -> None:
        """A fan-out item was dropped because an ``on_error="skip"`` task failed on it."""

    def on_fanout(self, items: int) -> None:
        """A fan-out of ``items`` paths started."""

    def on_item_done(self) -> None:
        """One path of a fan-out finished (or was skipped)."""

    def on_event(self, name: str, data: Mapping[str, Any]) -> None:
        """An op reported ``name`` with ``data`` (see :func:`emit`)."""

    def on_stopping(self, message: str) -> None:
        """An interrupted run is waiting for calls it cannot stop; ``message`` says so."""


_EVENTS = tuple(name[3:] for name in vars(RunHooks) if name.startswith("on_"))


def needs(hooks: RunHooks | None) -> frozenset[str]:
    """The events ``hooks`` overrides (``"task_start"``, ``"fanout"``, ...); none for None."""
    if hooks is None:
        return frozenset()
    if isinstance(hooks, _Composite):
        return hooks.events
    cls = type(hooks)
    return frozenset(e for e in _EVENTS if getattr(cls, f"on_{e}") is not getattr(RunHooks, f"on_{e}"))


class _Composite(RunHooks):
    """Several hooks as one: each event goes to the hooks overriding it, in order."""

    def __init__(self, hooks: list[RunHooks]) -> None:
        self.hooks = hooks
        self.events = frozenset().union(*(needs(h) for h in hooks))
        for event in self.events:
            methods = [getattr(h, f"on_{event}") for h in hooks if event in needs(h)]
            setattr(self, f"on_{event}", _first_served(methods) if event == "task_lookup" else _fan(methods))


def _fan(methods: list[Any]) -> Any:
    if len(methods) == 1:
        return methods[0]

    def call(*args: Any) -> None:
        for method in methods:
            method(*args)

    return call


def _first_served(lookups: list[Any]) -> Any:
    """``on_task_lookup`` of several stores: the first that serves the call wins, and the
    stores before it are given the result it served."""
    if len(lookups) == 1:
        return lookups[0]

    def lookup(call: TaskCall, args_digest: bytes) -> tuple[bool, Any]:
        records = []
        for method in lookups:
            found, got = method(call, args_digest)
            if found:
                for record in records:
                    record(got)
                return True, got
            if got is not None:
                records.append(got)
        return False, (_each(records) if records else None)

    return lookup


def _each(records: list[Any]) -> Any:
    if len(records) == 1:
        return records[0]
    return lambda result: [record(result) for record in records]


def compose(*hooks: RunHooks | Iterable[RunHooks] | None) -> RunHooks | None:
    """One hook calling each of ``hooks`` (nested lists flattened, Nones dropped) for
    the events it overrides, in order; None when there is none.

    Raises:
        TypeError: an item is not a :class:`RunHooks`.
    """
    flat: list[RunHooks] = []
    for item in hooks:
        if item is None:
            continue
        if isinstance(item, RunHooks):
            flat.extend(item.hooks if isinstance(item, _Composite) else [item])
            continue
        if isinstance(item, Iterable) and not isinstance(item, (str, bytes)):
            inner = compose(*item)
            if inner is not None:
                flat.extend(inner.hooks if isinstance(inner, _Composite) else [inner])
            continue
        raise TypeError(f"run hooks must be namu.RunHooks objects, got {type(item).__name__}")
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else _Composite(flat)


def emit(name: str, **data: Any) -> None:
    """Report event ``name`` with ``data`` to the current run's hooks (``on_event``).

    For ops and tasks that have something to tell (tokens used, cost, a wire message);
    nothing happens outside a run or when no hook listens, and that check is all it
    costs then.
    """
    state = current_run()
    if state is not None and state.hooks is not None and "event" in state.events:
        state.hooks.on_event(name, data)


class CallStats(RunHooks):
    """Counts task calls by task and by how they ended: the run's cache statistics.

    Attributes:
        calls: ``Counter`` of ``(task, outcome)``; outcomes: ``"run"`` (the call ran),
            ``"cache"`` (a result cache served it), ``"miss"`` (a call of a cached task
            that ran: counted under ``"run"`` too), ``"checkpoint"`` (the run's checkpoint
            served it), ``"error"`` (it failed), ``"retry"`` (an attempt failed and
            another followed).
    """

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def _count(self, task: str, *outcomes: str) -> None:
        with self._lock:
            for outcome in outcomes:
                self.calls[task, outcome] += 1

    def on_task_end(self, call: TaskCall, source: str) -> None:
        if call.cached and source == "run":
            self._count(call.task, source, "miss")
        else:
            self._count(call.task, source)

    def on_task_error(self, call: TaskCall, error: BaseException) -> None:
        self._count(call.task, "error")

    def on_task_retry(self, call: TaskCall, attempt: int, error: BaseException, delay_s: float) -> None:
        self._count(call.task, "retry")

    def total(self, outcome: str) -> int:
        """Calls of every task that ended in ``outcome``."""
        return sum(n for (_, o), n in self.calls.items() if o == outcome)

    @property
    def hit_rate(self) -> float:
        """The share of the calls of cached tasks that a result cache served (0.0 when
        there was none)."""
        hits, misses = self.total("cache"), self.total("miss")
        return hits / (hits + misses) if hits + misses else 0.0
