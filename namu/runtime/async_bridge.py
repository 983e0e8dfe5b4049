"""Run ``async def`` tasks from synchronous code.

A workflow run on a thread with no event loop running (a script, a CLI command, a worker
thread) runs its async tasks on an *inline* loop: an idle event loop borrowed for the run,
which the kernel runs on the run's own thread whenever it waits for an async call
(:class:`InlineDriver`). No thread is crossed, so an async task call costs about as much
as one ``await`` in a hand-written loop. Idle inline loops are kept for the next run
(clients made on a loop, such as an LLM provider's connection pool, are kept with it).

Otherwise a synchronous caller (a run inside a foreign event loop, an async task called
outside the kernel) blocks until the coroutines it started are done, so they must run on
a loop in another thread:

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
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

__all__ = ["AsyncDriver", "InlineDriver", "async_driver", "event_loop", "run_coroutine"]

_shared: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()
#: idle private loops, ready to be borrowed
_spare: list[asyncio.AbstractEventLoop] = []
#: identities of the threads running namu's loops
_loop_threads: set[int] = set()
#: inline loops not lent to a run
_idle_inline: list[asyncio.AbstractEventLoop] = []


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
        if not self._finished:
            # Report everything that finishes in this loop iteration in one hand-off.
            self._loop.call_soon(self._flush)
        self._finished.append(_outcome(token, task))

    def _flush(self) -> None:
        batch, self._finished = self._finished, []
        self._sink.many(batch)

    def _cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def _outcome(token: int, task: asyncio.Task[Any]) -> tuple[int, bool, Any]:
    """What the kernel's ``Sink.many`` takes for the finished ``task``."""
    if task.cancelled():
        return (token, False, asyncio.CancelledError())
    if (exc := task.exception()) is not None:
        return (token, False, exc)
    return (token, True, task.result())


class _Interrupts:
    """Ctrl+C for a run whose inline loop runs on the main thread.

    Python raises ``KeyboardInterrupt`` wherever the main thread happens to be, and with
    an inline loop that is often inside a coroutine, where a library may turn it into
    something else (a connection error that a retry then recovers from). So while the
    run lasts, SIGINT goes to :meth:`handler` instead (as ``asyncio.run`` does): while
    the loop runs, it only records the interrupt and stops the loop, and
    :meth:`InlineDriver.wait` raises ``KeyboardInterrupt`` outside the loop; elsewhere
    (the kernel running a node) it raises at once, as Python's own handler does.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending = False

    def handler(self, signum: int, frame: Any) -> None:
        if self.loop.is_running():
            self.pending = True
            self.loop.call_soon_threadsafe(self.loop.stop)
        else:
            signal.default_int_handler(signum, frame)

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Interrupts | None]:
        """This handler for SIGINT during the block, if this is the main thread and SIGINT
        has Python's default handler (a handler of the program's own is left alone);
        yields it, or None."""
        if threading.current_thread() is not threading.main_thread():
            yield None
            return
        previous = signal.signal(signal.SIGINT, self.handler)
        if previous is not signal.default_int_handler:
            signal.signal(signal.SIGINT, previous)
            yield None
            return
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


class InlineDriver(AsyncDriver):
    """An :class:`AsyncDriver` whose loop runs on the kernel's own thread.

    The loop is not running anywhere: the kernel calls :meth:`wait` whenever it has async
    calls in flight and nothing else to do, and the loop runs until an awaitable finished
    (the rest of that loop iteration included, so awaitables finishing together are
    reported together) or the time is up. Starting and cancelling awaitables happen
    directly, on the same thread.

    Args:
        sink, context, loop: as for :class:`AsyncDriver`.
        interrupts: the run's SIGINT handler, if it has one (:class:`_Interrupts`).
    """

    def __init__(self, sink: Any, context: contextvars.Context, loop: asyncio.AbstractEventLoop,
                 interrupts: _Interrupts | None = None) -> None:
        super().__init__(sink, context, loop)
        self._interrupts = interrupts

    def spawn(self, batch: list[tuple[int, Any]]) -> None:
        self._start(batch)

    def cancel(self) -> None:
        self._cancel_all()

    def wait(self, timeout_s: float | None) -> None:
        """Run the loop until an awaitable finished, or for ``timeout_s`` seconds (None:
        no limit); report what finished to the sink.

        Raises:
            KeyboardInterrupt: Ctrl+C while the loop ran (the kernel stops the run).
        """
        loop = self._loop
        timer = None if timeout_s is None else loop.call_later(timeout_s, loop.stop)
        try:
            loop.run_forever()
        finally:
            if timer is not None:
                timer.cancel()
            if self._finished:
                self._flush()
        interrupts = self._interrupts
        if interrupts is not None and interrupts.pending:
            interrupts.pending = False
            raise KeyboardInterrupt

    def _done(self, token: int, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._finished.append(_outcome(token, task))
        self._loop.stop()  # after this iteration: the kernel has work


@contextlib.contextmanager
def async_driver(context: contextvars.Context) -> Iterator[Callable[[Any], AsyncDriver]]:
    """The ``driver`` argument of ``namu._kernel.Plan.run`` for a run in ``context`` on
    this thread, for the duration of the ``with`` block.

    An :class:`InlineDriver` over a borrowed idle loop if no event loop runs on this
    thread (with :class:`_Interrupts` handling Ctrl+C on the main thread); otherwise an
    :class:`AsyncDriver` over a loop of another thread (:func:`event_loop`).
    """
    if asyncio._get_running_loop() is not None:
        with event_loop() as running:
            yield lambda sink: AsyncDriver(sink, context, running)
        return
    with _lock:
        loop = _idle_inline.pop() if _idle_inline else None
    if loop is None:
        loop = asyncio.new_event_loop()
    try:
        with _Interrupts(loop).installed() as interrupts:
            yield lambda sink: InlineDriver(sink, context, loop, interrupts)
    finally:
        with _lock:
            _idle_inline.append(loop)
