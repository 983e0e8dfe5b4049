"""The meaning of every op namu's IR can hold, as Python callables.

Both executors (the native kernel and the reference interpreter) build their node
callables here, so they share one definition of each op and differ only in scheduling.
A node callable takes the node's inputs (then its captured outer values, for control
flow) positionally and returns one value, a tuple for several outputs, or anything for
none.

``namu.Arith`` is Python's arithmetic operator ``operator.<op>`` on whatever numbers it
gets (ints of any size, floats, bools, mixed): the frontend lowers ``/``, ``//``, ``**``
and mixed-type arithmetic to it. Standard ops follow ONNX semantics on Python scalars:
``int64`` ``Div`` truncates, ``Mod`` with ``fmod=0`` floors like Python's ``%``. Python
ints do not overflow where ONNX ``int64`` would wrap; division by zero raises
``ZeroDivisionError`` as in Python.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import onnx_ir as ir

from namu.errors import IRVerificationError, describe_exception
from namu.ir.metadata import SPAN_KEY
from namu.ir.opsets import NAMU_DOMAIN, PARTITION_DOMAIN, WORKFLOW_DOMAIN
from namu.ir.scopes import node_captures
from namu.ir.types import ARITHMETIC_OPS
from namu.runtime.result import SkippedItem, current_run
from namu.runtime.tasks import (
    RETRY_BASE_DELAY_S,
    RETRY_MAX_DELAY_S,
    SkipItem,
    TaskBinding,
    guarded,
    task_node,
)
from namu.runtime.wire import recv_op, send_op

__all__ = [
    "ErrorHandler",
    "GatePolicy",
    "OpEnv",
    "SubgraphRunner",
    "build_node",
    "build_op",
    "constant_of",
    "gate_body",
    "map_flatten",
    "native_op",
    "record_skip",
    "span_note",
    "task_call_site",
]

#: runs a prepared subgraph: (graph inputs + captured values) -> graph outputs.
SubgraphRunner = Callable[[list[Any]], list[Any]]
#: turns the exception a node raised into the exception the run raises.
ErrorHandler = Callable[[Exception], BaseException]


class OpEnv(Protocol):
    """What an op factory needs from the executor building it."""

    tasks: dict[str, TaskBinding]
    functions: dict[str, ir.Function]
    #: build task callables that report to the run's observer
    observed: bool
    #: the model went through insert-resilience-gates: retries, timeouts and fallbacks
    #: run only where a ``namu.Gate`` says (else a task's options apply at every call)
    gated: bool

    def subgraph(self, graph: ir.Graph, captures: Sequence[ir.Value]) -> SubgraphRunner:
        """Prepare ``graph`` to run with ``captures`` appended to its inputs."""

    def function(self, name: str) -> SubgraphRunner:
        """The runner of model function ``name``, prepared on first use and kept."""


_NOT_CONSTANT = object()


def constant_of(node: ir.Node) -> Any:
    """The Python value of a constant node (``Constant``, ``namu.None``), else a sentinel."""
    if node.domain == "" and node.op_type == "Constant":
        tensor = node.attributes["value"].as_tensor()
        array = tensor.numpy()
        if tensor.dtype == ir.DataType.STRING:
            item = array.reshape(-1)[0] if array.ndim else array.item()
            return item.decode("utf-8") if isinstance(item, bytes) else str(item)
        return array.item()
    if node.domain == NAMU_DOMAIN and node.op_type == "None":
        return None
    return _NOT_CONSTANT


def is_constant(value: Any) -> bool:
    return value is not _NOT_CONSTANT


def _trunc_div(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool):
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    return a / b


def _pow(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and b < 0:
        raise ValueError(f"{a} ** {b}: a negative exponent on ints gives a float; use floats")
    return a**b


def _mod(fmod: int) -> Callable[[Any, Any], Any]:
    if fmod:
        import math

        return math.fmod
    return operator.mod


def _cast(to: int) -> Callable[[Any], Any]:
    target = ir.DataType(to)
    if target in (ir.DataType.INT64, ir.DataType.INT32):
        return int
    if target in (ir.DataType.DOUBLE, ir.DataType.FLOAT):
        return float
    if target == ir.DataType.BOOL:
        return bool
    if target == ir.DataType.STRING:
        return str
    raise IRVerificationError(f"Cast to {target} is not supported by namu's runtime")


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "Add": operator.add,
    "Sub": operator.sub,
    "Mul": operator.mul,
    "Div": _trunc_div,
    "Pow": _pow,
    "And": lambda a, b: a and b,
    "Or": lambda a, b: a or b,
    "Equal": operator.eq,
    "Less": operator.lt,
    "LessOrEqual": operator.le,
    "Greater": operator.gt,
    "GreaterOrEqual": operator.ge,
    "StringConcat": operator.add,
    "SequenceAt": lambda seq, i: seq[i],
}
#: ``namu.Arith``'s ``op`` attribute -> Python's operator (``namu.ir.types.ARITHMETIC_OPS``).
_ARITH: dict[str, Callable[..., Any]] = {name: getattr(operator, name) for name in ARITHMETIC_OPS}
#: the ``namu.Arith`` operators the native kernel evaluates itself (through CPython's
#: number protocol: exactly Python's operator).
_NATIVE_ARITH = frozenset({"add", "sub", "mul", "neg"})
_UNARY: dict[str, Callable[[Any], Any]] = {
    "Neg": operator.neg,
    "Not": operator.not_,
    "Identity": lambda x: x,
    "SequenceLength": len,
}
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt,
    "le": operator.le, "gt": operator.gt, "ge": operator.ge,
}
_NAMU_UNARY: dict[str, Callable[[Any], Any]] = {
    "Identity": lambda x: x,
    "Len": len,
    "Truth": bool,
    "ToList": list,
    "IsNone": lambda x: x is None,
}


#: builtin ops the native kernel evaluates itself (``namu._kernel`` native op names);
#: each means exactly what its callable above means.
_NATIVE: dict[tuple[str, str], str] = {
    ("", "Add"): "add",
    ("", "Sub"): "sub",
    ("", "Mul"): "mul",
    ("", "Neg"): "neg",
    ("", "Not"): "not",
    ("", "Identity"): "identity",
    ("", "SequenceLength"): "len",
    ("", "Equal"): "eq",
    ("", "Less"): "lt",
    ("", "LessOrEqual"): "le",
    ("", "Greater"): "gt",
    ("", "GreaterOrEqual"): "ge",
    ("", "StringConcat"): "add",
    ("", "SequenceAt"): "getitem",
    ("", "And"): "and",
    ("", "Or"): "or",
    ("", "SequenceConstruct"): "list",
    (NAMU_DOMAIN, "Identity"): "identity",
    (NAMU_DOMAIN, "Len"): "len",
    (NAMU_DOMAIN, "Truth"): "truth",
    (NAMU_DOMAIN, "List"): "list",
    (NAMU_DOMAIN, "Tuple"): "tuple",
    (NAMU_DOMAIN, "GetItem"): "getitem",
}


def native_op(node: ir.Node) -> str | None:
    """The native kernel's name for ``node``'s op, or None if the kernel calls Python for it."""
    if node.domain == NAMU_DOMAIN and node.op_type == "Compare":
        return node.attributes["op"].as_string()
    if node.domain == NAMU_DOMAIN and node.op_type == "Arith":
        op = node.attributes["op"].as_string()
        return op if op in _NATIVE_ARITH else None
    return _NATIVE.get((node.domain, node.op_type))


def span_note(node: ir.Node) -> ErrorHandler:
    """An error handler adding ``node``'s workflow line to the exception (type unchanged)."""
    note = f"while evaluating {node.op_type} at {node.metadata_props.get(SPAN_KEY, '?')}"

    def add_note(exc: Exception) -> BaseException:
        exc.add_note(note)
        return exc

    return add_note


