"""Run ``async def`` tasks from synchronous code on one background event loop.

The loop lives in a daemon thread started on first use, so async tasks work whether or
not the caller is itself inside a running event loop (Jupyter, an async web handler).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["AsyncDriver", "driver_factory", "run_coroutine"]

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def _get_loop() -> asyncio.AbstractEventLoop:
    global _loop
    if _loop is None:
        with _lock:
            if _loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="namu-asyncio", daemon=True)
                thread.start()
                _loop = loop
    return _loop


def run_coroutine(coro: Coroutine[Any, Any, Any], timeout_s: float | None = None) -> Any:
    """Run ``coro`` to completion on the background loop and return its result.

    Args:
        coro: the coroutine to run.
        timeout_s: cancel the coroutine after this many seconds.

    Raises:
        TimeoutError: the coroutine did not finish within ``timeout_s`` (it is cancelled).
        Exception: whatever the coroutine raised.
    """
    if timeout_s is not None:
        coro = asyncio.wait_for(coro, timeout_s)
    future = asyncio.run_coroutine_threadsafe(coro, _get_loop())
    return future.result()


class AsyncDriver:
    """Awaits the awaitables a kernel run hands out, on the background event loop.

    The kernel is sans-IO: it calls ``spawn(batch)`` with the ``(token, awaitable)`` pairs
    that became ready, and learns of each result through ``sink.ok(token, value)`` or
    ``sink.err(token, exc)``. The kernel caps how many are in flight.

    Args:
        sink: the run's ``namu._kernel.Sink``.
        context: the ``contextvars.Context`` of the run; each awaitable runs in a copy.
    """

    def __init__(self, sink: Any, context: contextvars.Context) -> None:
        self._sink = sink
        self._context = context
        self._loop = _get_loop()
        self._tasks: set[asyncio.Task[Any]] = set()
        #: completions of this loop iteration, reported together by ``_flush``
        self._finished: list[tuple[int, bool, Any]] = []

    def spawn(self, batch: list[tuple[int, Any]]) -> None:
        """Start every awaitable of ``batch`` (called from the kernel's thread)."""
        self._loop.call_soon_threadsafe(self._start, batch)

    def cancel(self) -> None:
        """Cancel every awaitable still running (called from the kernel's thread)."""
        self._loop.call_soon_threadsafe(self._cancel_all)

    def _start(self, batch: list[tuple[int, Any]]) -> None:
        for token, awaitable in batch:
            try:
                if asyncio.iscoroutine(awaitable):
                    task = self._loop.create_task(awaitable, context=self._context.copy())
                else:
                    task = asyncio.ensure_future(awaitable, loop=self._loop)
            except BaseException as exc:  # noqa: BLE001 - reported to the kernel as the node's error
                self._sink.err(token, exc)
                continue
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._done, token))

    def _done(self, token: int, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            result: tuple[int, bool, Any] = (token, False, asyncio.CancelledError())
        elif (exc := task.exception()) is not None:
            result = (token, False, exc)
        else:
            result = (token, True, task.result())
        if not self._finished:
            # Report everything that finishes in this loop iteration in one hand-off.
            self._loop.call_soon(self._flush)
        self._finished.append(result)

    def _flush(self) -> None:
        batch, self._finished = self._finished, []
        self._sink.many(batch)

    def _cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def driver_factory(context: contextvars.Context) -> Callable[[Any], AsyncDriver]:
    """The ``driver`` argument of ``namu._kernel.Plan.run`` for a run in ``context``."""
    return lambda sink: AsyncDriver(sink, context)
