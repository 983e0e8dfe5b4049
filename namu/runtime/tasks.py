"""Turn a ``namu.Task`` node into the callable the executors run.

The callable applies the task's options (retries with exponential backoff, timeout,
cache, async) and turns a failure into :class:`~namu.errors.TaskError` naming the task
and the workflow line of the call, with the task's own exception chained.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from namu.errors import TaskError, TaskTimeoutError
from namu.ir.metadata import TaskOptions
from namu.runtime.async_bridge import run_coroutine
from namu.runtime.result import current_run

__all__ = ["SkipItem", "TaskBinding", "task_callable"]

#: first retry waits this long (seconds); each further retry doubles it.
RETRY_BASE_DELAY_S = 0.01


class SkipItem(TaskError):
    """Internal: a task with ``on_error="skip"`` failed; the enclosing fan-out drops the item."""


class TaskBinding:
    """A task resolved for execution: its function, options and digest.

    Attributes:
        key: the task's key in the artifact's task table.
        name: the name shown in errors.
        fn: the plain Python function.
        options: its :class:`TaskOptions`.
        is_async: ``fn`` is an ``async def``.
    """

    __slots__ = ("key", "name", "fn", "options", "is_async", "cache", "_cache_lock")

    def __init__(self, key: str, name: str, fn: Callable[..., Any], options: TaskOptions, is_async: bool) -> None:
        self.key = key
        self.name = name
        self.fn = fn
        self.options = options
        self.is_async = is_async
        self.cache: dict[bytes, Any] = {}
        self._cache_lock = threading.Lock()


def _timed_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout_s: float) -> Any:
    # A Python thread cannot be killed: on timeout the call is abandoned (it finishes in
    # the background and its result is dropped) and the run fails with TaskTimeoutError.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="namu-timeout")
    try:
        return pool.submit(fn, *args, **kwargs).result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        raise TimeoutError(f"timed out after {timeout_s} s") from None
    finally:
        pool.shutdown(wait=False)


def _task_error(binding: TaskBinding, span: str, exc: Exception) -> TaskError:
    """The error a run raises when ``binding``'s task raised ``exc`` (chained as cause)."""
    opts = binding.options
    if isinstance(exc, TimeoutError) and opts.timeout_s:
        cls: type[TaskError] = TaskTimeoutError
    else:
        cls = SkipItem if opts.on_error == "skip" else TaskError
    message = f"task {binding.name!r} failed at {span}: {type(exc).__name__}: {exc}"
    error = cls(message, task=binding.name, span=span)
    error.__cause__ = exc
    return error


def task_node(
    binding: TaskBinding, kwnames: Sequence[str], span: str, *, observed: bool = False
) -> tuple[Callable[..., Any], Callable[[Exception], BaseException] | None]:
    """The node callable of a ``namu.Task`` node and its error handler.

    A plain synchronous task without options, in an unobserved run, is the user's own
    function: the executor calls it directly and, only if it raises, calls the handler to
    turn the exception into :class:`TaskError` (with the exception as ``__cause__``).
    Every other task gets a Python wrapper (:func:`task_callable`) and no handler.
    """
    opts = binding.options
    plain = not (binding.is_async or opts.retries or opts.timeout_s or opts.cache or kwnames or observed)
    if not plain:
        return task_callable(binding, kwnames, span, observed=observed), None
    return binding.fn, lambda exc: _task_error(binding, span, exc)


def task_callable(binding: TaskBinding, kwnames: Sequence[str], span: str, *, observed: bool = False) -> Callable[..., Any]:
    """The callable for one ``namu.Task`` node: ``call(*inputs) -> result``.

    Applies keyword arguments, async, timeout, retries and cache (:func:`task_node`
    calls plain tasks directly instead).

    Args:
        binding: the resolved task.
        kwnames: names of the trailing inputs passed as keyword arguments.
        span: ``"file:line:col"`` of the call, for error messages.
        observed: report each finished call to the run's observer (progress bars);
            unobserved callables do no per-call bookkeeping.
    """
    fn = binding.fn
    opts = binding.options
    name = binding.name
    n_kw = len(kwnames)
    kwnames = tuple(kwnames)

    def invoke(args: tuple[Any, ...]) -> Any:
        if n_kw:
            pos, kw = args[:-n_kw], dict(zip(kwnames, args[-n_kw:]))
        else:
            pos, kw = args, {}
        attempt = 0
        while True:
            try:
                if binding.is_async:
                    return run_coroutine(fn(*pos, **kw), opts.timeout_s)
                if opts.timeout_s is not None:
                    return _timed_call(fn, pos, kw, opts.timeout_s)
                return fn(*pos, **kw)
            except Exception:
                if attempt >= opts.retries:
                    raise
                time.sleep(RETRY_BASE_DELAY_S * (2**attempt))
                attempt += 1

    def cached(args: tuple[Any, ...]) -> Any:
        try:
            key = hashlib.sha256(pickle.dumps(args, protocol=5)).digest()
        except Exception:  # noqa: BLE001 - unpicklable inputs are simply not cached
            return invoke(args)
        with binding._cache_lock:
            if key in binding.cache:
                return binding.cache[key]
        result = invoke(args)
        with binding._cache_lock:
            binding.cache[key] = result
        return result

    run = cached if opts.cache else invoke

    def observe() -> None:
        state = current_run()
        if state is not None and state.observer is not None:
            state.observer.on_task_done(name)

    if not observed:
        # No progress reporting, so no per-call bookkeeping at all.
        def call_fast(*args: Any) -> Any:
            try:
                return run(args)
            except Exception as exc:
                raise _task_error(binding, span, exc) from exc

        return call_fast

    def call(*args: Any) -> Any:
        try:
            result = run(args)
        except Exception as exc:
            observe()
            raise _task_error(binding, span, exc) from exc
        observe()
        return result

    return call
