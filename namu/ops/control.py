"""Control-flow ops: ``If``, ``Loop``, ``namu.Map``, ``namu.Try``, ``namu.Fused`` and function calls.

Each runs subgraphs. The Python implementations here are what the reference executor
runs; the kernel runs the same ops natively, from plans of their bodies (see
:class:`namu.runtime.executors.KernelExecutor`). A body reads the values it captures
from the enclosing scope as extra inputs after its own (``namu.ir.scopes.node_captures``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import onnx_ir as ir

from namu.ir.opsets import NAMU_DOMAIN, ONNX_DOMAIN, PARTITION_DOMAIN, WORKFLOW_DOMAIN
from namu.ir.scopes import node_captures, subgraphs
from namu.ir.types import ValueType, accepts, is_unknown, item_type, join
from namu.ops.registry import (
    ANY_OP,
    Built,
    OpEnv,
    SubgraphRunner,
    Typer,
    op,
    unsupported,
)

__all__ = ["CALL_DEPTH", "RECURSION_LIMIT", "called_function", "map_flatten", "record_skip", "single_result", "sweep_bodies"]

#: how many sub-workflow calls the running Python code is nested in (the reference
#: executor's count; the kernel counts its frames itself)
CALL_DEPTH: ContextVar[int] = ContextVar("namu_call_depth", default=0)
#: the run's ``recursion_limit`` (set by the reference executor for its run)
RECURSION_LIMIT: ContextVar[int] = ContextVar("namu_recursion_limit", default=1000)


def single_result(n_outputs: int) -> Callable[[list[Any]], Any]:
    """Adapt a list of outputs to the node-callable return convention."""
    if n_outputs == 1:
        return lambda outs: outs[0]
    return tuple


def sweep_bodies(typer: Typer, node: ir.Node, _args: list[ValueType]) -> None:
    """A type rule: type the op's bodies; its outputs stay as the IR has them."""
    for graph in subgraphs(node):
        typer.graph(graph)


# ---------------------------------------------------------------------- If
def _if_type(typer: Typer, node: ir.Node, args: list[ValueType]) -> list[ValueType]:
    """The join of the branches' values (the phi); the condition is a ``bool``."""
    typer.condition(node, args[0])
    then_g, else_g = node.attributes["then_branch"].as_graph(), node.attributes["else_branch"].as_graph()
    typer.graph(then_g)
    typer.graph(else_g)
    return [join(typer.type(t), typer.type(e)) for t, e in zip(then_g.outputs, else_g.outputs)]


def _if(node: ir.Node, env: OpEnv) -> Built:
    caps = node_captures(node)
    then_run = env.subgraph(node.attributes["then_branch"].as_graph(), caps)
    else_run = env.subgraph(node.attributes["else_branch"].as_graph(), caps)
    adapt = single_result(len(node.outputs))

    def if_(cond: Any, *captured: Any) -> Any:
        return adapt((then_run if cond else else_run)(list(captured)))

    return if_, None


# ---------------------------------------------------------------------- Loop
def _loop_type(typer: Typer, node: ir.Node, args: list[ValueType]) -> list[ValueType]:
    """The carried values' types, which the body must keep; conditions are ``bool``."""
    body = node.attributes["body"].as_graph()
    if len(args) > 1 and node.inputs[1] is not None:
        typer.condition(node, args[1])
    onnx_only = node.domain == ONNX_DOMAIN
    starts = [ValueType.int(), ValueType.bool(), *args[2:]]
    for value, start in zip(body.inputs, starts):
        typer.settle(node, value, start, onnx_only=onnx_only)
    carried = [typer.type(v) for v in body.inputs[2:]]
    typer.graph(body)
    outs = [typer.type(v) for v in body.outputs]
    if outs:
        typer.condition(node, outs[0])
    for value, before, after in zip(body.inputs[2:], carried, outs[1:]):
        if not is_unknown(before) and not (accepts(before, after) and accepts(after, before)):
            typer.fail(node, f"loop-carried value {value.name!r} changes type inside the loop ({before} -> {after})")
    return carried


