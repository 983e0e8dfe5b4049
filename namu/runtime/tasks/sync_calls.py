"""The callable of a ``namu.Task`` node, for synchronous calls (:func:`task_node`,
:func:`task_callable`); an awaited task's calls run its coroutine
(:mod:`~namu.runtime.tasks.async_calls`) on the background event loop."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from typing import Any

from namu.errors import TaskError
from namu.runtime.async_bridge import run_coroutine
from namu.runtime.hooks import TASK_EVENTS
from namu.runtime.result import current_run
from namu.runtime.tasks.async_calls import task_coroutine_fn
from namu.runtime.tasks.bindings import TaskBinding, input_splitter
from namu.runtime.tasks.bookkeeping import CallBooks
from namu.runtime.tasks.failures import fallback_error, task_error
from namu.runtime.tasks.flights import THREAD_FLIGHTS, landed
from namu.runtime.tasks.retries import RetryPolicy, retrying

__all__ = ["task_callable", "task_node"]


def task_node(
    binding: TaskBinding, kwnames: Sequence[str], span: str, *, events: frozenset[str] = frozenset()
) -> tuple[Callable[..., Any], Callable[[Exception], BaseException] | None]:
    """The node callable of a ``namu.Task`` node and its error handler.

    A plain synchronous task without options, in an uncheckpointed run whose hooks need
    no task event (``events``: what :func:`namu.runtime.hooks.needs` says of them),
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
        or events & TASK_EVENTS
        or binding.fallback is not None
    )
    if not plain:
        return task_callable(binding, kwnames, span, events=events), None
    return binding.fn, lambda exc: task_error(binding, span, exc)


def _recovery(
    binding: TaskBinding, kwnames: Sequence[str], span: str, events: frozenset[str]
) -> Callable[[tuple[Any, ...], Exception], Any] | None:
    """``recover(inputs, exc)`` for a synchronous call that failed with ``exc``: the
    fallback's result, or the call's :class:`TaskError`; None without a fallback. The
    fallback's call reports to the run's hooks (and its checkpoint) as its own."""
    if binding.fallback is None:
        return None
    call_fallback = task_callable(binding.fallback.as_fallback(), kwnames, span, events=events)

    def recover(inputs: tuple[Any, ...], exc: Exception) -> Any:
        try:
            return call_fallback(*inputs)
        except TaskError as failed:
            raise fallback_error(binding, span, exc, failed) from failed.__cause__

    return recover


def task_callable(
    binding: TaskBinding, kwnames: Sequence[str], span: str, *, events: frozenset[str] = frozenset()
) -> Callable[..., Any]:
    """The callable for one ``namu.Task`` node: ``call(*inputs) -> result``.

    Applies keyword arguments, async, timeout, retries, the fallback, the result cache
    and the run's hooks, its checkpoint journal among them (:func:`task_node` calls
    plain tasks directly instead). A fallback's result is neither cached nor journaled
    as this task's. An async
    task's coroutine (:func:`~namu.runtime.tasks.async_calls.task_coroutine_fn`) runs on
    the background event loop of :mod:`namu.runtime.async_bridge`.

    Args:
        binding: the resolved task.
        kwnames: names of the trailing inputs passed as keyword arguments.
        span: ``"file:line:col"`` of the call, for error messages and checkpoint keys.
        events: the events the run's hooks override (:func:`namu.runtime.hooks.needs`):
            the callable reports task starts, ends, errors and retries to them when
            they need any; else it does no per-call bookkeeping for them.

    Returns:
        ``call(*inputs)``, raising :class:`TaskError` (or :class:`TaskTimeoutError`)
        with the task's exception chained when the task fails.
    """
    if binding.awaited:
        make_coroutine = task_coroutine_fn(binding, kwnames, span, events=events)

        def call_async(*args: Any) -> Any:
            return run_coroutine(make_coroutine(*args))

        return call_async

    opts = binding.options
    split = input_splitter(kwnames)
    books = CallBooks(binding, span, events, THREAD_FLIGHTS)
    on_retry = books.on_retry if "task_retry" in events else None
    policy = RetryPolicy(opts.retries, opts.timeout_s, binding.backoff_base_s, binding.backoff_max_s, on_retry, binding.breaker)
    invoke = retrying(binding.fn, policy)
    recover = _recovery(binding, kwnames, span, events)
    # Local names: CPython compiles a method call on an imported name as an attribute
    # load and a bound-method call, slower than a method call on a local.
    flights = THREAD_FLIGHTS
    open_, failed, abandon, ran, close = books.open, books.failed, books.abandon, books.ran, books.close

    if not books.needed:
        # No cache and no task hooks (a journal is one): no per-call bookkeeping at all.
        def call_fast(*inputs: Any) -> Any:
            args, kwargs = split(inputs)
            try:
                return invoke(args, kwargs)
            except Exception as exc:
                if recover is None:
                    raise task_error(binding, span, exc) from exc
                return recover(inputs, exc)

        return call_fast

    def call(*inputs: Any) -> Any:
        args, kwargs = split(inputs)
        hooks, source, result, pending = open_(current_run(), args, kwargs)
        flight = None
        if not source and pending is not None and pending.cache_key is not None:
            first, flight = flights.lead_or_join(pending.cache_key, concurrent.futures.Future)
            if first is not None:
                found, result = landed(first.result())  # the first call always lands
                source = "cache" if found else source
        if not source:
            try:
                result = invoke(args, kwargs)
            except Exception as exc:
                failed(hooks, flight, exc)
                if recover is None:
                    raise task_error(binding, span, exc) from exc
                return recover(inputs, exc)  # never cached or journaled as this task's result
            except BaseException:
                abandon(flight)
                raise
            source = ran(flight, pending, result)
        return close(hooks, source, result)

    return call