def _with_span(fn: Callable[..., Any], node: ir.Node) -> Callable[..., Any]:
    """Add the workflow line to errors of builtin ops, keeping the Python exception type."""
    add_note = span_note(node)

    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            add_note(exc)
            raise

    return call


def record_skip(skipped: SkipItem, index: int) -> None:
    """Report fan-out item ``index``, dropped because of ``skipped``, to the current run."""
    state = current_run()
    if state is None:
        return
    cause = skipped.__cause__
    error = describe_exception(cause) if cause is not None else str(skipped)
    state.skipped.append(SkippedItem(skipped.task, skipped.span, index, error))


def build_node(node: ir.Node, env: OpEnv) -> tuple[Callable[..., Any], ErrorHandler | None]:
    """The callable implementing ``node``, and the handler its errors go through (or None).

    An executor calls the callable with the node's inputs; if it raises an ``Exception``
    and there is a handler, the executor raises ``handler(exc)`` instead.

    Raises:
        IRVerificationError: the op is unknown to namu's runtime.
    """
    if node.domain == NAMU_DOMAIN and node.op_type == "Task":
        return task_op(node, env)
    if node.domain == NAMU_DOMAIN and node.op_type == "Gate":
        inner = gate_body(node)
        if inner.domain == NAMU_DOMAIN and inner.op_type == "Task":
            return task_op(node, env)
        fn, handler = build_node(inner, env)
        return GatePolicy(node).guard(fn), handler or span_note(inner)
    return build_op(node, env), None


