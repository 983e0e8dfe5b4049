"""Native execution kernel of namu (a Rust extension module).

A :class:`Plan` is an executable graph: slots are registers holding one Python object each,
and nodes are ops reading some slots and writing others: Python callables (run inline, on
a work-stealing thread pool, or as awaitables on an event loop), builtin ops evaluated
natively, and control flow (fan-out, branches, loops, function calls) whose bodies are
plans themselves, run in child frames with a forked copy-on-write :class:`Context`.

Every error the kernel raises on purpose is :class:`namu.errors.KernelError`; an exception
raised by a node's callable propagates out of :meth:`Plan.run` unchanged.
"""

from collections.abc import Callable, Sequence
from typing import Any, Self, final

__all__ = ["Context", "Plan", "Sink"]

#: a node's op: a callable (an inline call) or one of
#: ``("call", callable, "inline" | "thread" | "async")``, ``("native", name)`` (name one of
#: add sub mul neg not truth identity len getitem and or eq ne lt le gt ge list tuple),
#: ``("map", body, keys, flatten, on_item_error, on_start, on_item_done)``,
#: ``("if", then_branch, else_branch, keys)``, ``("loop", body, n_carried, keys)``,
#: ``("function", body)``, ``("seq", steps)``. ``keys`` are the context keys of the node's
#: captured inputs (the inputs after the op's own).
#:
#: ``("seq", steps)`` runs a fused chain (``namu.Fused``) as one node: each step is
#: ``(op, args, error_handler)``, where ``op`` is a callable or ``("native", name)``,
#: ``args`` are indices into the node's *values* -- its inputs ``0 .. n_inputs - 1``,
#: then the result of step ``j`` at ``n_inputs + j`` (a step reads only values defined
#: before it) -- and ``error_handler`` is a callable or ``None``. The steps run one after
#: another right in the run loop (calls through vectorcall, no ready-queue traffic in
#: between); each value is released after its last reader ran; the last step's result
#: is the node's result (spread over its output slots as a call's is). When a step raises
#: an ``Exception``, its handler (else the node's ``error_handlers`` entry) makes the
#: exception the run raises, and no later step runs.
Op = Callable[..., Any] | tuple[Any, ...]

#: one step of a ``("seq", steps)`` op: ``(callable or ("native", name), args, error_handler)``.
SeqStep = tuple[Callable[..., Any] | tuple[str, str], Sequence[int], Callable[[Exception], BaseException] | None]

@final
class Context:
    """An immutable mapping from ``str``/``int`` keys to values (a HAMT).

    ``fork`` is O(1); ``set`` and ``delete`` return a new context in O(log n), sharing
    everything else with this one, so a child never changes its parent or siblings.
    """

    def __new__(cls, values: dict[str | int, Any] | None = None) -> Self: ...
    def fork(self) -> Context:
        """A child context sharing every value (O(1))."""
    def set(self, key: str | int, value: Any) -> Context:
        """A new context where ``key`` maps to ``value``. Raises TypeError for other keys."""
    def delete(self, key: str | int) -> Context:
        """A new context without ``key``. Raises KeyError if it is absent."""
    def get(self, key: str | int, default: Any = None) -> Any: ...
    def __getitem__(self, key: str | int) -> Any: ...
    def __contains__(self, key: str | int) -> bool: ...
    def __len__(self) -> int: ...
    def keys(self) -> list[str | int]: ...
    def items(self) -> list[tuple[str | int, Any]]: ...

@final
class Sink:
    """Where an async driver reports finished awaitables (made by :meth:`Plan.run`)."""

    def ok(self, token: int, value: Any) -> None:
        """The awaitable handed out with ``token`` returned ``value``."""
    def err(self, token: int, exc: BaseException) -> None:
        """The awaitable handed out with ``token`` raised ``exc``."""
    def many(self, batch: list[tuple[int, bool, Any]]) -> None:
        """Several results at once: ``(token, ok, value or exception)`` triples."""


