"""Rewire an IR graph: make the readers of one value read another, keeping names right.

Passes that replace a computation by an equal value (a folded constant, an earlier equal
computation, a loop's initial values, an inlined branch's results) share three rules:

* graph outputs keep their names (the signature and later passes refer to them), and
  stay produced inside their own graph (namu's convention; the ONNX checker's too);
* SSA names stay unique across the whole model;
* a node that is dropped lets go of the values it reads, including through its
  subgraphs, so ``Value.uses()`` stays exact for the passes that follow.

Costs are proportional to the values and nodes touched, never to the graph's size
(:class:`Names` walks the model once, when first asked for a name).
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx_ir as ir

from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.scopes import graphs, subgraphs
from namu.ir.types import set_type, type_of

__all__ = ["Names", "adopt", "detach", "forward", "replace_node"]


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
