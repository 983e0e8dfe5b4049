"""``assign-priorities``: critical-path priorities for the kernel's ready queue."""

from __future__ import annotations

import logging

import onnx_ir as ir

from namu.ir.attrs import attributes_of
from namu.ir.metadata import PRIORITY_KEY, TaskTable
from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.scopes import callees_first, node_captures, subgraphs, walk
from namu.passes.base import Example, NamuPass
from namu.passes.registry import register

__all__ = ["AssignPrioritiesPass"]

logger = logging.getLogger(__name__)


@register(
    "assign-priorities",
    "every node carries `namu.priority`: the length of the longest task path from it to the end (HEFT's upward rank)",
    after=("insert-resilience-gates", "plan-lifetimes"),
    level=2,
)
class AssignPrioritiesPass(NamuPass):
    """Rank every node by the critical path below it, for the kernel's ready queue.

    ``priority(node) = cost(node) + max(priority(consumer))`` over the node's consumers
    in its graph (0 without consumers): the upward rank of HEFT (Topcuoglu, Hariri and
    Wu, "Performance-Effective and Low-Complexity Task Scheduling for Heterogeneous
    Computing", IEEE TPDS 2002), the same critical-path idea as Dask's graph ordering.
    Among ready nodes the kernel runs the highest priority first, so the head of the
    longest chain of task calls starts before short independent calls.

    Costs: a task call is 1 plus its ``priority`` attribute (the user's bias; from the
    task's options on nodes expand-defaults has not seen); builtin ops, sends and
    receives are 0; a ``namu.Fused`` node costs the sum of its calls; any other node with
    subgraphs (``If``, ``Loop`` and ``namu.Map`` for one iteration, ``namu.Gate``) costs
    the longest critical path of its subgraphs; a function call, its function's.
    Subgraph nodes rank within their body plus what follows the enclosing node, so ranks
    compare across frames as the kernel's one ready queue compares them; function bodies
    rank from 0.

    The kernel uses the ranks only in plans that can overlap work (thread- or
    async-mode calls) and without ``namu.Recv``: elsewhere source order is kept (see
    ``KernelExecutor.plan``). Ties go to the lowest node index, i.e. source order.

    Guarantees:
        every node of every graph, subgraph and function carries ``namu.priority`` (a decimal integer)
        a node's priority is at least each consumer's plus its own cost
    """

    EXAMPLE = Example(
        before="""
        g (int64 x) => (int64 y) {
          a = namu.Task <task = "quick"> (x)
          b = namu.Task <task = "step"> (x)
          c = namu.Task <task = "step"> (b)
          d = namu.Task <task = "step"> (c)
          y = Add(a, d)
        }""",
        metadata={key: {PRIORITY_KEY: rank} for key, rank in [("a", "1"), ("b", "3"), ("c", "2"), ("d", "1"), ("y", "0")]},
        impure_tasks=("quick", "step"),
        note="On an async run `b` starts first: it heads the critical path.",
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        biases = {t.key: t.options.priority or 0 for t in TaskTable.of(model).tasks}
        functions = {(f.domain, f.name, f.overload): f.graph for f in model.functions.values()}
        ranker = _Ranker(biases, functions)
        for function in callees_first(model):  # callees first: a call finds its callee's length
            ranker.length(function.graph)
        ranker.stamp(model.graph, 0)
        for graph in functions.values():
            ranker.stamp(graph, 0)
        logger.debug("ranked %d nodes", ranker.stamped)
        self.changed(ranker.changed)
        return self.result(model)

    def ensures(self, model: ir.Model) -> None:
        for node in walk(model):
            if not node.metadata_props.get(PRIORITY_KEY, "").lstrip("-").isdigit():
                self.broken(f"{node.op_type} has no integer {PRIORITY_KEY}", node)


class _Ranker:
    """Upward ranks, computed once per graph (post-order), then stamped with offsets."""

    def __init__(self, biases: dict[str, int], functions: dict[tuple[str, str, str], ir.Graph]) -> None:
        self.biases = biases
        self.functions = functions
        self.ranks: dict[int, list[int]] = {}  # id(graph) -> the rank of each node, in order
        self.lengths: dict[int, int] = {}  # id(graph) -> its critical path
        self.costs: dict[int, int] = {}  # id(node) -> cost, for nodes with subgraphs or a function
        self.bodies: dict[int, list[ir.Graph]] = {}  # id(node) -> its subgraphs (when it has some)
        self.stamped = 0
        self.changed = 0

    def cost(self, node: ir.Node) -> int:
        if node.op_type == "Task" and node.domain == NAMU_DOMAIN:
            attrs = attributes_of(node)
            attr = attrs.get("priority")
            bias = attr.value if attr is not None else self.biases.get(attrs["task"].value, 0)
            return 1 + bias
        cost = self.costs.get(id(node))
        if cost is None:
            cost = self.costs[id(node)] = self._cost(node)
        return cost

    def _cost(self, node: ir.Node) -> int:
        graphs = self.bodies.get(id(node), [])
        if node.domain == NAMU_DOMAIN and node.op_type == "Fused":  # its calls run one after another
            for graph in graphs:
                self.length(graph)  # ranks its nodes (and finds their subgraphs)
            return sum(self.cost(inner) for graph in graphs for inner in graph)
        if graphs:
            return max(self.length(g) for g in graphs)
        function = self.functions.get((node.domain, node.op_type, node.overload))
        return self.length(function) if function is not None else 0

    def length(self, graph: ir.Graph) -> int:
        """The critical path of ``graph``: its highest rank (0 when empty)."""
        length = self.lengths.get(id(graph))
        if length is None:
            self.lengths[id(graph)] = 0  # a (malformed) recursive function call costs 0
            length = self.lengths[id(graph)] = self._rank(graph)
        return length

    def _rank(self, graph: ir.Graph) -> int:
        """Rank ``graph``'s nodes in one reverse sweep (the nodes are in topological order):
        a node's rank is its cost plus the best rank among the readers of its outputs,
        which the readers, visited first, left in ``below``."""
        below: dict[int, int] = {}  # id(value) -> highest rank among its readers so far
        readers_rank = below.get
        nodes = list(graph)
        ranks = self.ranks[id(graph)] = [0] * len(nodes)
        for i in range(len(nodes) - 1, -1, -1):
            node = nodes[i]
            graphs = subgraphs(node)
            if graphs:
                self.bodies[id(node)] = graphs
            rank = 0
            for out in node.outputs:
                rank = max(rank, readers_rank(id(out), 0))
            rank += self.cost(node)
            ranks[i] = rank
            for value in [*node.inputs, *node_captures(node)] if graphs else node.inputs:
                if value is not None and readers_rank(id(value), -1) < rank:
                    below[id(value)] = rank
        return max(ranks, default=0)

    def stamp(self, graph: ir.Graph, offset: int) -> None:
        """Stamp ``graph``'s nodes with their rank plus ``offset`` (the rank of what follows
        the node enclosing ``graph``), and their subgraphs likewise."""
        self.length(graph)
        for node, rank in zip(graph, self.ranks[id(graph)]):
            priority = rank + offset
            text = str(priority)
            metadata = node.metadata_props
            if metadata.get(PRIORITY_KEY) != text:
                metadata[PRIORITY_KEY] = text
                self.changed += 1
            self.stamped += 1
            for inner in self.bodies.get(id(node), ()):
                self.stamp(inner, priority - self.cost(node))
