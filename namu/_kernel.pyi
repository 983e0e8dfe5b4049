"""Native execution kernel of namu (a Rust extension module).

A :class:`Plan` is an executable graph: slots are registers holding one Python object each,
and nodes are Python callables reading some slots and writing others. The compiler lowers a
workflow to a ``Plan``; ``Plan.run`` executes it with a tight native loop.

Every error the kernel raises on purpose is :class:`namu.errors.KernelError`; an exception
raised by a node's callable propagates out of :meth:`Plan.run` unchanged.
"""

from collections.abc import Callable, Sequence
from typing import Any, Self, final

__all__ = ["Plan"]

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
        nodes: Sequence[tuple[Callable[..., Any], Sequence[int], Sequence[int]]],
        input_slots: Sequence[int],
        output_slots: Sequence[int],
        constants: Sequence[tuple[int, Any]] | None = None,
        priorities: Sequence[int] | None = None,
        error_handlers: Sequence[Callable[[Exception], BaseException] | None] | None = None,
    ) -> Self:
        """Validate a graph and build its run-time arrays.

        Args:
            n_slots: number of slots; slot indices are ``0 .. n_slots - 1``.
            nodes: per node, ``(callable, input_slots, output_slots)``. The callable is
                called with the values of ``input_slots`` as positional arguments; an
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

        Raises:
            namu.errors.KernelError: a slot index is out of range (node inputs may also be
                ``-1``); a slot is written twice; a node input or output slot is never
                written; the nodes form a cycle (the message names the nodes on it);
                ``priorities`` or ``error_handlers`` does not have one entry per node (or
                a handler is not callable); a node's callable is not
                callable; an argument has the wrong shape (e.g. ``n_slots`` negative or
                not an int, a node entry not a 3-tuple).
        """

    def run(self, inputs: Sequence[Any]) -> list[Any]:
        """Run the plan once.

        Args:
            inputs: one value per entry of ``input_slots``, in order.

        Returns:
            The values of ``output_slots``, in order, as a new list.

        Raises:
            namu.errors.KernelError: ``len(inputs) != len(input_slots)``, or a node with
                ``k > 1`` output slots returned something other than a tuple or list of
                ``k`` values.
            Exception: any exception raised by a node's callable, unchanged (same object,
                traceback and ``__cause__``). The run stops at once and releases every
                value it held.
        """

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""

    @property
    def n_slots(self) -> int:
        """Number of slots."""
