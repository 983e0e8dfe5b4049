"""Turn a ``namu.Task`` node into the callable the executors run.

The callable applies the task's options (retries with exponential backoff and jitter,
timeout, result cache, async), serves and records calls in the run's checkpoint
journal, and turns a failure into :class:`~namu.errors.TaskError` naming the task and
the workflow line of the call, with the task's own exception chained.

Order of a wrapped call: split keyword inputs -> look the call up in the run's journal
(checkpointed runs), then in the task's caches (``cache``/``pure`` tasks: memory, then
disk) -> on a miss run it (with retries, each attempt under the timeout) -> store the
result in the caches and the journal -> report it to the observer. A call that still
fails calls the task's fallback, if it has one (:meth:`TaskBinding.with_policy`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import random
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from namu.errors import TaskError, TaskTimeoutError, UncacheableResult, UnhashableValue, describe_exception
from namu.ir.metadata import TaskOptions
from namu.runtime.async_bridge import run_coroutine
from namu.runtime.cache import CachedResult, MemoryCache, memory_cache, result_key
from namu.runtime.content import content_digest
from namu.runtime.result import RunState, current_run, enter_run, exit_run

__all__ = [
    "RETRY_BASE_DELAY_S",
    "RETRY_MAX_DELAY_S",
    "SkipItem",
    "TaskBinding",
    "guarded",
    "retry_delay_s",
    "task_callable",
    "task_coroutine_fn",
    "task_node",
]

#: upper bound of the first retry's delay, in seconds; it doubles with each retry ...
RETRY_BASE_DELAY_S = 0.01
#: ... up to this cap, in seconds.
RETRY_MAX_DELAY_S = 1.0

_rng = random.Random()


def retry_delay_s(
    attempt: int,
    rng: random.Random = _rng,
    *,
    base_s: float = RETRY_BASE_DELAY_S,
    max_s: float = RETRY_MAX_DELAY_S,
) -> float:
    """How long to wait before retry number ``attempt`` (0 for the first retry), in seconds.

    Exponential backoff with "full jitter" (Marc Brooker, "Exponential Backoff And
    Jitter", AWS Architecture Blog, 2015): a uniform draw in
    ``[0, min(max_s, base_s * 2**attempt)]``, so callers that failed together do not
    retry in lockstep.

    Args:
        attempt: the number of retries already made (>= 0).
        rng: the random source (a seeded ``random.Random`` makes delays reproducible).
        base_s: upper bound of the first retry's delay (a gate's ``backoff_base_s``).
        max_s: cap of every delay (a gate's ``backoff_max_s``).

    Returns:
        The delay in seconds.
    """
    ceiling_s = min(max_s, base_s * 2.0 ** min(attempt, 64))
    return rng.uniform(0.0, ceiling_s)


class SkipItem(TaskError):
    """Internal: a task with ``on_error="skip"`` failed; the enclosing fan-out drops the item."""


class SkipTimedOutItem(SkipItem, TaskTimeoutError):
    """Internal: a task with ``on_error="skip"`` timed out. A fan-out drops the item; outside
    a fan-out the run fails with :class:`~namu.errors.TaskTimeoutError`."""


class TaskBinding:
    """A task resolved for execution: its function, options and digest.

    Args and attributes:
        key: the task's key in the artifact's task table.
        name: the name shown in errors.
        fn: the plain Python function.
        options: its :class:`TaskOptions`.
        is_async: ``fn`` is an ``async def``.
        digest: ``sha256:<hex>`` of the task's source (from the task table); part of
            every cache and checkpoint key, so an edited task never gets old results.
        journaled: the binding belongs to a checkpointed run's graph: every call goes
            through the wrapper, which records it (see :meth:`for_checkpoint`).
        backoff_base_s, backoff_max_s: the retry backoff (:func:`retry_delay_s`).
        fallback: the task called with the same arguments when a call still fails
            after its retries (or times out), or None (see :meth:`with_policy`).
    """

    __slots__ = (
        "key", "name", "fn", "options", "is_async", "digest", "journaled",
        "backoff_base_s", "backoff_max_s", "fallback",
    )

    def __init__(
        self,
        key: str,
        name: str,
        fn: Callable[..., Any],
        options: TaskOptions,
        is_async: bool,
        digest: str = "",
        *,
        journaled: bool = False,
        backoff_base_s: float = RETRY_BASE_DELAY_S,
        backoff_max_s: float = RETRY_MAX_DELAY_S,
        fallback: TaskBinding | None = None,
    ) -> None:
        self.key = key
        self.name = name
        self.fn = fn
        self.options = options
        self.is_async = is_async
        self.digest = digest
        self.journaled = journaled
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.fallback = fallback

    def _replace(self, options: TaskOptions, **changes: Any) -> TaskBinding:
        fields = {
            "journaled": self.journaled, "backoff_base_s": self.backoff_base_s,
            "backoff_max_s": self.backoff_max_s, "fallback": self.fallback, **changes,
        }
        return TaskBinding(self.key, self.name, self.fn, options, self.is_async, self.digest, **fields)

    def for_checkpoint(self) -> TaskBinding:
        """This binding for graphs of checkpointed runs (every call journaled)."""
        fallback = self.fallback.for_checkpoint() if self.fallback is not None else None
        return self._replace(self.options, journaled=True, fallback=fallback)

    def with_policy(
        self,
        *,
        retries: int,
        timeout_s: float | None,
        cache: bool,
        backoff_base_s: float = RETRY_BASE_DELAY_S,
        backoff_max_s: float = RETRY_MAX_DELAY_S,
        fallback: TaskBinding | None = None,
    ) -> TaskBinding:
        """This task under one call site's policy: a ``namu.Gate``'s, or a node's attributes.

        The options the task was declared with say what the compiler planned; the
        executors run each call with the policy its node carries.

        Args:
            retries: retries after a failing call.
            timeout_s: the limit of one attempt in seconds, or None.
            cache: memoize results by argument value (``pure`` tasks always are).
            backoff_base_s, backoff_max_s: the retry backoff (:func:`retry_delay_s`).
            fallback: the task called with the same arguments when the call still fails
                after its retries (or times out). Its own options apply to that call
                (retries, timeout, cache), its own ``fallback`` and ``on_error`` do not:
                this task's ``on_error`` decides what a call whose fallback failed too
                does (``"skip"`` drops the fan-out item).

        Returns:
            A new binding (the same function, key, digest and journaling).
        """
        update = {"retries": retries, "timeout_s": timeout_s, "cache": cache, "fallback": fallback.key if fallback else None}
        return self._replace(
            self.options.model_copy(update=update),
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            fallback=fallback,
        )

    @property
    def awaited(self) -> bool:
        """Calls are coroutines: an ``async def`` task, or a ``mode="process"`` task (its
        coroutine awaits the call in a worker process, :mod:`namu.runtime.processes`)."""
        return self.is_async or self.options.mode == "process"

    def __repr__(self) -> str:
        return f"<TaskBinding {self.key} ({self.name}){' journaled' if self.journaled else ''}>"


def _timed_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout_s: float) -> Any:
    """``fn(*args, **kwargs)`` in a daemon thread, waited for at most ``timeout_s`` seconds.

    A Python thread cannot be killed: on timeout the call is abandoned (it goes on in the
    background and its result is dropped) and ``TimeoutError`` is raised at once. The
    thread is a daemon, so an abandoned call never keeps the process from exiting
    (``mode="process"`` tasks get a hard timeout instead: their worker process is
    killed). The call runs in a copy of the caller's context: it still sees the run
    (journal, caches, the wire of a partitioned run).
    """
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    context = contextvars.copy_context()

    def attempt() -> None:
        try:
            result = context.run(fn, *args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=attempt, name="namu-timeout", daemon=True).start()
    try:
        return future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        if not future.done():
            raise TimeoutError(f"timed out after {timeout_s} s") from None
        return future.result()  # it finished as the wait ended (or raised TimeoutError itself)


def _task_error(binding: TaskBinding, span: str, exc: Exception) -> TaskError:
    """The error a run raises when ``binding``'s task raised ``exc`` (chained as cause)."""
    opts = binding.options
    timed_out = isinstance(exc, TimeoutError) and bool(opts.timeout_s)
    cls: type[TaskError]
    if opts.on_error == "skip":  # a timeout is an error like any other for the skip policy
        cls = SkipTimedOutItem if timed_out else SkipItem
    else:
        cls = TaskTimeoutError if timed_out else TaskError
    message = f"task {binding.name!r} failed at {span}: {describe_exception(exc)}"
    error = cls(message, task=binding.name, span=span)
    error.__cause__ = exc
    return error


def _fallback_error(binding: TaskBinding, span: str, exc: Exception, failed: TaskError) -> TaskError:
    """The error of a call whose fallback failed too: ``binding``'s task raised ``exc``, then
    its fallback's call raised ``failed``. ``binding``'s ``on_error`` decides the class
    (``SkipItem`` drops the fan-out item); the fallback's own exception is the cause."""
    cause = failed.__cause__ if isinstance(failed.__cause__, Exception) else failed
    cls = SkipItem if binding.options.on_error == "skip" else TaskError
    message = (
        f"task {binding.name!r} failed at {span}: {describe_exception(exc)}; "
        f"its fallback {failed.task!r} failed too: {describe_exception(cause)}"
    )
    error = cls(message, task=binding.name, span=span)
    error.__cause__ = cause
    return error


def task_node(
    binding: TaskBinding, kwnames: Sequence[str], span: str, *, observed: bool = False
) -> tuple[Callable[..., Any], Callable[[Exception], BaseException] | None]:
    """The node callable of a ``namu.Task`` node and its error handler.

    A plain synchronous task without options, in an unobserved and uncheckpointed run,
    is the user's own function: the executor calls it directly and, only if it raises,
    calls the handler to turn the exception into :class:`TaskError` (with the exception
    as ``__cause__``). Every other task gets a Python wrapper (:func:`task_callable`)
    and no handler.
    """
    opts = binding.options
    plain = not (
        binding.awaited
        or opts.retries
        or opts.timeout_s
        or opts.cache
        or opts.pure
        or kwnames
        or observed
        or binding.journaled
        or binding.fallback is not None
    )
    if not plain:
        return task_callable(binding, kwnames, span, observed=observed), None
    return binding.fn, lambda exc: _task_error(binding, span, exc)


# ---------------------------------------------------------------------- shared pieces
def _splitter(kwnames: Sequence[str]) -> Callable[[tuple[Any, ...]], tuple[tuple[Any, ...], dict[str, Any]]]:
    """``split(inputs) -> (args, kwargs)``: the trailing inputs named in ``kwnames`` are keywords."""
    names = tuple(kwnames)
    n_kw = len(names)
    if not n_kw:
        return lambda inputs: (inputs, {})
    return lambda inputs: (inputs[:-n_kw], dict(zip(names, inputs[-n_kw:])))


def _retrying(
    fn: Callable[..., Any], retries: int, timeout_s: float | None, base_s: float, max_s: float
) -> Callable[[tuple[Any, ...], dict[str, Any]], Any]:
    """``invoke(args, kwargs)``: call ``fn`` up to ``1 + retries`` times, each attempt under
    ``timeout_s``, waiting :func:`retry_delay_s` between attempts; the last error propagates."""

    def invoke(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        attempt = 0
        while True:
            try:
                if timeout_s is not None:
                    return _timed_call(fn, args, kwargs, timeout_s)
                return fn(*args, **kwargs)
            except Exception:
                if attempt >= retries:
                    raise
                time.sleep(retry_delay_s(attempt, base_s=base_s, max_s=max_s))
                attempt += 1

    return invoke


def _retrying_async(
    fn: Callable[..., Any], retries: int, timeout_s: float | None, base_s: float, max_s: float
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """As :func:`_retrying` for a function returning awaitables: each attempt runs under
    ``asyncio.timeout`` (so it is really cancelled) and the waits are ``asyncio.sleep``."""

    async def invoke(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        done = 0
        while True:
            try:
                awaitable = fn(*args, **kwargs)
                if timeout_s is None:
                    return await awaitable
                deadline = asyncio.timeout(timeout_s)
                try:
                    async with deadline:
                        return await awaitable
                except TimeoutError:
                    if deadline.expired():  # ours, not one the call raised itself
                        raise TimeoutError(f"timed out after {timeout_s} s") from None
                    raise
            except Exception:
                if done >= retries:
                    raise
                await asyncio.sleep(retry_delay_s(done, base_s=base_s, max_s=max_s))
                done += 1

    return invoke


def guarded(
    fn: Callable[..., Any],
    *,
    retries: int = 0,
    timeout_s: float | None = None,
    backoff_base_s: float = RETRY_BASE_DELAY_S,
    backoff_max_s: float = RETRY_MAX_DELAY_S,
    is_async: bool = False,
) -> Callable[..., Any]:
    """An op's callable under a ``namu.Gate``'s policy (gates around ops other than tasks,
    such as a ``namu.Recv`` under ``CompileConfig.wire_timeout_s``).

    Args:
        fn: ``fn(*inputs)``; with ``is_async``, a function returning an awaitable.
        retries, timeout_s, backoff_base_s, backoff_max_s: the gate's policy; a timed-out
            synchronous attempt is abandoned in its thread, an async one cancelled.
        is_async: ``fn`` returns awaitables; so does the result. Each attempt's awaitable
            is made in the context ``call`` was called in, as without the gate (the op
            may read it: the run's wire, for a receive).

    Returns:
        ``call(*inputs)``, raising the op's last error (``TimeoutError`` on a timeout).
    """
    if is_async:

        def call_async(*inputs: Any) -> Coroutine[Any, Any, Any]:
            context = contextvars.copy_context()
            invoke_async = _retrying_async(functools.partial(context.run, fn), retries, timeout_s, backoff_base_s, backoff_max_s)
            return invoke_async(inputs, {})

        return call_async
    invoke = _retrying(fn, retries, timeout_s, backoff_base_s, backoff_max_s)
    return lambda *inputs: invoke(inputs, {})


def _without_fallback(binding: TaskBinding) -> TaskBinding:
    """A fallback is called with its own options, but never falls back itself."""
    return binding if binding.fallback is None else binding._replace(binding.options, fallback=None)


def _recovery(binding: TaskBinding, kwnames: Sequence[str], span: str) -> Callable[[tuple[Any, ...], Exception], Any] | None:
    """``recover(inputs, exc)`` for a synchronous call that failed with ``exc``: the
    fallback's result, or the call's :class:`TaskError`; None without a fallback."""
    if binding.fallback is None:
        return None
    call_fallback = task_callable(_without_fallback(binding.fallback), kwnames, span)

    def recover(inputs: tuple[Any, ...], exc: Exception) -> Any:
        try:
            return call_fallback(*inputs)
        except TaskError as failed:
            raise _fallback_error(binding, span, exc, failed) from failed.__cause__

    return recover


def _in_run(state: RunState | None, fn: Callable[..., Any], inputs: tuple[Any, ...]) -> Any:
    """``fn(*inputs)`` with ``state`` as the current run."""
    token = enter_run(state)  # type: ignore[arg-type]
    try:
        return fn(*inputs)
    finally:
        exit_run(token)


def _recovery_async(
    binding: TaskBinding, kwnames: Sequence[str], span: str
) -> Callable[[RunState | None, tuple[Any, ...], Exception], Coroutine[Any, Any, Any]] | None:
    """As :func:`_recovery` for an async task's coroutine: an async fallback is awaited, a
    synchronous one runs in a thread (``asyncio.to_thread``), both in the call's run."""
    if binding.fallback is None:
        return None
    fallback = _without_fallback(binding.fallback)
    if fallback.awaited:
        make = task_coroutine_fn(fallback, kwnames, span)

        async def call_fallback(state: RunState | None, inputs: tuple[Any, ...]) -> Any:
            return await _in_run(state, make, inputs)  # the coroutine captures the run when made

    else:
        call_sync = task_callable(fallback, kwnames, span)

        async def call_fallback(state: RunState | None, inputs: tuple[Any, ...]) -> Any:
            return await asyncio.to_thread(_in_run, state, call_sync, inputs)

    async def recover(state: RunState | None, inputs: tuple[Any, ...], exc: Exception) -> Any:
        try:
            return await call_fallback(state, inputs)
        except TaskError as failed:
            raise _fallback_error(binding, span, exc, failed) from failed.__cause__

    return recover


def _memory_for(binding: TaskBinding) -> MemoryCache | None:
    """The in-memory cache of a ``cache=True``/``pure=True`` task, else None."""
    opts = binding.options
    return memory_cache(binding.fn) if (opts.cache or opts.pure) else None


class _Pending:
    """Where the result of a call that missed must be stored once it completes."""

    __slots__ = ("binding", "span", "state", "journal_key", "memory", "cache_key")

    def __init__(
        self,
        binding: TaskBinding,
        span: str,
        state: RunState | None,
        journal_key: bytes | None,
        memory: MemoryCache | None,
        cache_key: bytes | None,
    ) -> None:
        self.binding = binding
        self.span = span
        self.state = state
        self.journal_key = journal_key
        self.memory = memory
        self.cache_key = cache_key

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


def _look_up(
    binding: TaskBinding,
    span: str,
    state: RunState | None,
    memory: MemoryCache | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[bool, Any, _Pending | None]:
    """Find a call's result in the run's journal or the task's caches.

    Returns:
        ``(True, result, None)`` on a hit; ``(False, None, pending)`` on a miss, where
        ``pending.store(result)`` records the result once the call completed, or
        ``(False, None, None)`` when nothing applies (arguments that cannot be
        content-addressed run uncached and unjournaled).

    Raises:
        CheckpointError: the journal cannot be read or written.
    """
    journal = state.journal if (binding.journaled and state is not None) else None
    if journal is None and memory is None:
        return False, None, None
    try:
        args_digest = content_digest((args, kwargs))
    except UnhashableValue:
        return False, None, None
    journal_key = None
    if journal is not None:
        journal_key = journal.call_key(binding.key, binding.digest, span, args_digest)
        found, value = journal.lookup(journal_key)
        if found:
            return True, value, None
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
            return True, value, None
    return False, None, _Pending(binding, span, state, journal_key, memory, cache_key)


def _observe(state: RunState | None, name: str) -> None:
    if state is not None and state.observer is not None:
        state.observer.on_task_done(name)


# ---------------------------------------------------------------------- sync tasks
def task_callable(binding: TaskBinding, kwnames: Sequence[str], span: str, *, observed: bool = False) -> Callable[..., Any]:
    """The callable for one ``namu.Task`` node: ``call(*inputs) -> result``.

    Applies keyword arguments, async, timeout, retries, the fallback, the result cache
    and the run's checkpoint journal (:func:`task_node` calls plain tasks directly
    instead). A fallback's result is neither cached nor journaled as this task's. An async
    task's coroutine (:func:`task_coroutine_fn`) runs on the background event loop of
    :mod:`namu.runtime.async_bridge`.

    Args:
        binding: the resolved task.
        kwnames: names of the trailing inputs passed as keyword arguments.
        span: ``"file:line:col"`` of the call, for error messages and checkpoint keys.
        observed: report each finished call to the run's observer (progress bars);
            unobserved callables do no per-call bookkeeping.

    Returns:
        ``call(*inputs)``, raising :class:`TaskError` (or :class:`TaskTimeoutError`)
        with the task's exception chained when the task fails.
    """
    if binding.awaited:
        make_coroutine = task_coroutine_fn(binding, kwnames, span, observed=observed)

        def call_async(*args: Any) -> Any:
            return run_coroutine(make_coroutine(*args))

        return call_async

    opts = binding.options
    name = binding.name
    split = _splitter(kwnames)
    invoke = _retrying(binding.fn, opts.retries, opts.timeout_s, binding.backoff_base_s, binding.backoff_max_s)
    recover = _recovery(binding, kwnames, span)
    memory = _memory_for(binding)

    if memory is None and not binding.journaled and not observed:
        # No cache, journal or progress reporting: no per-call bookkeeping at all.
        def call_fast(*inputs: Any) -> Any:
            args, kwargs = split(inputs)
            try:
                return invoke(args, kwargs)
            except Exception as exc:
                if recover is None:
                    raise _task_error(binding, span, exc) from exc
                return recover(inputs, exc)

        return call_fast

    def call(*inputs: Any) -> Any:
        state = current_run()
        args, kwargs = split(inputs)
        found, result, pending = _look_up(binding, span, state, memory, args, kwargs)
        flight = None
        if not found and pending is not None and pending.cache_key is not None:
            first, flight = _THREAD_FLIGHTS.lead_or_join(pending.cache_key, concurrent.futures.Future)
            if first is not None:
                found, result = _landed(first.result())  # the first call always lands
        if not found:
            try:
                result = invoke(args, kwargs)
            except Exception as exc:
                _THREAD_FLIGHTS.land(flight, None)
                if observed:
                    _observe(state, name)
                if recover is None:
                    raise _task_error(binding, span, exc) from exc
                return recover(inputs, exc)  # never cached or journaled as this task's result
            except BaseException:
                _THREAD_FLIGHTS.land(flight, None)
                raise
            entry = None
            try:
                entry = pending.store(result) if pending is not None else None
            finally:  # waiting calls get copies of the entry; without one they run themselves
                _THREAD_FLIGHTS.land(flight, entry)
        if observed:
            _observe(state, name)
        return result

    return call


class _Flights:
    """Calls of cached tasks in flight, by key ("single flight", as Go's singleflight
    package or an HTTP cache's request collapsing): a call with equal arguments made
    while the first is still running waits for its result instead of running the task
    again. The first call *lands* its flight with the :class:`CachedResult` the cache
    kept, and each waiting call gets its own copy of it (as from a cache hit); or with
    None when it failed (or its result could not be stored), and each waiting call then
    runs the task itself. Entries live only while their call runs.
    """

    def __init__(self) -> None:
        self._calls: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def lead_or_join(self, key: Any, new_future: Callable[[], Any]) -> tuple[Any, tuple[Any, Any] | None]:
        """``(first, None)``: the future of an equal call in flight, to wait on; or
        ``(None, flight)``: this call leads, runs the task and lands ``flight``."""
        with self._lock:
            first = self._calls.get(key)
            if first is not None:
                return first, None
            future = self._calls[key] = new_future()
        return None, (key, future)

    def land(self, flight: tuple[Any, Any] | None, landed: CachedResult | None) -> None:
        """End a flight: waiting calls get the kept result, or None to run themselves."""
        if flight is not None:
            key, future = flight
            with self._lock:
                del self._calls[key]
            future.set_result(landed)


def _landed(landed: CachedResult | None) -> tuple[bool, Any]:
    """``(True, a copy of the result)`` from a flight the first call landed with its
    result, else ``(False, None)``: it failed, so this call runs the task itself."""
    return (True, landed.copy()) if landed is not None else (False, None)


#: synchronous calls (thread mode, concurrent runs), by result key.
_THREAD_FLIGHTS = _Flights()
#: async calls, by (event loop, result key): a future belongs to one loop.
_ASYNC_FLIGHTS = _Flights()


# ---------------------------------------------------------------------- async tasks
def task_coroutine_fn(
    binding: TaskBinding, kwnames: Sequence[str], span: str, *, observed: bool = False
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """For an ``async def`` task: ``call(*inputs) -> coroutine`` the caller schedules itself.

    ``call`` is a plain function: it captures the current run (:func:`current_run`)
    when called, so the coroutine may be awaited on any thread and event loop. The
    coroutine applies keyword arguments, the run's checkpoint journal and the task's
    result caches (a cached call made while an equal one is in flight awaits that one's
    result instead of running again), retries (``await asyncio.sleep(retry_delay_s(...))``
    between attempts) and the timeout (each attempt runs under ``asyncio.timeout``: the task's
    coroutine is really cancelled), then reports to the observer; a call that still
    fails awaits the fallback (a synchronous fallback runs in a thread).

    Args:
        binding: the resolved task (``binding.awaited``).
        kwnames: names of the trailing inputs passed as keyword arguments.
        span: ``"file:line:col"`` of the call, for error messages and checkpoint keys.
        observed: report each finished call to the run's observer.

    Returns:
        ``call(*inputs) -> coroutine``. Awaiting it returns the task's result or raises
        :class:`TaskError` (:class:`TaskTimeoutError` on timeout; the internal
        ``SkipItem`` for ``on_error="skip"`` tasks) with the task's exception chained.
        Journal or cache I/O errors (:class:`~namu.errors.CheckpointError`) propagate.
    """
    opts = binding.options
    name = binding.name
    split = _splitter(kwnames)
    if binding.is_async:
        invoke = _retrying_async(binding.fn, opts.retries, opts.timeout_s, binding.backoff_base_s, binding.backoff_max_s)
    else:  # mode="process": the pool kills the worker at the deadline of each attempt
        from namu.runtime.processes import in_worker_process

        remote = in_worker_process(binding.fn, opts.timeout_s)
        invoke = _retrying_async(remote, opts.retries, None, binding.backoff_base_s, binding.backoff_max_s)
    recover = _recovery_async(binding, kwnames, span)
    memory = _memory_for(binding)

    async def body(state: RunState | None, inputs: tuple[Any, ...]) -> Any:
        args, kwargs = split(inputs)
        found, result, pending = _look_up(binding, span, state, memory, args, kwargs)
        flight = None
        if not found and pending is not None and pending.cache_key is not None:
            loop = asyncio.get_running_loop()
            first, flight = _ASYNC_FLIGHTS.lead_or_join((loop, pending.cache_key), loop.create_future)
            if first is not None:
                # shielded: cancelling this call leaves the first one running
                found, result = _landed(await asyncio.shield(first))
        if not found:
            try:
                result = await invoke(args, kwargs)
            except Exception as exc:
                _ASYNC_FLIGHTS.land(flight, None)
                if observed:
                    _observe(state, name)
                if recover is None:
                    raise _task_error(binding, span, exc) from exc
                return await recover(state, inputs, exc)
            except BaseException:
                _ASYNC_FLIGHTS.land(flight, None)
                raise
            entry = None
            try:
                entry = pending.store(result) if pending is not None else None
            finally:  # waiting calls get copies of the entry; without one they run themselves
                _ASYNC_FLIGHTS.land(flight, entry)
        if observed:
            _observe(state, name)
        return result

    def call(*inputs: Any) -> Coroutine[Any, Any, Any]:
        return body(current_run(), inputs)

    return call
