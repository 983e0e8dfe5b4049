"""Per-call bookkeeping of wrapped task calls: the run's hooks (the checkpoint journal is
one), and the task's result caches (memory, then disk).

:class:`CallBooks` does it around each call of a call site: a call is looked up
(:meth:`CallBooks.open`) before it runs; on a miss, :meth:`Pending.store` keeps its
result once it completed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from namu.errors import TaskError, UncacheableResult, UnhashableValue
from namu.runtime.cache import CachedResult, MemoryCache, memory_cache, result_key
from namu.runtime.content import content_digest
from namu.runtime.hooks import TASK_EVENTS, RunHooks, TaskCall
from namu.runtime.result import RunState, current_run
from namu.runtime.tasks.bindings import TaskBinding
from namu.runtime.tasks.flights import Flights

__all__ = ["MISS", "CallBooks", "Pending", "memory_for"]


def memory_for(binding: TaskBinding) -> MemoryCache | None:
    """The in-memory cache of a ``cache=True``/``pure=True`` task, else None."""
    opts = binding.options
    return memory_cache(binding.fn) if (opts.cache or opts.pure) else None


@dataclass(slots=True, eq=False)  # not frozen: one is built per call, and frozen fields cost ~3x to set
class Pending:
    """Where the result of a call that missed must be kept once it completes.

    Attributes:
        books: the call site's bookkeeping.
        state: the call's run, or None outside a run.
        cache_key: the call's key in the task's caches, or None when uncached.
        record: what a run hook's store (the run's checkpoint) asked to be given the
            result (``on_task_lookup``), or None.
    """

    books: CallBooks
    state: RunState | None
    cache_key: bytes | None
    record: Callable[[Any], Any] | None

    def store(self, result: Any) -> CachedResult | None:
        """Keep ``result`` in the task's caches and give it to the hooks' store. The
        caches keep copies: the caller may change ``result`` afterwards.

        Returns:
            What the memory cache keeps (calls waiting for this one get copies of it), or
            None when the call is not cached.

        Raises:
            TaskError: a cached task returned a result that cannot be cached (an
                iterator, an object nothing can copy), with the reason as its cause.
            CheckpointError: the run's checkpoint cannot be written.
        """
        books, state = self.books, self.state
        entry = None
        if self.cache_key is not None and books.memory is not None:
            binding = books.binding
            try:
                entry = books.memory.put(self.cache_key, result)
            except UncacheableResult as exc:
                option = "pure=True" if binding.options.pure else "cache=True"
                message = (
                    f"task {binding.name!r} at {books.span} returned {exc.what}, which cannot be "
                    f"cached ({option}): {exc.why}, or remove {option}"
                )
                raise TaskError(message, task=binding.name, span=books.span) from exc
            if state is not None and state.disk_cache is not None:
                state.disk_cache.put(self.cache_key, result, binding.name)
        if self.record is not None:
            self.record(result)
        return entry


#: the source :meth:`CallBooks.open` gives a call it did not find
MISS = ""


class CallBooks:
    """The bookkeeping of one wrapped call site around each of its calls, the same for
    synchronous and awaited calls: tell the run's hooks, look the call up in the hooks'
    store (the run's checkpoint) and the task's caches, and keep the result of a call
    that ran (landing its single flight).

    Args:
        binding: the task called there.
        span: ``"file:line:col"`` of the call.
        events: the events the run's hooks override (:func:`namu.runtime.hooks.needs`).
        flights: the single-flight table the site's cached calls share.

    Attributes:
        memory: the task's memory cache, or None when uncached.
        site: the call site as the hooks see it, or None when they need no task event.
    """

    __slots__ = ("binding", "flights", "memory", "site", "span", "stores")

    def __init__(self, binding: TaskBinding, span: str, events: frozenset[str], flights: Flights) -> None:
        self.binding = binding
        self.span = span
        self.flights = flights
        self.memory = memory_for(binding)
        cached = self.memory is not None
        self.site = (
            TaskCall(binding.name, binding.key, span, cached=cached, digest=binding.digest) if events & TASK_EVENTS else None
        )
        #: the hooks keep a store of calls (``on_task_lookup``: the run's checkpoint)
        self.stores = "task_lookup" in events

    @property
    def needed(self) -> bool:
        """Whether a call does any bookkeeping at all (else it may run bare)."""
        return self.memory is not None or self.site is not None

    def on_retry(self, attempt: int, error: Exception, delay_s: float) -> None:
        """Tell the current run's hooks that an attempt failed and another follows."""
        state = current_run()
        if state is not None and state.hooks is not None and self.site is not None:
            state.hooks.on_task_retry(self.site, attempt, error, delay_s)

    def open(
        self, state: RunState | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[RunHooks | None, str, Any, Pending | None]:
        """A call starts: tell the hooks, then look it up in the hooks' store (the run's
        checkpoint, ``on_task_lookup``) and the task's caches (memory, then disk).

        Returns:
            ``(hooks, source, result, pending)``: ``hooks`` to tell the end to, or None;
            on a hit ``source`` is ``"checkpoint"`` or ``"cache"`` with the result (a
            cache hit is given to the store too); on a miss :data:`MISS`, and
            ``pending.store(result)`` keeps the result once the call completed, or None
            when nothing applies (arguments that cannot be content-addressed run
            unrecorded).

        Raises:
            CheckpointError: the run's checkpoint cannot be read or written.
        """
        site = self.site
        hooks = state.hooks if site is not None and state is not None else None
        if hooks is not None:
            hooks.on_task_start(site)  # type: ignore[arg-type]
        memory = self.memory
        stores = hooks is not None and self.stores
        if not stores and memory is None:
            return hooks, MISS, None, None
        try:
            args_digest = content_digest((args, kwargs))
        except UnhashableValue:
            return hooks, MISS, None, None
        record = None
        if stores:
            found, got = hooks.on_task_lookup(site, args_digest)  # type: ignore[union-attr, arg-type]
            if found:
                return hooks, "checkpoint", got, None
            record = got
        cache_key = None
        if memory is not None:
            binding = self.binding
            cache_key = result_key(binding.digest, binding.key, args_digest)
            found, value = memory.get(cache_key)
            if not found and state is not None and state.disk_cache is not None:
                found, value = state.disk_cache.get(cache_key)
                if found:
                    memory.put(cache_key, value)
            if found:
                if record is not None:
                    record(value)
                return hooks, "cache", value, None
        return hooks, MISS, None, Pending(self, state, cache_key, record)

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
