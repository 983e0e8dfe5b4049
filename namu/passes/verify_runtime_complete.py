"""``verify-runtime-complete``: the last check before an artifact exists; stamps the passport."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import onnx_ir as ir

from namu._version import __version__
from namu.errors import IRVerificationError, UnboundSlotError
from namu.ir import metadata
from namu.ir.constants import constant_of
from namu.ir.metadata import (
    PASSPORT_KEY,
    SPAN_KEY,
    TASKS_KEY,
    TaskEntry,
    TaskTable,
)
from namu.ir.opsets import NAMU_DOMAIN, ONNX_OPSET
from namu.ir.scopes import subgraphs, top_graphs
from namu.ops.registry import CompileTimeEnv, definition
from namu.passes.base import Example, NamuPass, fail
from namu.passes.insert_resilience_gates import TaskPolicies
from namu.passes.registry import register

__all__ = ["VerifyRuntimeCompletePass"]

logger = logging.getLogger(__name__)


@register(
    "verify-runtime-complete",
    "every op is dispatchable, every slot bound, every Send paired, every policy in a gate; the passport is stamped",
    after=("plan-lifetimes", "assign-priorities"),
    level=0,
    provides=(metadata.CAPABILITY_VERIFIED,),
)
class VerifyRuntimeCompletePass(NamuPass):
    """Check that the runtime can execute the model as it is, then stamp the passport.

    Checks, in the main graph, every subgraph and every function:

    - no ``namu.Slot`` is left (resolve-slots binds them);
    - every ``namu.Send`` has exactly one ``namu.Recv`` on its channel, and the other
      way round;
    - every policy is in a gate: no ``namu.Task`` with retries, a timeout or a
      fallback, and (given ``wire_timeout_s``) no ``namu.Recv``, outside a
      ``namu.Gate``; every gate's body is exactly one op reading the body's inputs in
      order and writing its outputs, and names a fallback of the task table;
    - every op is dispatchable: each node's callable is built from its op registry
      definition (:mod:`namu.ops`), as both executors build it, so the check cannot
      drift from what the runtime knows: standard ops it implements, namu ops it can
      build, calls of known functions and partitions.

    Then stamps the compile passport (``namu.passport``: namu version, workflow name and
    source digest, the passes of this compile and their options). The compiler stores
    the workflow's name and digest in a provisional passport before the passes run.

    Raises:
        UnboundSlotError: a ``namu.Slot`` is left (names the slot and its line).
        IRVerificationError: an op the runtime cannot run, an unpaired wire op, a policy
            outside a gate, a malformed gate -- with the node's source line.
    """

    EXAMPLE = Example(
        before="""
        g (string q) => (string a) { a = namu.Slot <slot = "llm"> (q) }""",
        error="UnboundSlotError: slot 'llm' is not bound",
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        entries = TaskTable.of(model).by_key()
        table = entries if TASKS_KEY in model.metadata_props else None  # None: task keys are not checked
        policies = TaskPolicies({k: t.options for k, t in entries.items()}, self.context.config)
        checker = _Checker(policies, table, self.context.config.wire_timeout_s, _dispatcher(model, entries))
        for graph in top_graphs(model):
            checker.graph(graph, gated=False)
        checker.check_wires()
        logger.debug("verified %d nodes", checker.count)
        self.changed(self.stamp_passport(model))
        return self.result(model)

    def ensures(self, model: ir.Model) -> None:
        passport = metadata.Passport.stored_in(model)
        if passport is None or passport.namu_version != __version__ or passport.onnx_opset != ONNX_OPSET:
            self.broken("the passport is stamped with this namu's version and opset")

    def stamp_passport(self, model: ir.Model) -> int:
        """Write the passport; 1 if it changed."""
        props = model.metadata_props
        workflow, digest, capabilities = model.graph.name or "", "", None
        provisional = metadata.Passport.stored_in(model)
        signature = metadata.Signature.stored_in(model)
        if provisional is not None:
            workflow, digest = provisional.workflow, provisional.workflow_digest
            capabilities = provisional.capabilities  # stamped by the pass manager: kept
        elif signature is not None:
            workflow = signature.name
        passport = metadata.Passport(
            namu_version=__version__,
            workflow=workflow,
            workflow_digest=digest,
            passes=list(self.context.pipeline),
            onnx_opset=ONNX_OPSET,
            options=self.context.config.summary(),
        )
        if capabilities is not None:
            passport = passport.model_copy(update={"capabilities": capabilities})
        text = metadata.dump(passport)
        changed = props.get(PASSPORT_KEY) != text
        props[PASSPORT_KEY] = text
        return int(changed)


def _where(node: ir.Node) -> str:
    span = node.metadata_props.get(SPAN_KEY, "")
    return f"{span}: " if span else ""


def _reject(node: ir.Node, message: str) -> IRVerificationError:
    return IRVerificationError(f"{_where(node)}{node.domain}::{node.op_type}: {message}")


def _is(node: ir.Node, op_type: str) -> bool:
    return node.op_type == op_type and node.domain == NAMU_DOMAIN


class _Checker:
    """The checks of one model, in one walk over every graph."""

    def __init__(
        self,
        policies: TaskPolicies,
        tasks: dict[str, TaskEntry] | None,
        wire_timeout_s: float | None,
        dispatch: Callable[[ir.Node], None],
    ) -> None:
        self.policies = policies
        self.tasks = tasks
        self.wire_timeout_s = wire_timeout_s
        self.dispatch = dispatch
        self.sends: dict[str, list[ir.Node]] = {}
        self.recvs: dict[str, list[ir.Node]] = {}
        self.count = 0

    def graph(self, graph: ir.Graph, gated: bool) -> None:
        """Check ``graph``; ``gated``: it is a gate's body."""
        for node in graph:
            self.count += 1
            self.node(node, gated)
            if _is(node, "Gate"):
                self.gate(node)  # its op is dispatched in its body
                continue
            self.dispatch(node)
            for g in subgraphs(node):
                self.graph(g, gated=False)

    def node(self, node: ir.Node, gated: bool) -> None:
        if node.domain != NAMU_DOMAIN:
            return
        if node.op_type == "Slot":
            slot = node.attributes.get("slot")
            name = slot.as_string() if slot is not None else "?"
            fail(node, f"slot {name!r} is not bound (bind it: namu.compile(wf, slots={{{name!r}: task}}))", UnboundSlotError)
        elif node.op_type in ("Send", "Recv"):
            channel = node.attributes.get("channel")
            if channel is None:
                raise _reject(node, "a wire op needs a `channel` attribute")
            (self.sends if node.op_type == "Send" else self.recvs).setdefault(channel.as_string(), []).append(node)
            if node.op_type == "Recv" and self.wire_timeout_s is not None and not gated:
                raise _reject(node, "a receive under wire_timeout_s must run in a namu.Gate (insert-resilience-gates)")
        elif node.op_type == "Task":
            task_attr = node.attributes.get("task")
            task = task_attr.as_string() if task_attr is not None else ""
            if self.tasks is not None and task not in self.tasks:
                raise _reject(node, f"task {task!r} is not in the task table")
            policy = self.policies(node)
            if policy.needs_gate and not gated:
                raise _reject(
                    node,
                    f"task {task!r} has retries={policy.retries}, timeout_s={policy.timeout_s}, "
                    f"fallback={policy.fallback!r} but runs outside a namu.Gate (insert-resilience-gates)",
                )

    def gate(self, node: ir.Node) -> None:
        """A gate's body is one op reading the body's inputs in order and writing its outputs."""
        body_attr = node.attributes.get("body")
        if body_attr is None or body_attr.type != ir.AttributeType.GRAPH:
            raise _reject(node, "a gate needs a `body` graph")
        body = body_attr.as_graph()
        inner = list(body)
        if len(inner) != 1:
            raise _reject(node, f"a gate's body must hold exactly one op, not {len(inner)}")
        op = inner[0]
        if len(body.inputs) != len(node.inputs) or len(body.outputs) != len(node.outputs):
            raise _reject(node, "a gate's body must take the gate's inputs and give its outputs")
        if list(op.inputs) != list(body.inputs) or list(op.outputs) != list(body.outputs):
            raise _reject(node, f"the guarded {op.op_type} must read the body's inputs in order and write its outputs")
        fallback = node.attributes.get("fallback")
        if fallback is not None and fallback.as_string() and fallback.as_string() not in (self.tasks or {}):
            raise _reject(node, f"fallback task {fallback.as_string()!r} is not in the task table")
        self.graph(body, gated=True)

    def check_wires(self) -> None:
        """Every channel has exactly one Send and one Recv."""
        for channel in {**self.sends, **self.recvs}:
            sends, recvs = self.sends.get(channel, []), self.recvs.get(channel, [])
            if len(sends) != 1 or len(recvs) != 1:
                node = (sends or recvs)[0]
                raise _reject(
                    node, f"channel {channel!r} has {len(sends)} Send and {len(recvs)} Recv ops; it needs exactly one of each"
                )