@final
class Plan:
    """An executable graph held as compact arrays.

    Each slot is written by exactly one of: a run input, a constant, or one node output.
    A node runs once all the slots it reads are written. Among the nodes ready to run, the
    highest priority goes first and ties go to the lowest node index, so with default
    priorities nodes run in index order whenever that order is topological.

    A value is released as soon as the last node reading it has run (unless its slot is an
    output slot); a value nobody reads is released at once. Plans are immutable: a callable
    may run the same or another plan recursively, and several threads may run one plan at
    the same time.
    """

    def __new__(
        cls,
        n_slots: int,
        nodes: Sequence[tuple[Op, Sequence[int], Sequence[int]]],
        input_slots: Sequence[int],
        output_slots: Sequence[int],
        constants: Sequence[tuple[int, Any]] | None = None,
        priorities: Sequence[int] | None = None,
        error_handlers: Sequence[Callable[[Exception], BaseException] | None] | None = None,
        outer: Sequence[tuple[int, int]] | None = None,
    ) -> Self:
        """Validate a graph and build its run-time arrays.

        Args:
            n_slots: number of slots; slot indices are ``0 .. n_slots - 1``.
            nodes: per node, ``(op, input_slots, output_slots)`` (see :data:`Op`). A
                callable is called with the values of ``input_slots`` as positional arguments; an
                input slot of ``-1`` is an absent optional input and passes ``None``. With
                no output slots the result is discarded; with one it is stored; with
                ``k > 1`` it must be a tuple or list of ``k`` values, stored in order.
            input_slots: slots written from :meth:`run`'s ``inputs``, in order.
            output_slots: slots whose values :meth:`run` returns, in order (a slot may be
                listed twice; it may be an input or constant slot).
            constants: ``(slot, value)`` pairs written before every run. The plan keeps
                its own references, so constants are reused across runs. ``None`` (the
                default) means none.
            priorities: one int per node; higher runs first among ready nodes. Default:
                all ``0``.
            error_handlers: one entry per node, a callable or ``None``. When the node's
                callable raises an ``Exception`` (not a bare ``BaseException`` such as
                ``KeyboardInterrupt``), the handler is called with it and the exception
                it returns is raised instead; if the handler raises, that propagates.
                This lets a task be called directly, with error context added only on
                failure. Default: no handlers.
            outer: ``(slot, key)`` pairs: slots read from the run's context (for a
                body, the context its parent node forked). Default: none.

        Raises:
            namu.errors.KernelError: a slot index is out of range (node inputs may also be
                ``-1``); a slot is written twice; a node input or output slot is never
                written; the nodes form a cycle (the message names the nodes on it);
                ``priorities`` or ``error_handlers`` does not have one entry per node (or
                a handler is not callable); a node's callable is not
                callable; an argument has the wrong shape (e.g. ``n_slots`` negative or
                not an int, a node entry not a 3-tuple); a ``seq`` op has no steps, or a
                step reads a value not defined before it.
        """

    def run(
        self,
        inputs: Sequence[Any],
        *,
        context: Context | None = None,
        driver: Callable[[Sink], Any] | None = None,
        workers: int | None = None,
        max_concurrency: int = 256,
        contextvars: Any = None,
    ) -> list[Any]:
        """Run the plan once.

        Args:
            inputs: one value per entry of ``input_slots``, in order.
            context: the context ``outer`` slots are read from (default: empty).
            driver: ``driver(sink)`` returns an object with ``spawn(batch)`` (a list of
                ``(token, awaitable)``; each result goes to ``sink.ok``/``sink.err``) and
                ``cancel()``. Required when an async node runs.
            workers: threads of the worker pool for thread-mode calls (default: CPUs);
                started on the first such call and joined before ``run`` returns.
            max_concurrency: most async calls in flight at once (default 256).
            contextvars: a ``contextvars.Context``; worker threads run each call in a copy.

        Returns:
            The values of ``output_slots``, in order, as a new list.

        Raises:
            namu.errors.KernelError: ``len(inputs) != len(input_slots)``, or a node with
                ``k > 1`` output slots returned something other than a tuple or list of
                ``k`` values.
            Exception: any exception raised by a node's callable, unchanged (same object,
                traceback and ``__cause__``). The run stops at once, cancels what is in
                flight, and releases every value it held.
            namu.errors.RunCancelledError: Ctrl+C; everything in flight was cancelled or
                waited for, and no worker thread is left.
        """

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""

    @property
    def n_slots(self) -> int:
        """Number of slots."""

    @property
    def concurrent(self) -> bool:
        """Whether some node (here or in a body) runs in thread or async mode."""
