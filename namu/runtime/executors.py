"""The two executors of a graph: the native kernel and the pure-Python reference.

Both prepare a graph once into a runner ``run(inputs + captured) -> outputs`` and build
node callables from the op registry (:func:`namu.runtime.ops.build_node`), so they share
every op's meaning.
They differ only in scheduling:

* :class:`KernelExecutor` compiles the graph, with every body nested in it, into
  ``namu._kernel.Plan`` objects (slots, dependency counts, a priority ready queue,
  liveness); Rust runs the control flow and builtin ops and drives the task calls;
* :class:`ReferenceExecutor` walks the nodes in their stored (topological) order with a
  dict of values. It is the semantic oracle the kernel is tested against.

Both run a ``namu.Gate`` as the op it guards under the gate's policy (retries, timeout,
backoff, fallback), drop every value right after its last use (the reference from the
``namu.free`` lists plan-lifetimes stamps, the kernel from its own use counts), and the
kernel orders its ready queue by the ``namu.priority`` of assign-priorities where that
can matter (see :meth:`KernelExecutor.plan`).
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable, Sequence
from typing import Any

import onnx_ir as ir

from namu.ir.constants import constant_of, is_constant
from namu.ir.lifetimes import freed_names, last_uses
from namu.ir.metadata import CAPABILITY_GATED, FREE_KEY, PRIORITY_KEY, Passport
from namu.ir.opsets import NAMU_DOMAIN, WORKFLOW_DOMAIN
from namu.ir.scopes import callees_first, captures, node_captures, subgraphs
from namu.ops.control import RECURSION_LIMIT, called_function, map_flatten, record_skip
from namu.ops.registry import ErrorHandler, SubgraphRunner
from namu.ops.registry import definition as op_definition
from namu.ops.spans import span_note
from namu.runtime.async_bridge import async_driver
from namu.runtime.executor_registry import register_executor
from namu.runtime.ops import (
    GatePolicy,
    build_node,
    gate_body,
    task_call_site,
)
from namu.runtime.options import DEFAULT_MAX_CONCURRENCY, DEFAULT_RECURSION_LIMIT
from namu.runtime.result import current_run
from namu.runtime.tasks import SkipItem, TaskBinding, task_coroutine_fn, task_node

__all__ = ["Executor", "KernelExecutor", "ReferenceExecutor"]


class Executor:
    """Base: prepares graphs (and their subgraphs) into runners.

    Args:
        tasks: the task bindings by task-table key.
        functions: the model's sub-workflow functions by name.
        events: the events the run's hooks override (:func:`namu.runtime.hooks.needs`):
            the callables built report those, and only those.
        task_mode: how synchronous tasks without their own ``mode`` run on the kernel:
            ``"inline"`` or ``"thread"``.
        passport: the artifact's compile passport. When it provides the ``gated``
            capability (insert-resilience-gates ran), a task's retries, timeout and
            fallback apply only where a ``namu.Gate`` guards the call; without it (older
            artifacts, hand-built models) every call applies its task's options, as
            before gates existed.

    Raises:
        ValueError: ``task_mode`` is neither.
    """

    name = "?"

    def __init__(
        self,
        tasks: dict[str, TaskBinding],
        functions: dict[str, ir.Function] | None = None,
        *,
        events: frozenset[str] = frozenset(),
        task_mode: str = "inline",
        passport: Passport | None = None,
    ) -> None:
        if task_mode not in ("inline", "thread"):
            raise ValueError(f"task_mode must be 'inline' or 'thread', got {task_mode!r}")
        self.tasks = tasks
        self.functions = functions or {}
        #: the events the run's hooks override (``namu.runtime.hooks.needs``): task and
        #: fan-out callables report those, and only those
        self.events = events
        #: how sync tasks run on the kernel (the reference runs everything in order)
        self.task_mode = task_mode
        #: policies come from gates only (see :func:`namu.runtime.ops.task_call_site`)
        self.gated = passport is not None and passport.provides(CAPABILITY_GATED)
        self._function_runners: dict[str, SubgraphRunner] = {}

    def subgraph(self, graph: ir.Graph, captures: Sequence[ir.Value]) -> SubgraphRunner:
        return self.prepare(graph, captures)

    def function(self, name: str) -> SubgraphRunner:
        runner = self._function_runners.get(name)
        if runner is None:
            runner = self._function_runners[name] = self.prepare(self.functions[name].graph)
        return runner

    def prepare(self, graph: ir.Graph, captures: Sequence[ir.Value] = ()) -> SubgraphRunner:
        raise NotImplementedError


@register_executor("reference")
class ReferenceExecutor(Executor):
    """Evaluate nodes one by one in their stored order; values live in a dict, and each
    leaves it right after its last use (:func:`free_lists`)."""

    name = "reference"

    def prepare(self, graph: ir.Graph, captures: Sequence[ir.Value] = ()) -> SubgraphRunner:
        params = [*graph.inputs, *captures]
        Step = tuple[
            Callable[..., Any] | None, ErrorHandler | None, Any, list[ir.Value | None], list[ir.Value], list[int]
        ]
        steps: list[Step] = []
        for node, free in zip(graph, free_lists(graph, params)):
            drop = [id(v) for v in free]
            const = constant_of(node)
            if is_constant(const):
                steps.append((None, None, const, [], list(node.outputs), drop))
                continue
            inputs = [*node.inputs, *node_captures(node)]
            fn, handler = build_node(node, self)
            steps.append((fn, handler, None, inputs, list(node.outputs), drop))
        outputs = list(graph.outputs)

        def run(values: list[Any], recursion_limit: int | None = None, **_options: Any) -> list[Any]:
            if recursion_limit is not None:
                token = RECURSION_LIMIT.set(recursion_limit)
                try:
                    return run(values)
                finally:
                    RECURSION_LIMIT.reset(token)
            env: dict[int, Any] = {id(p): v for p, v in zip(params, values)}
            for fn, handler, const, inputs, outs, drop in steps:
                if fn is None:
                    env[id(outs[0])] = const
                else:
                    try:
                        result = fn(*[None if v is None else env[id(v)] for v in inputs])
                    except Exception as exc:
                        if handler is None:
                            raise
                        raise handler(exc) from exc
                    if len(outs) == 1:
                        env[id(outs[0])] = result
                    elif outs:
                        if len(result) != len(outs):
                            raise ValueError(f"op returned {len(result)} values, expected {len(outs)}")
                        for o, r in zip(outs, result):
                            env[id(o)] = r
                    del result
                for key in drop:
                    env.pop(key, None)
            return [env[id(o)] for o in outputs]

        return run


def free_lists(graph: ir.Graph, params: Sequence[ir.Value]) -> list[Sequence[ir.Value]]:
    """Per node of ``graph``, in order, the values whose last use it is (never an output).

    The ``namu.free`` lists plan-lifetimes stamped, when the graph has them; else the
    same analysis run here (:func:`namu.ir.lifetimes.last_uses`).

    Args:
        graph: the graph.
        params: the values the graph's runner receives: its inputs, then the outer values
            it reads (stamped names are resolved among these and the nodes' outputs).
    """
    nodes = list(graph)
    if not any(FREE_KEY in node.metadata_props for node in nodes):
        return last_uses(graph)
    by_name = {v.name: v for v in params}
    by_name.update((v.name, v) for node in nodes for v in node.outputs)
    lists: list[Sequence[ir.Value]] = []
    for node in nodes:
        names = freed_names(node)
        lists.append([by_name[name] for name in names if name in by_name])
    return lists


@register_executor("kernel")
class KernelExecutor(Executor):
    """Compile a graph and every body nested in it into native ``Plan`` objects.

    Control flow (``If``, ``Loop``, ``namu.Map``, function calls) and namu's builtin ops
    (arithmetic, comparison, item access, tuple and list construction) run inside the
    kernel; task calls are handed to it as Python callables with a mode (inline, thread
    or async). A body reads the values it captures from a copy-on-write context the
    enclosing frame sets once per node; each captured value gets one context key.

    Args:
        task_mode: how synchronous tasks without their own ``mode`` run: ``"inline"`` or
            ``"thread"``.
    """

    name = "kernel"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keys: dict[int, int] = {}
        self._function_ops: dict[str, Any] = {}
        self._receiving: dict[int, bool] = {}

    def prepare(self, graph: ir.Graph, captures: Sequence[ir.Value] = ()) -> SubgraphRunner:
        self._plan_functions()
        plan = self.plan(graph, [*graph.inputs, *captures], ())
        if not plan.concurrent:
            return plan.run

        def run(
            values: list[Any],
            *,
            max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
            workers: int | None = None,
            recursion_limit: int = DEFAULT_RECURSION_LIMIT,
        ) -> list[Any]:
            context = contextvars.copy_context()
            with async_driver(context) as driver:
                return plan.run(
                    values,
                    driver=driver,
                    max_concurrency=max_concurrency,
                    workers=workers,
                    contextvars=context,
                    on_stop=_announce_stop,
                    recursion_limit=recursion_limit,
                )

        return run

    def _plan_functions(self) -> None:
        """Plan the kept sub-workflows (``inline=False``, recursive ones), callees first: a
        call finds its callee's ``Function`` ready, so a chain of calls of any depth plans
        without recursing. A call on a cycle (recursion) finds it not planned yet and
        declares it (:meth:`_function`); it is defined when its body's plan is made."""
        if self._function_ops:
            return
        kept = {f.identifier(): f for f in self.functions.values() if f.domain == WORKFLOW_DOMAIN}
        for function in callees_first(kept):
            plan = self._body(function.graph)
            declared = self._function_ops.get(function.name)
            if declared is None:
                from namu._kernel import Function

                self._function_ops[function.name] = Function(plan)
            else:
                declared.define(plan)

    def _key(self, value: ir.Value) -> int:
        key = self._keys.get(id(value))
        if key is None:
            key = self._keys[id(value)] = len(self._keys)
        return key

    def plan(self, graph: ir.Graph, inputs: Sequence[ir.Value], outer: Sequence[ir.Value]) -> Any:
        """The native ``Plan`` of ``graph``: ``inputs`` are its run inputs, ``outer`` the
        values it reads from the enclosing context.

        The plan's ready queue uses the nodes' ``namu.priority`` (assign-priorities'
        critical-path ranks, ``plan.prioritized``) only when the plan can overlap work
        and holds no ``namu.Recv`` (here or in a body). The kernel checks the first
        (``plan.concurrent``: thread- or async-mode calls, here or in a body): an inline
        plan runs one node at a time, so no order finishes sooner, and it keeps source
        order (the kernel breaks ties by program order), so side effects happen in
        program order. This method withholds the ranks of a graph with a receive: a
        blocking receive must keep source order too, or it could wait for a send that a
        reordering put after it.
        """
        from namu._kernel import Plan

        slots: dict[int, int] = {}

        def slot(value: ir.Value) -> int:
            index = slots.get(id(value))
            if index is None:
                index = slots[id(value)] = len(slots)
            return index

        input_slots = [slot(v) for v in inputs]
        outer_slots = [(slot(v), self._key(v)) for v in outer]
        nodes: list[tuple[Any, list[int], list[int]]] = []
        handlers: list[ErrorHandler | None] = []
        priorities: list[int] = []
        constants: list[tuple[int, Any]] = []
        for node in graph:
            const = constant_of(node)
            if is_constant(const):
                constants.append((slot(node.outputs[0]), const))
                continue
            caps = node_captures(node)
            in_slots = [-1 if v is None else slot(v) for v in node.inputs]
            in_slots += [slot(v) for v in caps]
            out_slots = [slot(v) for v in node.outputs]
            op, handler = self._op(node, caps)
            nodes.append((op, in_slots, out_slots))
            handlers.append(handler)
            priorities.append(int(node.metadata_props.get(PRIORITY_KEY, "0")))
        output_slots = [slot(v) for v in graph.outputs]
        ranked = any(priorities) and not self._receives(graph)
        return Plan(
            len(slots),
            nodes,
            input_slots,
            output_slots,
            constants,
            priorities=priorities if ranked else None,
            error_handlers=handlers,
            outer=outer_slots,
        )

    def _body(self, graph: ir.Graph) -> Any:
        return self.plan(graph, list(graph.inputs), captures(graph))

    def _receives(self, graph: ir.Graph) -> bool:
        """Whether a ``namu.Recv`` is anywhere in ``graph`` (bodies and gates included).
        Memoised per graph: bodies are planned before the graph holding them, so planning
        a nest of bodies reads each node once."""
        found = self._receiving.get(id(graph))
        if found is None:
            found = self._receiving[id(graph)] = any(
                (node.op_type == "Recv" and node.domain == NAMU_DOMAIN) or any(map(self._receives, subgraphs(node)))
                for node in graph
            )
        return found

    def _op(self, node: ir.Node, caps: list[ir.Value]) -> tuple[Any, ErrorHandler | None]:
        """The kernel's op for ``node`` (a callable or a ``namu._kernel`` op descriptor) and
        its error handler, as the op's registry definition says: a native op, an awaited
        call, the kernel's own lowering of an op with bodies (:data:`_LOWERINGS`), else
        the op's Python callable."""
        from namu._kernel import Call, Native

        definition = op_definition(node)
        native = definition.native_name(node)
        if native is not None:
            return Native(native), span_note(node)
        if definition.awaited is not None:
            return Call(definition.awaited(node, self), "async"), None
        if definition.kernel:
            return _LOWERINGS[definition.kernel](self, node, [self._key(v) for v in caps])
        return definition.build(node, self)

    def _if(self, node: ir.Node, keys: list[int]) -> tuple[Any, ErrorHandler | None]:
        from namu._kernel import If

        then_plan = self._body(node.attributes["then_branch"].as_graph())
        else_plan = self._body(node.attributes["else_branch"].as_graph())
        return If(then_plan, else_plan, keys), None

    def _loop(self, node: ir.Node, keys: list[int]) -> tuple[Any, ErrorHandler | None]:
        from namu._kernel import Loop

        return Loop(self._body(node.attributes["body"].as_graph()), len(node.inputs) - 2, keys), None

    def _try(self, node: ir.Node, keys: list[int]) -> tuple[Any, ErrorHandler | None]:
        from namu._kernel import Try

        body = self._body(node.attributes["body"].as_graph())
        handler = self._body(node.attributes["handler"].as_graph())
        return Try(body, handler, keys), None

    def _function(self, node: ir.Node, keys: list[int]) -> tuple[Any, ErrorHandler | None]:
        from namu._kernel import Function

        name = called_function(node)
        if name not in self.functions:
            return build_node(node, self)  # raises: no such function
        op = self._function_ops.get(name)
        if op is None:
            graph = self.functions[name].graph
            op = self._function_ops[name] = Function.declare(len(graph.inputs), len(graph.outputs))
        return op, None

    def _task(self, node: ir.Node, keys: list[int]) -> tuple[Any, ErrorHandler | None]:
        from namu._kernel import Call

        binding, kwnames, span = task_call_site(node, self)
        if binding.awaited:
            return Call(task_coroutine_fn(binding, kwnames, span, events=self.events), "async"), None
        fn, handler = task_node(binding, kwnames, span, events=self.events)
        mode = binding.options.mode or self.task_mode
        if mode == "inline":
            return fn, handler
        return Call(fn, "thread"), handler

    def _fused(self, node: ir.Node, keys: list[int]) -> tuple[Any, ErrorHandler | None]:
        """A ``namu.Fused`` node: one ``Seq`` op calling its body's ops one after another,
        each step with its own error handler (so an error names its task). A body with a
        step that is not an inline call or a native op (``task_mode="thread"`` runs tasks
        on the pool) runs as a ``Function`` plan instead, each op as if unfused."""
        from namu._kernel import Function, Native, Seq, SeqStep

        body = node.attributes["body"].as_graph()
        values = {id(v): i for i, v in enumerate(body.inputs)}
        steps: list[SeqStep] = []
        for inner in body:
            op, handler = self._op(inner, [])
            inline = callable(op) or isinstance(op, Native)
            if not inline or len(inner.outputs) != 1 or any(v is None or id(v) not in values for v in inner.inputs):
                return Function(self._body(body)), None
            steps.append(SeqStep(op, [values[id(v)] for v in inner.inputs], handler))
            values[id(inner.outputs[0])] = len(values)
        if not steps or [values.get(id(v)) for v in body.outputs] != [len(values) - 1]:
            return Function(self._body(body)), None
        return Seq(steps), None

    def _gate(self, node: ir.Node, keys: list[int]) -> tuple[Any, ErrorHandler | None]:
        """A ``namu.Gate``: the task it guards, called in its mode with the gate's policy;
        any other op (a ``namu.Recv``) as that op would run, under the gate's policy."""
        from namu._kernel import Call

        inner = gate_body(node)
        if inner.domain == NAMU_DOMAIN and inner.op_type == "Task":
            return self._task(node, keys)
        policy = GatePolicy(node)
        op, handler = self._op(inner, [])
        if isinstance(op, Call):
            return Call(policy.guard(op.fn, is_async=op.mode == "async"), op.mode), handler or span_note(inner)
        if not callable(op):  # native or control flow: its Python meaning
            op, handler = build_node(inner, self)
        return policy.guard(op), handler or span_note(inner)

    def _map(self, node: ir.Node, keys: list[int]) -> tuple[Any, ErrorHandler | None]:
        from namu._kernel import Map

        body = self._body(node.attributes["body"].as_graph())
        on_start = _fanout_started if "fanout" in self.events else None
        on_item_done = _item_done if "item_done" in self.events else None
        return Map(
            body,
            keys,
            flatten=map_flatten(node),
            on_item_error=_item_error,
            on_start=on_start,
            on_item_done=on_item_done,
        ), None


#: the kernel's own lowerings of ops with bodies, by ``OpDef.kernel``
_LOWERINGS: dict[str, Callable[[KernelExecutor, ir.Node, list[int]], tuple[Any, ErrorHandler | None]]] = {
    "task": KernelExecutor._task,
    "gate": KernelExecutor._gate,
    "map": KernelExecutor._map,
    "fused": KernelExecutor._fused,
    "if": KernelExecutor._if,
    "loop": KernelExecutor._loop,
    "try": KernelExecutor._try,
    "function": KernelExecutor._function,
}


def _announce_stop(running: int) -> None:
    """An interrupted run waits for ``running`` thread-mode calls (Python cannot stop them)."""
    state = current_run()
    calls, them = ("call", "it") if running == 1 else ("calls", "them")
    message = f"stopping: waiting for {running} running task {calls} to return (Ctrl+C again to abandon {them})"
    if state is not None and state.hooks is not None and "stopping" in state.events:
        state.hooks.on_stopping(message)
        return
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):  # stderr closed or gone: nothing to tell
        pass


def _item_error(exc: BaseException, index: int) -> BaseException | None:
    """A fan-out item failed: drop it if an ``on_error="skip"`` task failed, else raise."""
    if isinstance(exc, SkipItem):
        record_skip(exc, index)
        return None
    return exc


def _fanout_started(n_items: int) -> None:
    state = current_run()
    if state is not None and state.hooks is not None:
        state.hooks.on_fanout(n_items)


def _item_done() -> None:
    state = current_run()
    if state is not None and state.hooks is not None:
        state.hooks.on_item_done()