def build_op(node: ir.Node, env: OpEnv) -> Callable[..., Any]:
    """The callable implementing ``node`` (any op but ``namu.Task``, see :func:`build_node`).

    Raises:
        IRVerificationError: the op is unknown to namu's runtime.
    """
    domain, op = node.domain, node.op_type
    if domain == "":
        if op in _BINARY:
            return _with_span(_BINARY[op], node)
        if op in _UNARY:
            return _with_span(_UNARY[op], node)
        if op == "Mod":
            attr = node.attributes.get("fmod")
            return _with_span(_mod(attr.as_int() if attr is not None else 0), node)
        if op == "Cast":
            return _with_span(_cast(node.attributes["to"].as_int()), node)
        if op == "SequenceConstruct":
            return lambda *items: list(items)
        if op == "SequenceEmpty":
            return list
    if domain == NAMU_DOMAIN:
        if op in _NAMU_UNARY:
            return _with_span(_NAMU_UNARY[op], node)
        if op == "List":
            return lambda *items: list(items)
        if op == "Tuple":
            return lambda *items: items
        if op == "Dict":
            keys = tuple(node.attributes["keys"].as_strings())
            return lambda *values: dict(zip(keys, values))
        if op == "Compare":
            return _COMPARISONS[node.attributes["op"].as_string()]
        if op == "Arith":
            return _with_span(_arith(node), node)
        if op == "GetItem":
            return _with_span(operator.getitem, node)
        if op == "GetAttr":
            return _with_span(operator.attrgetter(node.attributes["name"].as_string()), node)
        if op == "Contains":
            return _with_span(operator.contains, node)
        if op == "Format":
            return _with_span(node.attributes["template"].as_string().format, node)
        if op == "Unpack":
            return _with_span(_unpack(len(node.outputs)), node)
        if op == "Map":
            return _map(node, env)
        if op == "Send":
            return send_op(node)
        if op == "Recv":
            return recv_op(node)
        if op == "Fused":
            return _call_graph(node.attributes["body"].as_graph(), node, env)
    if domain == WORKFLOW_DOMAIN and op in env.functions:  # a kept sub-workflow (inline=False)
        return _call_function(op, node, env)
    if domain == PARTITION_DOMAIN and op in env.functions:  # a partition: the launcher's call
        return _call_graph(env.functions[op].graph, node, env)
    if domain in ("", NAMU_DOMAIN):
        if op == "If":
            return _if(node, env)
        if op == "Loop":
            return _loop(node, env)
    raise IRVerificationError(
        f"{node.metadata_props.get(SPAN_KEY, '?')}: op {domain or 'ai.onnx'}::{op} is not supported by namu's runtime"
    )


def _arith(node: ir.Node) -> Callable[..., Any]:
    """``namu.Arith``'s operator.

    Raises:
        IRVerificationError: the ``op`` attribute names no arithmetic operator.
    """
    op = node.attributes["op"].as_string()
    fn = _ARITH.get(op)
    if fn is None:
        raise IRVerificationError(
            f"{node.metadata_props.get(SPAN_KEY, '?')}: namu.Arith op {op!r} is not one of {', '.join(_ARITH)}"
        )
    return fn


def _single(n_outputs: int) -> Callable[[list[Any]], Any]:
    """Adapt a list of outputs to the node-callable return convention."""
    if n_outputs == 1:
        return lambda outs: outs[0]
    return tuple


def _unpack(n: int) -> Callable[[Any], tuple[Any, ...]]:
    def unpack(value: Any) -> tuple[Any, ...]:
        items = tuple(value)
        if len(items) != n:
            qualifier = "too many" if len(items) > n else "not enough"
            raise ValueError(f"{qualifier} values to unpack (expected {n}, got {len(items)})")
        return items

    return unpack


