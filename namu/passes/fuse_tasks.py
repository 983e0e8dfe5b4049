"""``fuse-tasks``: run linear chains of cheap local task calls as one dispatch unit."""

from __future__ import annotations

import logging
from typing import Any

import onnx_ir as ir

from namu.ir.attrs import attributes_of
from namu.ir.metadata import PLACEMENT_KEY, SPAN_KEY, TaskEntry, TaskTable
from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.scopes import subgraphs, top_graphs, walk
from namu.ir.types import TYPE_KEY
from namu.ops.registry import lookup
from namu.passes.base import Example, NamuPass
from namu.passes.config import CompileConfig
from namu.passes.effects import CANNOT_RAISE, op_key
from namu.passes.expand_defaults import task_defaults
from namu.passes.registry import register
from namu.passes.rewire import Names, adopt

__all__ = ["FuseTasksPass"]

logger = logging.getLogger(__name__)

#: what a node is to a chain (:meth:`_Fuser.member`): a cheap local task call, or a
#: native builtin op (a member between two task calls only).
_TASK, _BUILTIN = 2, 1
#: run-time options a cheap call has at the compile's default (the others are 0 / 0.0).
_CONFIG_VALUED = frozenset({"priority", "placement"})
#: ops whose bodies are never searched: a Fused body is already one unit, a Gate body is
#: the single op its policy guards.
_OPAQUE_BODIES = frozenset({(NAMU_DOMAIN, "Fused"), (NAMU_DOMAIN, "Gate")})