def _never(*_args: Any) -> Any:  # pragma: no cover - the probe builds callables, never runs them
    raise AssertionError("verify-runtime-complete's probe callable was called")


def _dispatcher(model: ir.Model, tasks: dict[str, TaskEntry]) -> Callable[[ir.Node], None]:
    """``dispatch(node)``: build the node's callable from its op registry definition as
    the runtime would, so the runtime's own error names what it cannot run. Task calls
    of the task table and constants with a ``value`` tensor always run (the probe skips
    building them, the bulk of most graphs).

    Raises:
        IRVerificationError: an op the runtime cannot build (from ``dispatch``).
    """
    # Imported here, not at module level: the runtime imports namu.passes lazily too, so
    # neither package's import depends on the other's.
    from namu.runtime.tasks import TaskBinding

    bindings = {key: TaskBinding(key, key, _never, t.options, t.is_async, t.digest) for key, t in tasks.items()}
    probe = CompileTimeEnv(bindings, {f.name: f for f in model.functions.values()})

    def dispatch(node: ir.Node) -> None:
        if node.domain == NAMU_DOMAIN and node.op_type in ("Task", "None"):
            return
        if node.domain == "" and node.op_type == "Constant":
            if "value" not in node.attributes:
                raise _reject(node, "the runtime reads constants from a `value` tensor attribute")
            constant_of(node)
            return
        definition(node).build(node, probe)

    return dispatch
