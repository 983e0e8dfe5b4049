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
from typing import Any, Literal, Self, final

__all__ = [
    "NATIVE_OPS",
    "Call",
    "Context",
    "Function",
    "If",
    "Loop",
    "Map",
    "Native",
    "Plan",
    "Seq",
    "SeqStep",
    "Sink",
    "Try",
    "__version__",
]

#: the crate's version (``kernel/Cargo.toml``).
__version__: str
#: the names :class:`Native` accepts, one per builtin op the kernel evaluates itself:
#: ``add sub mul neg not truth identity len getitem and or eq ne lt le gt ge list tuple``,
#: each meaning exactly what Python's operator means.
NATIVE_OPS: tuple[str, ...]

# --- the plan protocol: what crosses into Rust ---------------------------------------------
#
# A node's op is a callable (an inline call) or one of the frozen descriptors below. Each
# checks its own arguments when it is made: a bad one raises namu.errors.KernelError naming
# the class and argument (``Map.on_start: expected a callable or None, got 'int'``); a
# missing or unknown argument is a TypeError. :class:`Plan` then checks each against its
# node: input and output counts, body signatures, the values a Seq step reads. ``keys``
# are the context keys of a node's captured inputs (the inputs after the op's own): the
# node sets them in a fork of its frame's context, where its bodies' ``outer`` slots read
# them.

@final
class Call:
    """The node calls ``fn`` with its inputs as positional arguments.

    Args:
        fn: the callable.
        mode: ``"inline"`` (in the run loop), ``"thread"`` (on the run's work-stealing
            worker pool; for calls that release the interpreter lock) or ``"async"``
            (``fn`` returns an awaitable, which the run's driver awaits; at most
            ``max_concurrency`` at once). A bare callable as an op is ``Call(fn)``.

    Raises:
        namu.errors.KernelError: ``fn`` is not callable, or ``mode`` is not one of the three.
    """

    def __new__(cls, fn: Callable[..., Any], mode: Literal["inline", "thread", "async"] = "inline") -> Self: ...
    @property
    def fn(self) -> Callable[..., Any]: ...
    @property
    def mode(self) -> Literal["inline", "thread", "async"]: ...

@final
class Native:
    """The node evaluates a builtin op through CPython's C API, without a Python-level call.

    The op takes one input (``neg not truth identity len``), two (``add sub mul getitem
    and or eq ne lt le gt ge``; ``and``/``or`` pick an operand as Python's do) or any number
    (``list tuple``), and has one output. Descriptors with the same name are equal.

    Args:
        name: one of :data:`NATIVE_OPS`.

    Raises:
        namu.errors.KernelError: ``name`` is not a native op.
    """

    def __new__(cls, name: str) -> Self: ...
    @property
    def name(self) -> str: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Map:
    """Fan-out: the node's inputs are a sequence (any iterable), then one captured value per
    key; ``body`` (one input, the item) runs once per item, each in its own forked context.
    The node has at most one output: the list of the items' first outputs, in item order.
    Items start lazily: one at a time when ``body`` is all inline, else up to
    ``max_concurrency``.

    Args:
        body: the item's plan.
        keys: the context key of each captured input.
        flatten: concatenate the items' results instead of listing them.
        on_item_error: ``on_item_error(exc, index)`` when an item fails with an
            ``Exception``: returns None to drop the item, or the exception the node fails
            with. Without it, an item's error fails the node.
        on_start: ``on_start(n_items)``, called when the fan-out starts.
        on_item_done: ``on_item_done()``, called when an item finishes or is dropped.

    Raises:
        namu.errors.KernelError: ``body`` is not a Plan, a key is not an int,
            ``flatten`` is not a bool, or a hook is neither callable nor None.
    """

    def __new__(
        cls,
        body: Plan,
        keys: Sequence[int] = (),
        flatten: bool = False,
        on_item_error: Callable[[BaseException, int], BaseException | None] | None = None,
        on_start: Callable[[int], object] | None = None,
        on_item_done: Callable[[], object] | None = None,
    ) -> Self: ...
    @property
    def body(self) -> Plan: ...
    @property
    def keys(self) -> tuple[int, ...]: ...
    @property
    def flatten(self) -> bool: ...
    @property
    def on_item_error(self) -> Callable[[BaseException, int], BaseException | None] | None: ...
    @property
    def on_start(self) -> Callable[[int], object] | None: ...
    @property
    def on_item_done(self) -> Callable[[], object] | None: ...

@final
class If:
    """The node's inputs are the condition, then one captured value per key; it runs
    ``then_branch`` if the condition is truthy, else ``else_branch``. Both branches take no
    inputs and have one output per node output.

    Raises:
        namu.errors.KernelError: a branch is not a Plan, or a key is not an int.
    """

    def __new__(cls, then_branch: Plan, else_branch: Plan, keys: Sequence[int] = ()) -> Self: ...
    @property
    def then_branch(self) -> Plan: ...
    @property
    def else_branch(self) -> Plan: ...
    @property
    def keys(self) -> tuple[int, ...]: ...