def _loop(node: ir.Node, env: OpEnv) -> Built:
    caps = node_captures(node)
    body = env.subgraph(node.attributes["body"].as_graph(), caps)
    n_carried = len(node.inputs) - 2
    adapt = single_result(len(node.outputs))

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

    return loop, None


_STRUCTURED = {"control": True}
for _domain, _opset_note in ((ONNX_DOMAIN, ""), (NAMU_DOMAIN, ", for branches carrying opaque values")):
    op(_domain, "If", f"run `then_branch` or `else_branch` on input 0{_opset_note}", types=_if_type, kernel="if", **_STRUCTURED)(_if)
    op(_domain, "Loop", f"Loop with the standard input/attribute layout{_opset_note}", types=_loop_type, kernel="loop", **_STRUCTURED)(
        _loop
    )


# ---------------------------------------------------------------------- namu.Try
def _try_type(typer: Typer, node: ir.Node, args: list[ValueType]) -> list[ValueType]:
    """The join of the body's and the handler's values; the handler's input is the exception."""
    body, handler = node.attributes["body"].as_graph(), node.attributes["handler"].as_graph()
    if handler.inputs:
        typer.settle(node, handler.inputs[0], ValueType.opaque("BaseException"), onnx_only=False)
    typer.graph(body)
    typer.graph(handler)
    return [join(typer.type(b), typer.type(h)) for b, h in zip(body.outputs, handler.outputs)]


@op(NAMU_DOMAIN, "Try", "catch region: run graph `body`; if it raises an Exception, run graph `handler` on it",
    types=_try_type, kernel="try", **_STRUCTURED)
def _try(node: ir.Node, env: OpEnv) -> Built:
    """The body's outputs, or the handler's when the body raised an ``Exception`` (the
    handler gets it as the run reports it: a task's failure as ``TaskError``)."""
    caps = node_captures(node)
    body = env.subgraph(node.attributes["body"].as_graph(), caps)
    handler = env.subgraph(node.attributes["handler"].as_graph(), caps)
    adapt = single_result(len(node.outputs))

    def try_(*captured: Any) -> Any:
        values = list(captured)
        try:
            outs = body(values)
        except Exception as exc:  # noqa: BLE001 - the handler decides: it re-raises what it does not match
            outs = handler([exc, *values])
        return adapt(outs)

    return try_, None


# ---------------------------------------------------------------------- namu.Map
def map_flatten(node: ir.Node) -> bool:
    """Whether a ``namu.Map`` node concatenates its items' results (else lists them)."""
    flatten_attr = node.attributes.get("flatten")
    return bool(flatten_attr.as_int()) if flatten_attr is not None else False


def record_skip(skipped: Any, index: int) -> None:
    """Report fan-out item ``index``, dropped because of ``skipped`` (a
    ``namu.runtime.tasks.SkipItem``), to the current run and its hooks."""
    from namu.errors import describe_exception
    from namu.runtime.result import SkippedItem, current_run

    state = current_run()
    if state is None:
        return
    cause = skipped.__cause__
    error = describe_exception(cause) if cause is not None else str(skipped)
    item = SkippedItem(skipped.task, skipped.span, index, error)
    state.skipped.append(item)
    if state.hooks is not None and "task_skip" in state.events:
        state.hooks.on_task_skip(item)


def _map_type(typer: Typer, node: ir.Node, args: list[ValueType]) -> list[ValueType]:
    """The list of the body's result type (or the result list itself, ``flatten``)."""
    body = node.attributes["body"].as_graph()
    if body.inputs:
        typer.settle(node, body.inputs[0], item_type(args[0]), onnx_only=False)
    typer.graph(body)
    if not node.outputs or not body.outputs:
        return []
    result = typer.type(body.outputs[0])
    if map_flatten(node):
        return [result if result.kind == "list" else ValueType.opaque("list")]
    return [ValueType.list(result)]


@op(NAMU_DOMAIN, "Map", "fan-out: run graph `body` once per item of input 0, gather results in order",
    types=_map_type, kernel="map", **_STRUCTURED)
