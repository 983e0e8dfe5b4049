"""``insert-resilience-gates``: make retry, timeout and fallback policies explicit ops."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx_ir as ir

from namu.ir.attrs import attributes_of
from namu.ir.metadata import CAPABILITY_GATED, TaskOptions, TaskTable
from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.scopes import graphs, subgraphs, top_graphs
from namu.ir.types import set_type, type_of, value_like
from namu.passes.base import Example, NamuPass, fail
from namu.passes.config import CompileConfig
from namu.passes.expand_defaults import task_defaults
from namu.passes.registry import register
from namu.passes.rewire import Names
from namu.runtime.federation import WireGates
from namu.runtime.tasks import RETRY_BASE_DELAY_S, RETRY_MAX_DELAY_S

__all__ = ["InsertResilienceGatesPass", "TaskPolicies", "TaskPolicy"]

logger = logging.getLogger(__name__)


@register(
    "insert-resilience-gates",
    "every task call with retries, a timeout or a fallback (and every Recv, given wire_timeout_s) "
    "runs inside a namu.Gate carrying that policy; every namu.Scatter carries its wire gates",
    after=("resolve-slots", "synthesize-wire-ops"),
    level=0,
    provides=(CAPABILITY_GATED,),
)
class InsertResilienceGatesPass(NamuPass):
    """Wrap each effectful op that has a resilience policy in a ``namu.Gate``.

    A ``namu.Task`` call asks for a gate when its ``retries`` are above 0, its
    ``timeout_s`` is set, or its task has a ``fallback`` (``@namu.task(fallback=...)``).
    ``retries`` and ``timeout_s`` are the node's attributes (expand-defaults fills them),
    or, on a node without them, what expand-defaults would give it; the fallback comes
    from the task table. A ``namu.Recv`` gets a gate whose ``timeout_s`` is
    ``CompileConfig.wire_timeout_s`` when that is set. The gate takes the op's place: it
    reads the op's inputs and writes values of the op's output names, and its ``body``
    holds the op itself, reading the body's inputs (``<input>_g``) and writing its outputs
    (``<output>_g``). Ops already inside a gate are left alone, so the pass is idempotent.

    A call site may carry its own policy (the agent frontend sets it on an LLM call):
    ``retries``, ``timeout_s``, ``backoff_base_s``, ``backoff_max_s``, a ``fallback``
    task key, and a circuit ``breaker`` name with ``breaker_threshold`` and
    ``breaker_cooldown_s``; these win over the task's options. A call with a breaker is
    gated too: the runtime keeps one process-wide breaker per name (``provider/model``),
    which opens after ``breaker_threshold`` consecutive failures and fails calls at once
    for ``breaker_cooldown_s`` (Nygard, "Release It!", 2007). Errors that say they are
    not ``retryable`` are not retried, and a ``retry_after_s`` they carry (a 429's
    ``retry-after``) is waited for at least.

    Backoff between retries is exponential with full jitter (Marc Brooker, "Exponential
    Backoff And Jitter", AWS Architecture Blog, 2015): before retry ``k`` the runtime
    waits ``uniform(0, min(backoff_max_s, backoff_base_s * 2**k))``; the defaults are
    the runtime's ``RETRY_BASE_DELAY_S`` (0.01 s) and ``RETRY_MAX_DELAY_S`` (1 s).

    Fallback: when a call still fails after its retries, or times out, the runtime calls
    the fallback task with the same arguments and uses its result. The fallback call
    applies the fallback task's own retries, timeout and cache, but not its own
    ``fallback`` or ``on_error``. Its result is never cached or checkpointed as the
    guarded task's. With ``on_error="skip"``, the fallback comes first: a fan-out item
    is dropped only when the fallback fails too (the skipped item reports the fallback's
    error).

    A remote fan-out's ``namu.Scatter`` carries its **wire gates** as attributes, which
    the federation's Node enforces (:mod:`namu.federated.node`): ``deadline_s``
    (``CompileConfig.fanout_deadline_s``; the exchange closes then with the replies it
    has), ``min_replies`` (fewer by the deadline fail the run, naming the missing
    peers), ``max_failures`` (``peer_max_failures``: a peer failing that often in a row
    is marked down and not asked until it speaks again), ``backoff_base_s`` /
    ``backoff_max_s`` (re-sending a request the transport could not deliver) and
    ``dedup`` (one reply per peer per item counts).

    Guarantees:
        every ``namu.Scatter`` carries ``deadline_s``, ``min_replies``, ``max_failures``,
            ``backoff_base_s``, ``backoff_max_s`` and ``dedup``
        every ``namu.Task`` (outside gate bodies) whose policy has retries, a timeout or a fallback is the single op of a ``namu.Gate`` body
        every ``namu.Recv`` is, when ``wire_timeout_s`` is set
        gate attributes: ``retries`` (int), ``timeout_s`` (float, 0 = none), ``backoff_base_s``, ``backoff_max_s`` (floats), ``fallback`` (task key, "" = none)

    Raises:
        CompileError: a task's ``fallback`` is not in the task table.
    """

    EXAMPLE = Example(
        before="""
        g (int64 x) => (int64 y) {
          a = namu.Task <task = "fetch", retries = 2, timeout_s = 5.0> (x)
          y = namu.Task <task = "log", retries = 0, timeout_s = 0.0> (a)
        }""",
        after="""
        g (int64 x) => (int64 y) {
          a = namu.Gate <
            body = gate_a (int64 x_g) => (int64 a_g) { a_g = namu.Task <task = "fetch", retries = 2, timeout_s = 5.0> (x_g) },
            retries = 2, timeout_s = 5.0, backoff_base_s = 0.01, backoff_max_s = 1.0, fallback = ""
          > (x)
          y = namu.Task <task = "log", retries = 0, timeout_s = 0.0> (a)
        }""",
        impure_tasks=("fetch", "log"),
        note="`fetch` retries and has a timeout, so it runs in a gate; `log` has no policy and stays a bare call.",
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        options = {t.key: t.options for t in TaskTable.of(model).tasks}
        config = self.context.config
        gater = _Gater(model, TaskPolicies(options, config), config.wire_timeout_s, _wire_gates(config))
        for graph in top_graphs(model):
            gater.graph(graph)
        logger.debug("inserted %d gates", gater.inserted)
        self.changed(gater.inserted)
        return self.result(model)

    def ensures(self, model: ir.Model) -> None:
        policies = TaskPolicies({t.key: t.options for t in TaskTable.of(model).tasks}, self.context.config)
        wire_timeout_s = self.context.config.wire_timeout_s
        pending = top_graphs(model)
        while pending:
            for node in pending.pop():
                if _is(node, "Gate"):
                    continue  # its op is guarded
                if _is(node, "Task") and policies(node).needs_gate:
                    self.broken("a task call with retries, a timeout or a fallback runs outside a namu.Gate", node)
                if _is(node, "Recv") and wire_timeout_s is not None:
                    self.broken("a namu.Recv runs outside a namu.Gate although wire_timeout_s is set", node)
                if _is(node, "Scatter") and any(a.name not in node.attributes for a in _wire_gates(self.context.config)):
                    self.broken("a namu.Scatter lacks its wire gates", node)
                pending += subgraphs(node)


@dataclasses.dataclass(frozen=True)
class TaskPolicy:
    """The resilience policy of one task call.

    Attributes:
        retries: retries after a failing call.
        timeout_s: the limit of one attempt, in seconds (0.0: none).
        fallback: the task-table key of the fallback task ("" = none).
        backoff_base_s, backoff_max_s: the retry backoff, in seconds.
        breaker: the name of a process-wide circuit breaker ("" = none), opened by
            ``breaker_threshold`` consecutive failures for ``breaker_cooldown_s`` seconds.
    """

    retries: int = 0
    timeout_s: float = 0.0
    fallback: str = ""
    backoff_base_s: float = RETRY_BASE_DELAY_S
    backoff_max_s: float = RETRY_MAX_DELAY_S
    breaker: str = ""
    breaker_threshold: int = 5
    breaker_cooldown_s: float = 30.0

    @property
    def needs_gate(self) -> bool:
        """Whether the call must run inside a ``namu.Gate``."""
        return self.retries > 0 or self.timeout_s > 0 or bool(self.fallback) or bool(self.breaker)

    def attributes(self) -> list[ir.Attr]:
        """The gate's attributes (the breaker's only when it has one)."""
        attrs = [
            ir.AttrInt64("retries", self.retries),
            _float32("timeout_s", self.timeout_s),
            _float32("backoff_base_s", self.backoff_base_s),
            _float32("backoff_max_s", self.backoff_max_s),
            ir.AttrString("fallback", self.fallback),
        ]
        if self.breaker:
            attrs += [
                ir.AttrString("breaker", self.breaker),
                ir.AttrInt64("breaker_threshold", self.breaker_threshold),
                _float32("breaker_cooldown_s", self.breaker_cooldown_s),
            ]
        return attrs


class TaskPolicies:
    """``policies(node)``: the :class:`TaskPolicy` of a ``namu.Task`` node.

    Args:
        options: the task table's options by task key.
        config: the compile's options (the defaults of nodes expand-defaults has not seen).
    """

    def __init__(self, options: Mapping[str, TaskOptions], config: CompileConfig) -> None:
        self._options = options
        self._config = config
        #: (task key, the values of the retries and timeout_s attributes; None where absent) -> policy
        self._policies: dict[tuple[str, Any, Any], TaskPolicy] = {}

    def known(self, key: str) -> bool:
        """Whether ``key`` is in the task table."""
        return key in self._options

    def __call__(self, node: ir.Node) -> TaskPolicy:
        attrs = attributes_of(node)
        seen = (attrs["task"].value, *(a.value if (a := attrs.get(name)) is not None else None for name in _CALL_SITE))
        policy = self._policies.get(seen)
        if policy is None:
            policy = self._policies[seen] = self._policy(*seen)
        return policy

    def _policy(self, key: str, retries: Any, timeout_s: Any, *call_site: Any) -> TaskPolicy:
        opts = self._options.get(key, TaskOptions())
        if retries is None or timeout_s is None:
            defaults = {a.name: a.value for a in task_defaults(opts, self._config)}
            retries = retries if retries is not None else defaults["retries"]
            timeout_s = timeout_s if timeout_s is not None else defaults["timeout_s"]
        policy = TaskPolicy(int(retries), float(timeout_s), opts.fallback or "")
        given = {name: value for name, value in zip(_CALL_SITE[2:], call_site) if value is not None}
        return dataclasses.replace(policy, **given) if given else policy


#: the policy attributes a call node may carry: expand-defaults' two, and those a
#: frontend sets at a call site (an agent's LLM call: its backoff, fallback and breaker)
_CALL_SITE = ("retries", "timeout_s", "backoff_base_s", "backoff_max_s", "fallback", "breaker", "breaker_threshold",
              "breaker_cooldown_s")


def _is(node: ir.Node, op_type: str) -> bool:
    return node.op_type == op_type and node.domain == NAMU_DOMAIN


def _wire_gates(config: CompileConfig) -> list[ir.Attr]:
    """The wire-gate attributes of a ``namu.Scatter`` under ``config`` (the resend
    backoff is the runtime's default, :class:`~namu.runtime.federation.WireGates`)."""
    backoff = WireGates()
    return [
        _float32("deadline_s", config.fanout_deadline_s),
        ir.AttrInt64("min_replies", config.min_replies),
        ir.AttrInt64("max_failures", config.peer_max_failures),
        _float32("backoff_base_s", backoff.backoff_base_s),
        _float32("backoff_max_s", backoff.backoff_max_s),
        ir.AttrInt64("dedup", 1),
    ]


class _Gater:
    """Rewrites the graphs of one model; names stay unique model-wide."""

    def __init__(self, model: ir.Model, policies: TaskPolicies, wire_timeout_s: float | None,
                 wire_gates: list[ir.Attr]) -> None:
        self.model = model
        self.policies = policies
        self.wire_timeout_s = wire_timeout_s
        self.wire_gates = wire_gates
        self.inserted = 0
        self.names = Names(model)
        self._output_refs: dict[int, list[tuple[ir.Graph, int]]] | None = None
        #: a policy's gate attributes: read-only, so every gate of that policy shares them
        self._attrs: dict[TaskPolicy, list[ir.Attr]] = {}

    def output_refs(self) -> dict[int, list[tuple[ir.Graph, int]]]:
        """``id(value)`` -> the (graph, index) of each graph output it is, at any depth
        (collected at the first gated graph output, in one walk): a gated value must be
        replaced there too."""
        if self._output_refs is None:
            self._output_refs = {}
            for graph in graphs(self.model):
                for i, value in enumerate(graph.outputs):
                    self._output_refs.setdefault(id(value), []).append((graph, i))
        return self._output_refs

    def graph(self, graph: ir.Graph) -> None:
        for node in list(graph):
            if _is(node, "Task"):
                policy = self.policies(node)
                if policy.fallback and not self.policies.known(policy.fallback):
                    task = node.attributes["task"].as_string()
                    fail(node, f"the fallback {policy.fallback!r} of task {task!r} is not in the task table")
                if policy.needs_gate:
                    self.gate(graph, node, policy)
            elif _is(node, "Recv"):
                if self.wire_timeout_s is not None:
                    self.gate(graph, node, TaskPolicy(timeout_s=self.wire_timeout_s))
            elif _is(node, "Scatter"):
                for attr in self.wire_gates:
                    if attr.name not in node.attributes:
                        node.attributes[attr.name] = attr
                        self.inserted += 1
            elif not _is(node, "Gate"):  # a gate's op is guarded already
                for g in subgraphs(node):
                    self.graph(g)

    def gate(self, graph: ir.Graph, node: ir.Node, policy: TaskPolicy) -> None:
        """Replace ``node`` by a ``namu.Gate`` whose body holds it (O(uses of its outputs))."""
        gate_inputs = list(node.inputs)
        body_inputs = [value_like(v, self.names.fresh(f"{v.name}_g")) for v in gate_inputs]  # type: ignore[union-attr]
        for i, value in enumerate(body_inputs):
            node.replace_input_with(i, value)
        inner_outputs = list(node.outputs)
        hint = inner_outputs[0].name if inner_outputs else node.op_type.lower()
        body = ir.Graph(body_inputs, [], nodes=[], name=f"gate_{hint}")
        attrs = self._attrs.get(policy)
        if attrs is None:
            attrs = self._attrs[policy] = policy.attributes()
        gate = ir.Node(
            NAMU_DOMAIN,
            "Gate",
            gate_inputs,
            [ir.AttrGraph("body", body), *attrs],
            num_outputs=len(inner_outputs),
            metadata_props=dict(node.metadata_props),
        )
        for old, new in zip(inner_outputs, gate.outputs):  # named before insertion: no generated names
            new.name = old.name
            old.name = self.names.fresh(f"{new.name}_g")
            set_type(new, type_of(old))
        graph.insert_before(node, gate)
        graph.remove(node)
        body.append(node)
        for old, new in zip(inner_outputs, gate.outputs):
            if old.is_graph_output():
                for g, i in self.output_refs().pop(id(old), ()):
                    g.outputs[i] = new
            for user, index in list(old.uses()):
                user.replace_input_with(index, new)
            body.outputs.append(old)
        self.inserted += 1


def _float32(name: str, value: float) -> ir.Attr:
    """A FLOAT attribute holding ``value`` as it reads back after saving (float32)."""
    return ir.AttrFloat32(name, float(np.float32(value)))
