"""Rewire an IR graph: make the readers of one value read another, keeping names right.

Passes that replace a computation by an equal value (a folded constant, an earlier equal
computation, a loop's initial values, an inlined branch's results) share three rules:

* graph outputs keep their names (the signature and later passes refer to them), and
  stay produced inside their own graph (namu's convention; the ONNX checker's too);
* SSA names stay unique across the whole model;
* a node that is dropped lets go of the values it reads, including through its
  subgraphs, so ``Value.uses()`` stays exact for the passes that follow.

:func:`remove_dead` is the sweeper of ``eliminate-dead-code``: it removes nodes whose
results nobody reads and whose removal nothing can observe.

Costs are proportional to the values and nodes touched, never to the graph's size
(:class:`Names` walks the model once, when first asked for a name).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import onnx_ir as ir

from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.scopes import graphs, node_captures, subgraphs
from namu.ir.types import set_type, type_of
from namu.passes.effects import CANNOT_RAISE, CONTROL_FLOW

__all__ = ["Names", "adopt", "detach", "forward", "is_dead", "remove_dead", "replace_node"]


def adopt(old: ir.Value, new: ir.Value) -> None:
    """``new`` (a value of a fresh or moved node) takes ``old``'s name and readers.

    Graph outputs that were ``old`` become ``new``. The caller then drops ``old``'s
    producer. ``new`` must not be an output of another graph.
    """
    new.name = old.name
    old.replace_all_uses_with(new, replace_graph_outputs=True)


def forward(old: ir.Value, new: ir.Value, graph: ir.Graph, before: ir.Node) -> ir.Node | None:
    """Make every reader of ``old`` (an output of a node of ``graph``) read ``new``.

    When ``old`` is an output of ``graph``, an ``Identity(new)`` inserted before
    ``before`` takes its place and its name instead, so the output keeps its name and is
    still produced inside ``graph`` (``new`` may live in an enclosing scope, or be an
    output already). The caller then drops ``old``'s producer.

    Returns:
        The ``Identity`` node inserted, or None.
    """
    if not (old.is_graph_output() and old.graph is graph):
        old.replace_all_uses_with(new)
        return None
    vtype = type_of(old)
    producer = old.producer()
    identity = ir.Node(
        "" if vtype.is_onnx else NAMU_DOMAIN,
        "Identity",
        [new],
        outputs=[ir.Value(name=old.name)],
        name=f"{producer.name}_identity" if producer is not None and producer.name else None,
    )
    if producer is not None:
        identity.metadata_props.update(producer.metadata_props)
    set_type(identity.outputs[0], vtype)
    graph.insert_before(before, identity)
    old.replace_all_uses_with(identity.outputs[0], replace_graph_outputs=True)
    return identity


def replace_node(graph: ir.Graph, node: ir.Node, values: Sequence[ir.Value]) -> int:
    """Replace ``node`` of ``graph`` by existing values, one per output, and drop it.

    Readers of each output read the matching value; outputs that are graph outputs keep
    their names through an ``Identity`` (:func:`forward`). The node and its subgraphs
    let go of what they read.

    Returns:
        How many ``Identity`` nodes were inserted.
    """
    inserted = 0
    for old, new in zip(node.outputs, values, strict=True):
        inserted += forward(old, new, graph, node) is not None
    detach(node)
    graph.remove(node, safe=True)
    return inserted


def detach(node: ir.Node) -> None:
    """Disconnect every node of ``node``'s subgraphs (recursively) from the values it reads.

    Call it before dropping a node with subgraphs (``graph.remove(..., safe=True)``
    detaches only the node's own inputs); otherwise outer values keep the readers of a
    body that no longer exists.
    """
    for graph in subgraphs(node):
        for inner in graph:
            detach(inner)
            for i, value in enumerate(inner.inputs):
                if value is not None:
                    inner.replace_input_with(i, None)


def remove_dead(nodes: Iterable[ir.Node], pure_tasks: frozenset[str]) -> int:
    """Remove each of ``nodes`` that is dead, then whatever that makes dead, transitively.

    A node is dead when none of its outputs is read (by a node, or as a graph output)
    and removing it is unobservable (:func:`is_dead`). A removed node lets go of the
    values it reads -- its bodies' reads of enclosing scopes included -- and the
    producers of those values are judged next, so a dead chain goes in one call.

    Args:
        nodes: the candidates, readers before producers (e.g. a graph's nodes reversed,
            or ``reversed(walk(model))``: bodies then come before their op); nodes no
            longer in a graph are skipped.
        pure_tasks: keys of the tasks declared ``pure=True`` (their calls have no effect).

    Returns:
        How many nodes were removed.
    """
    removed = 0
    for candidate in nodes:
        stack = [candidate]
        while stack:
            node = stack.pop()
            graph = node.graph
            if graph is None or not is_dead(node, pure_tasks):
                continue
            read = [*node.inputs, *node_captures(node)]
            detach(node)
            graph.remove(node, safe=True)
            removed += 1
            stack.extend(p for v in read if v is not None and (p := v.producer()) is not None)
    return removed


def is_dead(node: ir.Node, pure_tasks: frozenset[str]) -> bool:
    """No output of ``node`` is read (by a node, or as a graph output), and removing it is
    unobservable: it is a call of a task in ``pure_tasks``, a control-flow op whose
    bodies hold only such nodes, or a builtin op that cannot raise
    (``namu.passes.effects.CANNOT_RAISE``): a workflow must fail where the plain Python
    function fails."""
    for out in node.outputs:
        if out.is_graph_output() or out.uses():
            return False
    return not _has_effect(node, pure_tasks)


def _has_effect(node: ir.Node, pure_tasks: frozenset[str]) -> bool:
    """True unless removing ``node`` is unobservable: it neither has a side effect nor
    can raise (Python would raise even if the result is unused)."""
    if node.domain == NAMU_DOMAIN and node.op_type == "Task":
        return node.attributes["task"].as_string() not in pure_tasks
    if (node.domain, node.op_type) in CONTROL_FLOW:
        return any(_has_effect(inner, pure_tasks) for body in subgraphs(node) for inner in body)
    return (node.domain, node.op_type) not in CANNOT_RAISE


class Names:
    """Model-wide unique names for new values, nodes and graphs.

    The names in use -- of values, nodes and graphs, at any depth -- are collected on
    the first call to :meth:`fresh` (one walk over the model), so a pass that never adds
    anything pays nothing. Fresh names are ``hint``, ``hint_1``, ``hint_2``, ...: the
    first not in use (amortized O(1) per name).
    """

    def __init__(self, model: ir.Model) -> None:
        self._model = model
        self._used: set[str] | None = None
        self._next: dict[str, int] = {}

    def _collect(self) -> set[str]:
        used: set[str | None] = set()
        add = used.add
        for graph in graphs(self._model):
            add(graph.name)
            used.update(v.name for v in graph.inputs)
            used.update(graph.initializers)
            for node in graph:
                add(node.name)
                for value in node.outputs:
                    add(value.name)
        used.discard(None)
        used.discard("")
        return used  # type: ignore[return-value]

    def fresh(self, hint: str) -> str:
        """A name not used anywhere in the model, based on ``hint``."""
        if self._used is None:
            self._used = self._collect()
        name, i = hint, self._next.get(hint, 1)
        while name in self._used:
            name = f"{hint}_{i}"
            i += 1
        self._next[hint] = i
        self._used.add(name)
        return name
