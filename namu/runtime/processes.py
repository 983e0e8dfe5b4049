"""``mode="process"`` tasks: each call runs in a worker process that can be killed.

A Python thread cannot be stopped, so a thread-mode or inline task that overruns its
``timeout_s`` is only abandoned: the run goes on, the call keeps its thread (and the CPU)
until it returns. A process-mode task runs in a pool of worker processes instead
(`pebble <https://pebble.readthedocs.io>`_'s ``ProcessPool``, which replaces a worker it
has stopped). A call that overruns its deadline, or whose run is cancelled (Ctrl+C, a
failed sibling), has its worker process killed, and the pool starts a fresh one.

The trade-offs, stated in docs/runtime.md:

* arguments and results cross a process boundary, so they must be picklable (refused
  with a clear :class:`TypeError` otherwise, which becomes the call's
  :class:`~namu.errors.TaskError`), and each call pays for pickling them;
* the worker imports the task by its module and qualified name (or its file), so a
  process-mode task is defined at module level (checked by ``@namu.task``);
* workers are started with ``spawn`` (never ``fork``: the parent runs threads), which
  re-imports the task's module in each worker, once.

Executors see a process-mode task as an ``async def`` task (:func:`in_worker_process`):
the kernel keeps up to ``max_concurrency`` of its calls in flight without tying up a
thread per call, and cancelling the coroutine kills the worker.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import importlib
import os
import pickle
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["in_worker_process", "process_workers", "shutdown_pool"]

_pool: Any = None
_pool_lock = threading.Lock()
#: worker processes of the pool (default: the number of CPUs)
_WORKERS_ENV = "NAMU_PROCESS_WORKERS"
#: how long stopping the pool waits for its workers to exit, in seconds
_STOP_TIMEOUT_S = 5.0


def process_workers() -> int:
    """How many worker processes the pool runs: ``$NAMU_PROCESS_WORKERS``, else the CPUs."""
    text = os.environ.get(_WORKERS_ENV, "")
    if text.strip().isdigit() and int(text) > 0:
        return int(text)
    return os.cpu_count() or 1


def _get_pool() -> Any:
    global _pool
    with _pool_lock:
        if _pool is None or not _pool.active:
            import multiprocessing

            import pebble

            if _pool is None:  # first use: stop the workers before the interpreter goes
                atexit.register(shutdown_pool)
            _pool = pebble.ProcessPool(max_workers=process_workers(), context=multiprocessing.get_context("spawn"))
    return _pool


def shutdown_pool() -> None:
    """Stop the worker processes (started again on the next process-mode call)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.stop()
        try:
            pool.join(timeout=_STOP_TIMEOUT_S)
        except TimeoutError:  # a worker that ignores SIGTERM: the OS reaps it with us
            pass


def _reference(fn: Callable[..., Any]) -> tuple[str, str, str]:
    """``(module, qualname, file)`` by which a worker process finds ``fn``."""
    code = getattr(fn, "__code__", None)
    return fn.__module__, fn.__qualname__, code.co_filename if code is not None else ""


def _resolve(module_name: str, qualname: str, file: str) -> Callable[..., Any]:
    """In a worker: the function a :func:`_reference` names (the plain function of a task)."""
    from namu.runtime.user_code import import_path, lookup_qualname

    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            if not file:
                raise
            module = import_path(file, module_name=module_name)
    obj = lookup_qualname(module, qualname)
    return getattr(obj, "fn", obj)  # a namu.Task holds the plain function


def _call(reference: tuple[str, str, str], payload: bytes) -> bytes:
    """In a worker: call the referenced function on the pickled ``(args, kwargs)`` and
    return its pickled result."""
    args, kwargs = pickle.loads(payload)
    result = _resolve(*reference)(*args, **kwargs)
    try:
        return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - reported as the call's error
        raise TypeError(
            f"the result of {reference[1]} ({type(result).__name__}) cannot be sent back "
            f"from its worker process: {exc}"
        ) from None


@functools.cache
def in_worker_process(fn: Callable[..., Any], timeout_s: float | None = None) -> Callable[..., Coroutine[Any, Any, Any]]:
    """An ``async`` function that calls ``fn`` in a worker process and awaits its result.

    The deadline counts from the moment a worker starts the call (not while it waits for
    a free worker); at the deadline the worker process is killed. Cancelling the returned
    coroutine (a cancelled run) kills it too. The pool starts a fresh worker in its place.

    Args:
        fn: a synchronous function defined at module level.
        timeout_s: the deadline of one call in seconds, or None.

    Returns:
        ``async def call(*args, **kwargs)`` (the same one for equal arguments).

    Raises:
        TimeoutError: (from the coroutine) the call overran ``timeout_s``.
        TypeError: (from the coroutine) the arguments or the result are not picklable.
        pebble.ProcessExpired: (from the coroutine) the worker process died during the call.
        Exception: whatever ``fn`` raised in the worker.
    """
    reference = _reference(fn)

    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            payload = pickle.dumps((args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - reported as the call's error
            raise TypeError(
                f"mode='process' task {reference[1]} needs picklable arguments: {exc}"
            ) from None
        future = _get_pool().schedule(_call, args=(reference, payload), timeout=timeout_s)
        try:
            data = await asyncio.wrap_future(future)
        except TimeoutError:
            if future.cancelled():
                raise
            raise TimeoutError(f"timed out after {timeout_s} s") from None
        return pickle.loads(data)

    call.__qualname__ = f"in_worker_process({reference[1]})"
    return call
