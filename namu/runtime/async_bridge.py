"""Run ``async def`` tasks from synchronous code on background event loops.

A synchronous caller (a workflow run, an async task called outside the kernel) blocks
until the coroutines it started are done, so they must run on a loop in another thread:

* the *shared* loop, in a daemon thread started on first use, serves every caller that is
  not itself running on one of namu's loops, so async tasks work whether or not the
  caller is inside a foreign event loop (Jupyter, an async web handler);
* a caller that *is* on one of namu's loops (an async task that runs a workflow with
  async tasks of its own: what an agent's tool does) would block the very loop its
  coroutines need, so it borrows a *private* loop for the duration of the call, from a
  free list of spare loops (each in its own daemon thread). Nesting to any depth works
  the same way, one borrowed loop per level.

Daemon threads never keep the process alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

__all__ = ["AsyncDriver", "driver_factory", "event_loop", "run_coroutine"]

_shared: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()
#: idle private loops, ready to be borrowed
_spare: list[asyncio.AbstractEventLoop] = []
#: identities of the threads running namu's loops
_loop_threads: set[int] = set()


def _start_loop(name: str) -> asyncio.AbstractEventLoop:
    """A new event loop running forever in a daemon thread named ``name``."""
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        _loop_threads.add(threading.get_ident())
        started.set()
        loop.run_forever()

    threading.Thread(target=serve, name=name, daemon=True).start()
    started.wait()
    return loop


def _shared_loop() -> asyncio.AbstractEventLoop:
    global _shared
    if _shared is None:
        with _lock:
            if _shared is None:
                _shared = _start_loop("namu-asyncio")
    return _shared


@contextlib.contextmanager
def event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The event loop a synchronous caller on this thread may block on while it waits.

    The shared loop, unless this thread runs one of namu's loops: then a private loop,
    borrowed for the ``with`` block and returned to the free list after it.
    """
    if threading.get_ident() not in _loop_threads:
        yield _shared_loop()
        return
    with _lock:
        loop = _spare.pop() if _spare else None
    if loop is None:
        loop = _start_loop("namu-asyncio-nested")
    try:
        yield loop
    finally:
        with _lock:
            _spare.append(loop)


def run_coroutine(coro: Coroutine[Any, Any, Any], timeout_s: float | None = None) -> Any:
    """Run ``coro`` to completion on a background loop (:func:`event_loop`) and return
    its result.

    Args:
        coro: the coroutine to run.
        timeout_s: cancel the coroutine after this many seconds.

    Raises:
        TimeoutError: the coroutine did not finish within ``timeout_s`` (it is cancelled).
        Exception: whatever the coroutine raised.
    """
    if timeout_s is not None:
        coro = asyncio.wait_for(coro, timeout_s)
    with event_loop() as loop:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()


class AsyncDriver:
    """Awaits the awaitables a kernel run hands out, on the background event loop.

    The kernel is sans-IO: it calls ``spawn(batch)`` with the ``(token, awaitable)`` pairs
    that became ready, and learns of each result through ``sink.ok(token, value)`` or
    ``sink.err(token, exc)``. The kernel caps how many are in flight.

    Args:
        sink: the run's ``namu._kernel.Sink``.
        context: the ``contextvars.Context`` of the run; each awaitable runs in a copy.
        loop: the loop to run them on (:func:`event_loop`).
    """

    def __init__(self, sink: Any, context: contextvars.Context, loop: asyncio.AbstractEventLoop) -> None:
        self._sink = sink
        self._context = context
        self._loop = loop
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


def driver_factory(context: contextvars.Context, loop: asyncio.AbstractEventLoop) -> Callable[[Any], AsyncDriver]:
    """The ``driver`` argument of ``namu._kernel.Plan.run`` for a run in ``context`` whose
    awaitables run on ``loop``."""
    return lambda sink: AsyncDriver(sink, context, loop)