def task_call_site(node: ir.Node, env: OpEnv) -> tuple[TaskBinding, list[str], str]:
    """A ``namu.Task`` node's (or the task a ``namu.Gate`` guards) task binding, under the
    policy of the call, its keyword-argument names and its call span.

    The policy: a gate's ``retries``, ``timeout_s``, backoff and ``fallback``; for a bare
    task, none of those when the model went through insert-resilience-gates
    (``env.gated``), else the node's ``retries``/``timeout_s`` attributes or, without
    them (models older than expand-defaults), the task's options and ``fallback``. The
    node's ``cache`` attribute, when present, overrides the task's ``cache`` option.

    Raises:
        IRVerificationError: a fallback task is not in the task table.
    """
    gate = None
    if node.op_type == "Gate":
        gate, node = node, gate_body(node)
    kwnames_attr = node.attributes.get("kwnames")
    kwnames = list(kwnames_attr.as_strings()) if kwnames_attr is not None else []
    binding = env.tasks[node.attributes["task"].as_string()]
    return _under_policy(binding, node, gate, env), kwnames, node.metadata_props.get(SPAN_KEY, "")


def gate_body(node: ir.Node) -> ir.Node:
    """The op a ``namu.Gate`` guards: the single node of its ``body`` (which reads the
    body's inputs, the gate's inputs, in order and writes its outputs).

    Raises:
        IRVerificationError: the body does not hold exactly one node.
    """
    nodes = list(node.attributes["body"].as_graph())
    if len(nodes) != 1:
        raise IRVerificationError(
            f"{node.metadata_props.get(SPAN_KEY, '?')}: a namu.Gate body must hold exactly one op, not {len(nodes)}"
        )
    return nodes[0]


def _number(node: ir.Node, name: str, default: float) -> float:
    """A numeric attribute; FLOAT attributes are float32, so round to float32 precision
    (``timeout_s=0.05`` reads back as 0.05, not 0.0500000007)."""
    attr = node.attributes.get(name)
    return default if attr is None else float(f"{float(attr.value):.7g}")


class GatePolicy:
    """The policy a ``namu.Gate`` node carries (see insert-resilience-gates).

    Attributes:
        retries: retries after a failing call.
        timeout_s: the limit of one attempt in seconds, or None (attribute 0: no limit).
        backoff_base_s, backoff_max_s: the retry backoff (``retry_delay_s``).
        fallback: the task-table key of the fallback task, or "".
    """

    def __init__(self, gate: ir.Node) -> None:
        self.retries = int(_number(gate, "retries", 0))
        self.timeout_s = _number(gate, "timeout_s", 0.0) or None
        self.backoff_base_s = _number(gate, "backoff_base_s", RETRY_BASE_DELAY_S)
        self.backoff_max_s = _number(gate, "backoff_max_s", RETRY_MAX_DELAY_S)
        fallback = gate.attributes.get("fallback")
        self.fallback = fallback.as_string() if fallback is not None else ""

    def guard(self, fn: Callable[..., Any], is_async: bool = False) -> Callable[..., Any]:
        """``fn`` (an op other than a task) retried and timed as the gate says."""
        return guarded(
            fn,
            retries=self.retries,
            timeout_s=self.timeout_s,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
            is_async=is_async,
        )


def _fallback_binding(env: OpEnv, key: str | None, node: ir.Node) -> TaskBinding | None:
    if not key:
        return None
    try:
        return env.tasks[key]
    except KeyError:
        raise IRVerificationError(
            f"{node.metadata_props.get(SPAN_KEY, '?')}: fallback task {key!r} is not in the task table"
        ) from None


def _under_policy(binding: TaskBinding, node: ir.Node, gate: ir.Node | None, env: OpEnv) -> TaskBinding:
    """``binding`` with the policy of the call ``node`` (see :func:`task_call_site`);
    ``binding`` itself when that is its own options, so plain calls stay direct."""
    opts = binding.options
    cache_attr = node.attributes.get("cache")
    cache = bool(cache_attr.as_int()) if cache_attr is not None else opts.cache
    if gate is not None:
        policy = GatePolicy(gate)
        return binding.with_policy(
            retries=policy.retries,
            timeout_s=policy.timeout_s,
            cache=cache,
            backoff_base_s=policy.backoff_base_s,
            backoff_max_s=policy.backoff_max_s,
            fallback=_fallback_binding(env, policy.fallback, gate),
        )
    if env.gated:
        retries, timeout_s, fallback = 0, None, None
    else:
        retries = int(_number(node, "retries", opts.retries))
        timeout_s = (_number(node, "timeout_s", 0.0) or None) if "timeout_s" in node.attributes else opts.timeout_s
        fallback = _fallback_binding(env, opts.fallback, node)
    if retries == opts.retries and timeout_s == opts.timeout_s and cache == opts.cache and fallback is None:
        return binding
    return binding.with_policy(retries=retries, timeout_s=timeout_s, cache=cache, fallback=fallback)