def _map(node: ir.Node, env: OpEnv) -> Built:
    from namu.runtime.result import current_run
    from namu.runtime.tasks import SkipItem

    body = env.subgraph(node.attributes["body"].as_graph(), node_captures(node))
    flatten = map_flatten(node)
    has_output = bool(node.outputs)

    reports = bool(env.events & {"fanout", "item_done"})

    def map_(seq: Any, *captured: Any) -> Any:
        items = list(seq)
        state = current_run() if reports else None
        hooks = state.hooks if state is not None else None
        if hooks is not None:
            hooks.on_fanout(len(items))
        caps_list = list(captured)
        gathered: list[Any] = []
        for index, item in enumerate(items):
            outs: list[Any] | None
            try:
                outs = body([item, *caps_list])
            except SkipItem as skipped:
                outs = None
                record_skip(skipped, index)
            if hooks is not None:
                hooks.on_item_done()
            if outs is not None and has_output:
                if flatten:
                    gathered.extend(outs[0])
                else:
                    gathered.append(outs[0])
        return gathered if has_output else None

    return map_, None


# ---------------------------------------------------------------------- graph calls
def _graph_call(graph: ir.Graph, node: ir.Node, env: OpEnv) -> Built:
    """Run ``graph`` with the node's inputs as its inputs."""
    body = env.subgraph(graph, [])
    adapt = single_result(len(node.outputs))
    return (lambda *args: adapt(body(list(args)))), None


@op(NAMU_DOMAIN, "Fused", "run the straight-line task calls of graph `body` as one dispatch unit", types=sweep_bodies,
    kernel="fused")
def _fused(node: ir.Node, env: OpEnv) -> Built:
    """Its body's task calls in order, each with its own error handler."""
    return _graph_call(node.attributes["body"].as_graph(), node, env)


@op(PARTITION_DOMAIN, ANY_OP, "call the partition function of that name (the launcher's call)", types=sweep_bodies)
def _partition_call(node: ir.Node, env: OpEnv) -> Built:
    if node.op_type not in env.functions:
        return unsupported(node, env)
    return _graph_call(env.functions[node.op_type].graph, node, env)


def _function_type(typer: Typer, node: ir.Node, args: list[ValueType]) -> list[ValueType] | None:
    return typer.call_function(node, args)


def called_function(node: ir.Node) -> str:
    """The name of the model function a call node calls: a ``namu.workflow`` node's op
    type, or a ``namu.CallFunction`` node's ``function``."""
    if node.domain == NAMU_DOMAIN:
        return node.attributes["function"].as_string()
    return node.op_type


@op(WORKFLOW_DOMAIN, ANY_OP, "call the sub-workflow function of that name (kept with inline=False)", types=_function_type,
    kernel="function")
def _function_call(node: ir.Node, env: OpEnv) -> Built:
    """Call model function ``op_type``. Its runner comes from ``env.function`` when the call
    first runs, prepared once per executor: preparing never recurses down a chain of
    calls (a chain of 300 functions prepares like one), and a function called from many
    places is prepared once."""
    name = called_function(node)
    if name not in env.functions:
        return unsupported(node, env)
    adapt = single_result(len(node.outputs))
    runner: SubgraphRunner | None = None

    def call(*args: Any) -> Any:
        nonlocal runner
        if runner is None:
            runner = env.function(name)
        depth = CALL_DEPTH.get() + 1
        limit = RECURSION_LIMIT.get()
        if depth > limit:
            raise RecursionError(
                f"maximum recursion depth exceeded: more than {limit} sub-workflow calls nested in one another "
                "(the run's recursion_limit)"
            )
        token = CALL_DEPTH.set(depth)
        try:
            return adapt(runner(list(args)))
        finally:
            CALL_DEPTH.reset(token)

    return call, None


op(NAMU_DOMAIN, "CallFunction", "call the sub-workflow function named by `function`: a call that closes a cycle of "
   "calls (recursion), which ONNX forbids as a direct function reference",
   types=lambda _t, node, _a: [ValueType.opaque()] * len(node.outputs), kernel="function")(_function_call)
