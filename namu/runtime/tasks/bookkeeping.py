"""Per-call bookkeeping of wrapped task calls: the run's checkpoint journal, the task's
result caches (memory, then disk) and the run's hooks.

A call is looked up (:func:`look_up`) before it runs; on a miss, :meth:`Pending.store`
records its result once it completed. :class:`CallBooks` does both around each call of a
call site, and tells the run's hooks about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from namu.errors import TaskError, UncacheableResult, UnhashableValue
from namu.runtime.cache import CachedResult, MemoryCache, memory_cache, result_key
from namu.runtime.content import content_digest
from namu.runtime.hooks import TASK_EVENTS, RunHooks, TaskCall
from namu.runtime.result import RunState, current_run
from namu.runtime.tasks.bindings import TaskBinding
from namu.runtime.tasks.flights import Flights

__all__ = ["MISS", "CallBooks", "Pending", "look_up", "memory_for"]


def memory_for(binding: TaskBinding) -> MemoryCache | None:
    """The in-memory cache of a ``cache=True``/``pure=True`` task, else None."""
    opts = binding.options
    return memory_cache(binding.fn) if (opts.cache or opts.pure) else None


@dataclass(slots=True, eq=False)  # not frozen: one is built per call, and frozen fields cost ~3x to set
class Pending:
    """Where the result of a call that missed must be stored once it completes.

    Attributes:
        binding: the task called.
        span: ``"file:line:col"`` of the call.
        state: the call's run, or None outside a run.
        journal_key: the call's key in the run's journal, or None when unjournaled.
        memory: the task's memory cache, or None when uncached.
        cache_key: the call's key in the task's caches, or None when uncached.
    """

    binding: TaskBinding
    span: str
    state: RunState | None
    journal_key: bytes | None
    memory: MemoryCache | None
    cache_key: bytes | None

    def store(self, result: Any) -> CachedResult | None:
        """Record ``result`` in the task's caches and the run's journal. The caches keep
        copies: the caller may change ``result`` afterwards.

        Returns:
            What the memory cache keeps (calls waiting for this one get copies of it), or
            None when the call is not cached.

        Raises:
            TaskError: a cached task returned a result that cannot be cached (an
                iterator, an object nothing can copy), with the reason as its cause.
            CheckpointError: the journal cannot be written.
        """
        state = self.state
        entry = None
        if self.cache_key is not None and self.memory is not None:
            try:
                entry = self.memory.put(self.cache_key, result)
            except UncacheableResult as exc:
                option = "pure=True" if self.binding.options.pure else "cache=True"
                message = (
                    f"task {self.binding.name!r} at {self.span} returned {exc.what}, which cannot be "
                    f"cached ({option}): {exc.why}, or remove {option}"
                )
                raise TaskError(message, task=self.binding.name, span=self.span) from exc
            if state is not None and state.disk_cache is not None:
                state.disk_cache.put(self.cache_key, result, self.binding.name)
        if self.journal_key is not None and state is not None and state.journal is not None:
            state.journal.record(self.journal_key, result, task=self.binding.name, span=self.span)
        return entry


#: what :func:`look_up` returns as the source of a call it did not find
MISS = ""


def look_up(
    binding: TaskBinding,
    span: str,
    state: RunState | None,
    memory: MemoryCache | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[str, Any, Pending | None]:
    """Find a call's result in the run's journal or the task's caches.

    Returns:
        ``(source, result, None)`` on a hit, ``source`` being ``"checkpoint"`` or
        ``"cache"``; ``(MISS, None, pending)`` on a miss, where ``pending.store(result)``
        records the result once the call completed, or ``(MISS, None, None)`` when
        nothing applies (arguments that cannot be content-addressed run uncached and
        unjournaled).

    Raises:
        CheckpointError: the journal cannot be read or written.
    """
    journal = state.journal if (binding.journaled and state is not None) else None
    if journal is None and memory is None:
        return MISS, None, None
    try:
        args_digest = content_digest((args, kwargs))
    except UnhashableValue:
        return MISS, None, None
    journal_key = None
    if journal is not None:
        journal_key = journal.call_key(binding.key, binding.digest, span, args_digest)
        found, value = journal.lookup(journal_key)
        if found:
            return "checkpoint", value, None
    cache_key = None
    if memory is not None:
        cache_key = result_key(binding.digest, binding.key, args_digest)
        found, value = memory.get(cache_key)
        if not found and state is not None and state.disk_cache is not None:
            found, value = state.disk_cache.get(cache_key)
            if found:
                memory.put(cache_key, value)
        if found:
            if journal is not None and journal_key is not None:
                journal.record(journal_key, value, task=binding.name, span=span)
            return "cache", value, None
    return MISS, None, Pending(binding, span, state, journal_key, memory, cache_key)


class CallBooks:
    """The bookkeeping of one wrapped call site around each of its calls, the same for
    synchronous and awaited calls: tell the run's hooks, look the call up in the journal
    and the caches, and store the result of a call that ran (landing its single flight).

    Args:
        binding: the task called there.
        span: ``"file:line:col"`` of the call.
        events: the events the run's hooks override (:func:`namu.runtime.hooks.needs`).
        flights: the single-flight table the site's cached calls share.

    Attributes:
        memory: the task's memory cache, or None when uncached.
        site: the call site as the hooks see it, or None when they need no task event.
    """

    __slots__ = ("binding", "flights", "memory", "site", "span")

    def __init__(self, binding: TaskBinding, span: str, events: frozenset[str], flights: Flights) -> None:
        self.binding = binding
        self.span = span
        self.flights = flights
        self.memory = memory_for(binding)
        cached = self.memory is not None
        self.site = TaskCall(binding.name, binding.key, span, cached=cached) if events & TASK_EVENTS else None

    @property
    def needed(self) -> bool:
        """Whether a call does any bookkeeping at all (else it may run bare)."""
        return self.memory is not None or self.binding.journaled or self.site is not None

    def on_retry(self, attempt: int, error: Exception, delay_s: float) -> None:
        """Tell the current run's hooks that an attempt failed and another follows."""
        state = current_run()
        if state is not None and state.hooks is not None and self.site is not None:
            state.hooks.on_task_retry(self.site, attempt, error, delay_s)

    def open(
        self, state: RunState | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[RunHooks | None, str, Any, Pending | None]:
        """A call starts: tell the hooks, look it up (:func:`look_up`).

        Returns:
            ``(hooks to tell the end to, or None; source, result, pending)`` as
            :func:`look_up` gives them.
        """
        hooks = state.hooks if self.site is not None and state is not None else None
        if hooks is not None:
            hooks.on_task_start(self.site)  # type: ignore[arg-type]
        return (hooks, *look_up(self.binding, self.span, state, self.memory, args, kwargs))

    def failed(self, hooks: RunHooks | None, flight: Any, error: Exception) -> None:
        """The call failed with ``error`` (the task's own exception)."""
        self.flights.land(flight, None)
        if hooks is not None:
            hooks.on_task_error(self.site, error)  # type: ignore[arg-type]

    def abandon(self, flight: Any) -> None:
        """The call was interrupted (a ``BaseException``): equal calls waiting run themselves."""
        self.flights.land(flight, None)

    def ran(self, flight: Any, pending: Pending | None, result: Any) -> str:
        """The call ran and returned ``result``: store it, and hand waiting equal calls
        copies of what the cache keeps (without an entry they run themselves).

        Returns:
            ``"run"``: where the call's result came from.
        """
        entry = None
        try:
            entry = pending.store(result) if pending is not None else None
        finally:
            self.flights.land(flight, entry)
        return "run"

    def close(self, hooks: RunHooks | None, source: str, result: Any) -> Any:
        """The call returns ``result``, from ``source`` (``"run"``, ``"cache"``,
        ``"checkpoint"``): tell the hooks.

        Returns:
            ``result``.
        """
        if hooks is not None:
            hooks.on_task_end(self.site, source)  # type: ignore[arg-type]
        return result