def map_flatten(node: ir.Node) -> bool:
    """Whether a ``namu.Map`` node concatenates its items' results (else lists them)."""
    flatten_attr = node.attributes.get("flatten")
    return bool(flatten_attr.as_int()) if flatten_attr is not None else False


def task_op(node: ir.Node, env: OpEnv) -> tuple[Callable[..., Any], ErrorHandler | None]:
    """A ``namu.Task`` node: its callable and the handler turning its errors into TaskError."""
    binding, kwnames, span = task_call_site(node, env)
    return task_node(binding, kwnames, span, observed=env.observed)


def _call_graph(graph: ir.Graph, node: ir.Node, env: OpEnv) -> Callable[..., Any]:
    """Run ``graph`` with the node's inputs as its inputs: a sub-workflow call, or a
    ``namu.Fused`` node (its body's task calls in order, each with its own error handler)."""
    body = env.subgraph(graph, [])
    adapt = _single(len(node.outputs))
    return lambda *args: adapt(body(list(args)))


def _call_function(name: str, node: ir.Node, env: OpEnv) -> Callable[..., Any]:
    """Call model function ``name`` (a sub-workflow kept as a function). Its runner comes
    from ``env.function`` when the call first runs, prepared once per executor: preparing
    never recurses down a chain of calls (a chain of 300 functions prepares like one),
    and a function called from many places is prepared once."""
    adapt = _single(len(node.outputs))
    runner: SubgraphRunner | None = None

    def call(*args: Any) -> Any:
        nonlocal runner
        if runner is None:
            runner = env.function(name)
        return adapt(runner(list(args)))

    return call


def _if(node: ir.Node, env: OpEnv) -> Callable[..., Any]:
    caps = node_captures(node)
    then_run = env.subgraph(node.attributes["then_branch"].as_graph(), caps)
    else_run = env.subgraph(node.attributes["else_branch"].as_graph(), caps)
    adapt = _single(len(node.outputs))

    def if_(cond: Any, *captured: Any) -> Any:
        return adapt((then_run if cond else else_run)(list(captured)))

    return if_


def _loop(node: ir.Node, env: OpEnv) -> Callable[..., Any]:
    caps = node_captures(node)
    body = env.subgraph(node.attributes["body"].as_graph(), caps)
    n_carried = len(node.inputs) - 2
    adapt = _single(len(node.outputs))

    def loop(trip_count: Any, cond: Any, *rest: Any) -> Any:
        carried = list(rest[:n_carried])
        captured = list(rest[n_carried:])
        i = 0
        while (trip_count is None or i < trip_count) and (cond is None or cond):
            outs = body([i, cond, *carried, *captured])
            cond = outs[0]
            carried = outs[1 : 1 + n_carried]
            i += 1
        return adapt(carried)

    return loop


def _map(node: ir.Node, env: OpEnv) -> Callable[..., Any]:
    caps = node_captures(node)
    body = env.subgraph(node.attributes["body"].as_graph(), caps)
    flatten = map_flatten(node)
    has_output = bool(node.outputs)

    def map_(seq: Any, *captured: Any) -> Any:
        items = list(seq)
        state = current_run()
        observer = state.observer if state is not None else None
        if observer is not None:
            observer.on_fanout(len(items))
        caps_list = list(captured)
        gathered: list[Any] = []
        for index, item in enumerate(items):
            outs: list[Any] | None
            try:
                outs = body([item, *caps_list])
            except SkipItem as skipped:
                outs = None
                record_skip(skipped, index)
            if observer is not None:
                observer.on_item_done()
            if outs is not None and has_output:
                if flatten:
                    gathered.extend(outs[0])
                else:
                    gathered.append(outs[0])
        return gathered if has_output else None

    return map_
