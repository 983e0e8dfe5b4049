"""Wire ops in one process: ``namu.Send`` / ``namu.Recv`` over a per-run bus.

A partitioned workflow's partitions exchange values only through wire ops (see the
``partition`` pass). When every partition runs in the same process (each on its own
thread, :mod:`namu.runtime.partitions`), the wire is a :class:`Bus`: one mailbox per
channel, shared by the partitions of one run. Wire ops sit in the main graph of their
partition, so every channel carries exactly **one** value per run; a mailbox is
therefore a one-shot ``concurrent.futures.Future``, which gives a blocking receive (the
reference executor), an awaitable one that holds no thread (the kernel runs ``Recv`` as
an async op) and cancellation in one primitive.

A ``Send`` never blocks. A ``Recv`` waits for its value, up to ``wire_timeout_s`` when
the compile set one (``CompileConfig.wire_timeout_s``, kept in the passport), else for
as long as it takes; when a partition fails, :meth:`Bus.fail` wakes every waiting
``Recv`` with :class:`RunAborted`, so the other partitions stop instead of hanging.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import onnx_ir as ir

from namu.ir.metadata import SPAN_KEY

__all__ = ["Bus", "RunAborted", "open_bus", "recv_coroutine_fn", "recv_op", "send_op"]

_BUS: contextvars.ContextVar[Bus | None] = contextvars.ContextVar("namu_wire_bus", default=None)


class RunAborted(Exception):
    """Another partition of the run failed; this one stops (the run raises that failure)."""


class Bus:
    """The channels of one run: each carries one value from its ``Send`` to its ``Recv``.

    Thread-safe: partitions on several threads (and the event loop awaiting ``Recv``
    ops) share it.

    Args:
        timeout_s: how long a ``Recv`` waits for its value (seconds), or None for ever.

    Attributes:
        failure: the first exception a partition of the run raised, or None.
    """

    def __init__(self, timeout_s: float | None = None) -> None:
        self.timeout_s = timeout_s
        self.failure: BaseException | None = None
        self._lock = threading.Lock()
        self._mailboxes: dict[str, concurrent.futures.Future[Any]] = {}

    def _mailbox(self, channel: str) -> concurrent.futures.Future[Any]:
        with self._lock:
            if self.failure is not None:
                raise RunAborted("another partition of the run failed") from None
            box = self._mailboxes.get(channel)
            if box is None:
                box = self._mailboxes[channel] = concurrent.futures.Future()
            return box

    def send(self, channel: str, value: Any) -> None:
        """Put ``value`` on ``channel`` (never blocks).

        Raises:
            RunAborted: the run already failed.
            RuntimeError: ``channel`` was sent on twice in this run.
        """
        box = self._mailbox(channel)
        try:
            box.set_result(value)
        except concurrent.futures.InvalidStateError:
            if box.cancelled() or self.failure is not None:
                raise RunAborted("another partition of the run failed") from None
            raise RuntimeError(f"wire channel {channel!r} was sent on twice in one run") from None

    def recv(self, channel: str) -> Any:
        """The value sent on ``channel``, waiting for it (up to ``timeout_s``).

        Raises:
            RunAborted: the run failed while waiting.
            TimeoutError: nothing arrived within ``timeout_s``.
        """
        box = self._mailbox(channel)
        try:
            value = box.result(self.timeout_s)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"nothing arrived within {self.timeout_s} s (wire_timeout_s)") from None
        self._release(channel)
        return value

    async def recv_async(self, channel: str) -> Any:
        """:meth:`recv` for an event loop: waits without holding a thread."""
        box = self._mailbox(channel)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()

        def wake(done: concurrent.futures.Future[Any]) -> None:
            loop.call_soon_threadsafe(_transfer, done, waiter)

        box.add_done_callback(wake)
        try:
            async with asyncio.timeout(self.timeout_s):
                value = await waiter
        except TimeoutError:
            raise TimeoutError(f"nothing arrived within {self.timeout_s} s (wire_timeout_s)") from None
        self._release(channel)
        return value

    def _release(self, channel: str) -> None:
        """Drop a received value: its one reader has it (so the bus holds nothing live)."""
        with self._lock:
            self._mailboxes.pop(channel, None)

    def fail(self, exc: BaseException) -> bool:
        """Record that a partition raised ``exc`` and wake every waiting ``Recv``.

        Returns:
            True if ``exc`` is the run's first failure (the one the run raises).
        """
        with self._lock:
            if self.failure is not None:
                return False
            self.failure = exc
            boxes = list(self._mailboxes.values())
        for box in boxes:
            if not box.done():
                with contextlib.suppress(concurrent.futures.InvalidStateError):
                    box.set_exception(RunAborted("another partition of the run failed"))
        return True


def _transfer(done: concurrent.futures.Future[Any], waiter: asyncio.Future[Any]) -> None:
    if waiter.done():  # the awaiting Recv was cancelled or timed out
        return
    exc = done.exception()
    if exc is not None:
        waiter.set_exception(exc)
    else:
        waiter.set_result(done.result())


@contextlib.contextmanager
def open_bus(timeout_s: float | None = None) -> Iterator[Bus]:
    """Make a new :class:`Bus` the current run's wire for the ``with`` block (and for
    threads started in a copy of its ``contextvars`` context)."""
    bus = Bus(timeout_s)
    token = _BUS.set(bus)
    try:
        yield bus
    finally:
        _BUS.reset(token)


def _current(node: ir.Node) -> Bus:
    bus = _BUS.get()
    if bus is None:
        raise RuntimeError(
            f"{node.metadata_props.get(SPAN_KEY, '?')}: namu.{node.op_type} ran outside a run with a wire "
            "(run the model through namu.Artifact)"
        )
    return bus


def _where(node: ir.Node, channel: str) -> str:
    peer = "from" if node.op_type == "Recv" else "to"
    attr = node.attributes.get(peer)
    other = f" {peer} {attr.as_string()!r}" if attr is not None else ""
    return f"namu.{node.op_type} on channel {channel!r}{other} at {node.metadata_props.get(SPAN_KEY, '?')}"


def send_op(node: ir.Node) -> Callable[[Any], None]:
    """The callable of a ``namu.Send`` node: put its input on the run's bus."""
    channel = node.attributes["channel"].as_string()

    def send(value: Any) -> None:
        _current(node).send(channel, value)

    return send


def recv_op(node: ir.Node) -> Callable[[], Any]:
    """The callable of a ``namu.Recv`` node: block until its value arrives."""
    channel = node.attributes["channel"].as_string()
    where = _where(node, channel)

    def recv() -> Any:
        try:
            return _current(node).recv(channel)
        except TimeoutError as exc:
            raise TimeoutError(f"{where}: {exc}") from None

    return recv


def recv_coroutine_fn(node: ir.Node) -> Callable[[], Coroutine[Any, Any, Any]]:
    """The async op of a ``namu.Recv`` node for the kernel: ``call() -> coroutine``.

    The bus is looked up when the kernel calls it (on the partition's thread); the
    coroutine then awaits the value on the event loop, so the kernel's run loop keeps
    running the partition's other ready ops meanwhile.
    """
    channel = node.attributes["channel"].as_string()
    where = _where(node, channel)

    def call() -> Coroutine[Any, Any, Any]:
        bus = _current(node)

        async def recv() -> Any:
            try:
                return await bus.recv_async(channel)
            except TimeoutError as exc:
                raise TimeoutError(f"{where}: {exc}") from None

        return recv()

    return call