@final
class Loop:
    """ONNX ``Loop``: the node's inputs are the trip count (or None), the condition (or
    None), ``n_carried`` loop-carried values, then one captured value per key; its outputs
    are the final carried values. ``body`` takes ``(iteration, condition, carried...)`` and
    returns ``(condition, carried...)``; it runs while the iteration is below the trip count
    and the condition is truthy (a None bound is no bound).

    Raises:
        namu.errors.KernelError: ``body`` is not a Plan, ``n_carried`` is not a
            non-negative int, or a key is not an int.
    """

    def __new__(cls, body: Plan, n_carried: int, keys: Sequence[int] = ()) -> Self: ...
    @property
    def body(self) -> Plan: ...
    @property
    def n_carried(self) -> int: ...
    @property
    def keys(self) -> tuple[int, ...]: ...

@final
class Function:
    """A function call: the node's inputs are ``body``'s inputs and its outputs ``body``'s
    outputs; the body reads its outer values from the caller's context.

    A function on a cycle of calls (recursion) is made with :meth:`declare` before the
    plans of the cycle exist, and given its body once with :meth:`define`. A run raises
    ``RecursionError`` when calls nest deeper than its ``recursion_limit``.

    Raises:
        namu.errors.KernelError: ``body`` is not a Plan.
    """

    def __new__(cls, body: Plan) -> Self: ...
    @staticmethod
    def declare(n_inputs: int, n_outputs: int) -> Function:
        """A function whose body, with these input and output counts, comes later."""
    def define(self, body: Plan) -> None:
        """Give a declared function its body.

        Raises:
            namu.errors.KernelError: it already has one, or ``body``'s input and output
                counts are not the declared ones.
        """
    @property
    def body(self) -> Plan | None: ...

@final
class Try:
    """A catch region: the node's inputs are one captured value per key; it runs ``body``
    (no inputs, one output per node output). If the body raises an ``Exception``, its
    other frames are stopped and ``handler`` runs on the exception (one input, one output
    per node output). The outputs of whichever finished are the node's.

    Raises:
        namu.errors.KernelError: ``body`` or ``handler`` is not a Plan, or a key is not an int.
    """

    def __new__(cls, body: Plan, handler: Plan, keys: Sequence[int] = ()) -> Self: ...
    @property
    def body(self) -> Plan: ...
    @property
    def handler(self) -> Plan: ...
    @property
    def keys(self) -> tuple[int, ...]: ...

@final
class SeqStep:
    """One step of a :class:`Seq`.

    Args:
        op: a callable (called through vectorcall) or a :class:`Native`.
        args: indices into the node's *values*: its inputs ``0 .. n_inputs - 1``, then the
            result of step ``j`` at ``n_inputs + j``; a step reads only values defined
            before it (checked by :class:`Plan`).
        error_handler: when the step raises an ``Exception``, ``error_handler(exc)``
            (else the node's ``error_handlers`` entry) makes the exception the run raises,
            and no later step runs.

    Raises:
        namu.errors.KernelError: ``op`` is neither callable nor a Native, an index is not
            a non-negative int, or ``error_handler`` is neither callable nor None.
    """

    def __new__(
        cls,
        op: Callable[..., Any] | Native,
        args: Sequence[int] = (),
        error_handler: Callable[[Exception], BaseException] | None = None,
    ) -> Self: ...
    @property
    def op(self) -> Callable[..., Any] | Native: ...
    @property
    def args(self) -> tuple[int, ...]: ...
    @property
    def error_handler(self) -> Callable[[Exception], BaseException] | None: ...

@final
class Seq:
    """A fused chain (``namu.Fused``) run as one node: the steps run one after another right
    in the run loop (calls through vectorcall, no ready-queue traffic in between); each
    value is released after its last reader ran; the last step's result is the node's
    result (spread over its output slots as a call's is).

    Raises:
        namu.errors.KernelError: ``steps`` is empty or holds something other than a
            :class:`SeqStep`.
    """

    def __new__(cls, steps: Sequence[SeqStep]) -> Self: ...
    @property
    def steps(self) -> tuple[SeqStep, ...]: ...

#: a node's op.
Op = Callable[..., Any] | Call | Native | Map | If | Loop | Function | Try | Seq

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
            nodes: per node, ``(op, input_slots, output_slots)`` (see :data:`Op`). An op
                is a callable or a descriptor (:class:`Call`, :class:`Native`, ...). A
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
            priorities: one int per node; higher runs first among ready nodes of a
                :attr:`concurrent` plan (an inline plan runs one node at a time, so no
                order finishes sooner: it keeps program order). Default: all ``0``.
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
                a handler is not callable); a node's op is neither callable nor a
                descriptor; an argument has the wrong shape (e.g. ``n_slots`` negative or
                not an int, a node entry not a 3-tuple); an op does not fit its node (input
                or output counts, body signatures), or a :class:`Seq` step reads a value
                not defined before it.
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
        on_stop: Callable[[int], object] | None = None,
        recursion_limit: int = 1000,
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
            on_stop: ``on_stop(running)`` is called once when an interrupted run starts
                waiting for ``running`` thread-mode calls, which cannot be stopped (a
                second interrupt abandons them).
            recursion_limit: most :class:`Function` calls nested in one another
                (default 1000, Python's own); a deeper call raises ``RecursionError``.
                Nesting costs heap frames, not the thread's stack.

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

    @property
    def prioritized(self) -> bool:
        """Whether the ready queue orders the nodes by ``priorities``: some priority is
        non-zero and the plan is :attr:`concurrent`."""