@register(
    "fuse-tasks",
    "linear chains of cheap local task calls run as one namu.Fused dispatch unit",
    after=("expand-defaults", "eliminate-dead-code"),
    level=2,
)
class FuseTasksPass(NamuPass):
    """Replace each maximal linear chain of cheap local task calls by one ``namu.Fused`` node.

    A *link* is a node whose single output is read by the next node of the chain only
    (one or more inputs of that one node, nothing in a subgraph, not a graph output). A
    chain's nodes are consecutive in the graph, except for ops between them that have no
    effect and cannot raise (constants, ``Add`` on scalars, ... --
    ``namu.passes.effects.CANNOT_RAISE``): those now run before the chain's first node,
    which nothing can observe, and no effect or error is ever reordered. Its nodes are:

    * **cheap local task calls**: a ``namu.Task`` whose task is synchronous, not
      ``pure`` or cached (no memoization), ``on_error="raise"``, not ``mode="thread"``/``"process"``,
      with no retries, no timeout, no fallback, the compile's default placement and
      priority -- read from the node's attributes set by ``expand-defaults`` (``retries``,
      ``timeout_s``, ``cache``, ``placement``, ``priority``) and, where absent, from the
      task table's options and the ``CompileConfig`` defaults;
    * **native builtin ops** (the kernel evaluates them without a Python call:
      arithmetic, comparisons, item access, ``len``, tuple and list construction: ops
      whose registry definition names a native op), but only *between* two task calls:
      a chain starts and ends with a task call.

    A chain of at least two task calls becomes ``namu.Fused(inputs...)`` placed where
    its last node was: ``inputs`` are the values the chain reads from outside (in first
    use order), the ``body`` graph holds the chain's nodes unchanged (spans, attributes
    and all) reading fresh body inputs ``<name>__in``, and the Fused node's one output
    keeps the chain's last value name and type (inside the body it is ``<name>__out``).
    The Fused node carries the first node's ``namu.span``. Chains are found in every
    graph: the main graph, ``If``/``Loop``/``namu.Map`` bodies and remaining functions
    (not inside Fused or Gate bodies). One sweep per graph: linear in the number of nodes.

    The kernel runs a Fused node as one ``Seq`` op: the steps are called one
    after another through vectorcall, with no ready-queue traffic in between, and an
    error in a step goes through that task's own handler, so it still names the task and
    its workflow line. The reference interpreter runs the body in order.

    Source: the linear-chain fusion of Dask's graph optimizer
    (``dask.optimization.fuse_linear``) and Apache Flink's operator chaining, restricted
    to calls whose options need no dispatch of their own.

    Guarantees:
        Every ``namu.Fused`` body holds at least two task calls (and native builtin ops
            only between them), in their original order, each with its span.
        Outside Fused bodies, no two cheap local task calls are linked as above.
        The graph's values, effects and their order are unchanged.
    """

    EXAMPLE = Example(
        before="""
        g (int64 x) => (int64 y, int64 s) {
          a = namu.Task <task = "load"> (x)
          b = namu.Task <task = "clean"> (a)
          y = namu.Task <task = "embed"> (b)
          s = namu.Task <task = "score"> (y, x)
        }""",
        after="""
        g (int64 x) => (int64 y, int64 s) {
          y = namu.Fused <body = fused (int64 x__in) => (int64 y__out) {
            a = namu.Task <task = "load"> (x__in)
            b = namu.Task <task = "clean"> (a)
            y__out = namu.Task <task = "embed"> (b)
          }> (x)
          s = namu.Task <task = "score"> (y, x)
        }""",
        impure_tasks=("load", "clean", "embed", "score"),
        note="`y` is a graph output, so the chain ends there and `score` stays a separate call.",
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        fuser = _Fuser(TaskTable.of(model).by_key(), self.context.config, Names(model))
        for graph in top_graphs(model):
            fuser.graph(graph)
        logger.debug("fused %d chains of %d nodes", fuser.chains, fuser.nodes)
        self.changed(fuser.chains)
        return self.result(model)

    def ensures(self, model: ir.Model) -> None:
        for node in walk(model):
            if node.domain == NAMU_DOMAIN and node.op_type == "Fused":
                body = list(node.attributes["body"].as_graph())
                calls = sum(1 for inner in body if inner.domain == NAMU_DOMAIN and inner.op_type == "Task")
                if calls < 2:
                    self.broken(f"a namu.Fused body holds {calls} task call(s), not a chain of at least two", node)


class _Fuser:
    """Finds and fuses the chains of one graph at a time."""

    def __init__(self, table: dict[str, TaskEntry], config: CompileConfig, names: Names) -> None:
        self.table = table
        self.config = config
        self.names = names
        #: per task key, its run-time options when a node has no attribute for one
        self.defaults: dict[str, dict[str, Any]] = {}
        self.chains = 0
        self.nodes = 0

    # ------------------------------------------------------------------ what may fuse
    def policy(self, key: str) -> dict[str, Any] | None:
        """The run-time options a call of task ``key`` has when its node carries none
        (``expand-defaults``' values), or None if no call of it is cheap and local."""
        if key in self.defaults:
            return self.defaults[key]
        entry = self.table.get(key)
        policy = None
        if entry is not None and not entry.is_async:
            opts = entry.options
            if not (opts.pure or opts.on_error != "raise" or opts.mode in ("thread", "process") or opts.fallback):
                policy = {a.name: a.value for a in task_defaults(opts, self.config)}
        self.defaults[key] = policy
        return policy

    def member(self, node: ir.Node) -> int:
        """:data:`_TASK` for a cheap local task call, :data:`_BUILTIN` for a native
        builtin op (a member between task calls), else 0."""
        if len(node.outputs) != 1:
            return 0
        if node.op_type != "Task" or node.domain != NAMU_DOMAIN:
            definition = lookup(node.domain, node.op_type)
            return _BUILTIN if definition is not None and definition.native_name(node) is not None else 0
        attrs = attributes_of(node)
        task = attrs.get("task")
        policy = self.policy(task.as_string()) if task is not None else None
        if policy is None:
            return 0
        config = self.config
        for name, default in policy.items():
            attr = attrs.get(name)
            value = attr.value if attr is not None else default
            if value != getattr(config, name) if name in _CONFIG_VALUED else value:
                return 0
        return _TASK if node.metadata_props.get(PLACEMENT_KEY, config.placement) == config.placement else 0

    @staticmethod
    def links(prev: ir.Node, node: ir.Node) -> bool:
        """``prev``'s output is read by ``node`` and nothing else."""
        out = prev.outputs[0]
        uses = out.uses()
        return not out.is_graph_output() and bool(uses) and all(user is node for user, _ in uses)

    # ------------------------------------------------------------------ the sweep
    def graph(self, graph: ir.Graph) -> None:
        """Fuse every chain of ``graph``, then of its subgraphs (not of Fused or Gate bodies)."""
        self.chains_of(graph)
        for node in graph:
            if op_key(node) not in _OPAQUE_BODIES:
                for inner in subgraphs(node):
                    self.graph(inner)

    def chains_of(self, graph: ir.Graph) -> None:
        """Fuse every chain of ``graph`` (not of its subgraphs)."""
        chains: list[list[tuple[ir.Node, int]]] = []
        current: list[tuple[ir.Node, int]] = []
        for node in graph:
            kind = self.member(node)
            if kind and current and self.links(current[-1][0], node):
                current.append((node, kind))
                continue
            if op_key(node) in CANNOT_RAISE:
                continue  # no effect, cannot fail: it may run before the chain
            chains.append(current)
            current = [(node, kind)] if kind else []
        chains.append(current)
        fused = [self.fuse(graph, chain) for chain in map(_trim, chains) if len(chain) >= 2]
        if not fused:
            return
        graph.remove([node for _, chain in fused for node in chain])
        for body, chain in fused:
            body.extend(chain)
        self.chains += len(fused)
        self.nodes += sum(len(chain) for _, chain in fused)

    def fuse(self, graph: ir.Graph, chain: list[ir.Node]) -> tuple[ir.Graph, list[ir.Node]]:
        """Put a ``namu.Fused`` node for ``chain`` after its last node and rewire the chain
        to read the body's inputs; returns the (still empty) body and the chain, whose
        nodes the caller moves into the body."""
        internal = {id(node.outputs[0]) for node in chain[:-1]}
        outer: dict[int, ir.Value] = {}
        inner: dict[int, ir.Value] = {}
        for node in chain:
            for i, value in enumerate(node.inputs):
                if value is None or id(value) in internal:
                    continue
                if id(value) not in inner:
                    outer[id(value)] = value
                    inner[id(value)] = _typed_like(value, ir.Value(name=self.names.fresh(f"{value.name or 'v'}__in")))
                node.replace_input_with(i, inner[id(value)])
        last = chain[-1].outputs[0]
        result = _typed_like(last, ir.Value())
        adopt(last, result)
        last.name = self.names.fresh(f"{result.name}__out")
        body = ir.Graph(list(inner.values()), [last], nodes=[], name=self.names.fresh("fused"))
        fused = ir.Node(
            NAMU_DOMAIN,
            "Fused",
            list(outer.values()),
            attributes=[ir.AttrGraph("body", body)],
            outputs=[result],
            name=self.names.fresh("n_Fused"),
        )
        for key in (SPAN_KEY, PLACEMENT_KEY):
            if key in chain[0].metadata_props:
                fused.metadata_props[key] = chain[0].metadata_props[key]
        graph.insert_after(chain[-1], fused)
        return body, chain


def _typed_like(source: ir.Value, value: ir.Value) -> ir.Value:
    """``value`` with ``source``'s type, shape and value metadata. A graph input must be
    typed: an untyped ``source`` gives an opaque ``object``."""
    value.type = source.type
    value.shape = source.shape
    value.metadata_props.update(source.metadata_props)
    if value.type is None and TYPE_KEY not in value.metadata_props:
        value.metadata_props[TYPE_KEY] = "object"
    return value


def _trim(chain: list[tuple[ir.Node, int]]) -> list[ir.Node]:
    """The chain's nodes without leading and trailing builtin ops: it starts and ends
    with a task call."""
    start, end = 0, len(chain)
    while start < end and chain[start][1] != _TASK:
        start += 1
    while end > start and chain[end - 1][1] != _TASK:
        end -= 1
    return [node for node, _ in chain[start:end]]
