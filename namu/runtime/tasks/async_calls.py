"""The coroutines of awaited task calls: ``async def`` tasks, and ``mode="process"``
tasks (awaiting the call in a worker process, :mod:`namu.runtime.processes`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from namu.errors import TaskError
from namu.runtime.result import RunState, current_run, enter_run, exit_run
from namu.runtime.tasks.bindings import TaskBinding, input_splitter
from namu.runtime.tasks.bookkeeping import CallBooks
from namu.runtime.tasks.failures import fallback_error, task_error
from namu.runtime.tasks.flights import ASYNC_FLIGHTS, landed
from namu.runtime.tasks.retries import RetryPolicy, retrying_async

__all__ = ["task_coroutine_fn"]


def _in_run(state: RunState | None, fn: Callable[..., Any], inputs: tuple[Any, ...]) -> Any:
    """``fn(*inputs)`` with ``state`` as the current run."""
    token = enter_run(state)  # type: ignore[arg-type]
    try:
        return fn(*inputs)
    finally:
        exit_run(token)


def _recovery_async(
    binding: TaskBinding, kwnames: Sequence[str], span: str, events: frozenset[str]
) -> Callable[[RunState | None, tuple[Any, ...], Exception], Coroutine[Any, Any, Any]] | None:
    """``recover(state, inputs, exc)`` for an awaited call that failed with ``exc``: the
    fallback's result, or the call's :class:`TaskError`; None without a fallback. An async
    fallback is awaited, a synchronous one runs in a thread (``asyncio.to_thread``), both
    in the call's run."""
    if binding.fallback is None:
        return None
    fallback = binding.fallback.as_fallback()
    if fallback.awaited:
        make = task_coroutine_fn(fallback, kwnames, span, events=events)

        async def call_fallback(state: RunState | None, inputs: tuple[Any, ...]) -> Any:
            return await _in_run(state, make, inputs)  # the coroutine captures the run when made

    else:
        # imported here: sync_calls imports this module
        from namu.runtime.tasks.sync_calls import task_callable

        call_sync = task_callable(fallback, kwnames, span, events=events)

        async def call_fallback(state: RunState | None, inputs: tuple[Any, ...]) -> Any:
            return await asyncio.to_thread(_in_run, state, call_sync, inputs)

    async def recover(state: RunState | None, inputs: tuple[Any, ...], exc: Exception) -> Any:
        try:
            return await call_fallback(state, inputs)
        except TaskError as failed:
            raise fallback_error(binding, span, exc, failed) from failed.__cause__

    return recover


def task_coroutine_fn(
    binding: TaskBinding, kwnames: Sequence[str], span: str, *, events: frozenset[str] = frozenset()
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """For an ``async def`` task: ``call(*inputs) -> coroutine`` the caller schedules itself.

    ``call`` is a plain function: it captures the current run (:func:`current_run`)
    when called, so the coroutine may be awaited on any thread and event loop. The
    coroutine applies keyword arguments, the run's checkpoint journal and the task's
    result caches (a cached call made while an equal one is in flight awaits that one's
    result instead of running again), retries (``await asyncio.sleep(retry_delay_s(...))``
    between attempts) and the timeout (each attempt runs under ``asyncio.timeout``: the task's
    coroutine is really cancelled), then reports to the run's hooks; a call that still
    fails awaits the fallback (a synchronous fallback runs in a thread).

    Args:
        binding: the resolved task (``binding.awaited``).
        kwnames: names of the trailing inputs passed as keyword arguments.
        span: ``"file:line:col"`` of the call, for error messages and checkpoint keys.
        events: the events the run's hooks override (:func:`namu.runtime.hooks.needs`):
            the coroutine reports task starts, ends, errors and retries when they need any.

    Returns:
        ``call(*inputs) -> coroutine``. Awaiting it returns the task's result or raises
        :class:`TaskError` (:class:`TaskTimeoutError` on timeout; the internal
        ``SkipItem`` for ``on_error="skip"`` tasks) with the task's exception chained.
        Journal or cache I/O errors (:class:`~namu.errors.CheckpointError`) propagate.
    """
    opts = binding.options
    split = input_splitter(kwnames)
    books = CallBooks(binding, span, events, ASYNC_FLIGHTS)
    on_retry = books.on_retry if "task_retry" in events else None
    if binding.is_async:
        policy = RetryPolicy(opts.retries, opts.timeout_s, binding.backoff_base_s, binding.backoff_max_s, on_retry, binding.breaker)
        invoke = retrying_async(binding.fn, policy)
    else:  # mode="process": the pool kills the worker at the deadline of each attempt
        from namu.runtime.processes import in_worker_process

        policy = RetryPolicy(opts.retries, None, binding.backoff_base_s, binding.backoff_max_s, on_retry, binding.breaker)
        invoke = retrying_async(in_worker_process(binding.fn, opts.timeout_s), policy)
    recover = _recovery_async(binding, kwnames, span, events)
    flights = ASYNC_FLIGHTS  # local names, for fast method calls (see sync_calls)
    open_, failed, abandon, ran, close = books.open, books.failed, books.abandon, books.ran, books.close

    async def body(state: RunState | None, inputs: tuple[Any, ...]) -> Any:
        args, kwargs = split(inputs)
        hooks, source, result, pending = open_(state, args, kwargs)
        flight = None
        if not source and pending is not None and pending.cache_key is not None:
            loop = asyncio.get_running_loop()
            first, flight = flights.lead_or_join((loop, pending.cache_key), loop.create_future)
            if first is not None:
                # shielded: cancelling this call leaves the first one running
                found, result = landed(await asyncio.shield(first))
                source = "cache" if found else source
        if not source:
            try:
                result = await invoke(args, kwargs)
            except Exception as exc:
                failed(hooks, flight, exc)
                if recover is None:
                    raise task_error(binding, span, exc) from exc
                return await recover(state, inputs, exc)
            except BaseException:
                abandon(flight)
                raise
            source = ran(flight, pending, result)
        return close(hooks, source, result)

    def call(*inputs: Any) -> Coroutine[Any, Any, Any]:
        return body(current_run(), inputs)

    return call
