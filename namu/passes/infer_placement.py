"""``infer-placement``: decide where every op runs (the process, worker pool or peer class).

A placement is a name (``"local"``, ``"gpu"``, ``"server"``): ``@namu.task(placement=...)``
annotates tasks, and everything else follows the data. Later passes read the result from
each node's ``namu.placement`` metadata: ``synthesize-wire-ops`` puts a wire on every edge
between two placements and ``partition`` splits the graph by placement.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import onnx_ir as ir

from namu.errors import CompileError
from namu.ir.attrs import attributes_of
from namu.ir.metadata import PLACEMENT_KEY, TaskTable
from namu.ir.opsets import NAMU_DOMAIN, WORKFLOW_DOMAIN
from namu.ir.scopes import callees_first, node_captures, subgraphs, walk
from namu.passes.base import Example, NamuPass, PassContext, fail
from namu.passes.registry import register

__all__ = ["InferPlacementPass", "ensure_placed", "is_fanout", "op_index", "placement_of"]

logger = logging.getLogger(__name__)

# What the user wrote, for the mixed-placement error.
_CONSTRUCT = {"If": "branch", "Loop": "loop", "Map": "fan-out", "Fused": "fused task group", "Gate": "guarded op"}


@register(
    "infer-placement",
    "every op has a placement (`namu.placement`): tasks where annotated, other ops with the data they use",
    after=("expand-defaults", "fuse-tasks"),
    level=0,
)
class InferPlacementPass(NamuPass):
    """Give every op of the model a placement, stored as ``namu.placement`` node metadata.

    **Anchors.** A ``namu.Task`` runs where it is annotated: its ``placement`` attribute
    (filled by ``expand-defaults`` from ``@namu.task(placement=...)``), else the task
    table's option, else the compile's default placement (``CompileConfig.placement``,
    ``"local"``: the process that called the workflow). A control-flow op (``If``,
    ``Loop``, ``namu.Map``), a ``namu.Fused`` or ``namu.Gate`` group, or a sub-workflow
    call runs as **one unit**: if the tasks in its bodies (at any depth) share one
    placement, the op is anchored there, and every node of its bodies gets the op's
    placement.

    **Data flow.** Every other op of the main graph (builtin ops, constants, ``Unpack``,
    ``namu.Slot`` calls, control flow without tasks, ...) is placed, in this order of
    preference:

    1. with its **consumers**, when every op reading one of its results has a placement
       by this rule and all share one; the graph outputs count as consumers at the
       default placement (the caller reads them). Decided in one backward sweep, so a
       chain of ops feeding a ``gpu`` task moves to ``gpu`` with it;
    2. else with its **producers**, when all ops whose results it reads (its inputs and
       the values its bodies capture) share one placement; graph inputs count as
       produced at the default placement. Decided in one forward sweep;
    3. else at the **default placement**.

    So data is carried to where it is used, and an op used in several placements stays
    with the data it reads, which is moved once. This is the colocation rule of
    TensorFlow's placer (``tensorflow/core/common_runtime/placer.cc``: an input-less
    "generator" op goes with its consumer, a metadata op with its input) and the
    locality preference of Ray's scheduler (a task goes where its arguments are). Two
    linear sweeps over the main graph, one over every body.

    Nodes of sub-workflow functions left in the model get the placement of their tasks,
    else the default placement.

    Guarantees:
        every node of the main graph, of its bodies and of the model's functions has
            ``namu.placement``;
        the nodes of a body share their op's placement.

    Raises:
        CompileError: a control-flow op, a group or a kept sub-workflow runs tasks of
            two placements in its bodies; the message names both placements, the tasks
            and the line of the op (of the sub-workflow's first call).
    """

    EXAMPLE = Example(
        before="""
        g (seq(int64) xs) => (seq(int64) ys) {
          ys = namu.Map (xs) <body = b (int64 x) => (int64 z) {
            e = namu.Task <task = "embed", placement = "gpu"> (x)
            z = namu.Task <task = "score", placement = "local"> (e)
          }>
        }""",
        error="CompileError: this fan-out runs tasks in two placements, 'gpu' (embed) and 'local' (score)",
        impure_tasks=("embed", "score"),
        note="A fan-out is placed as one unit: its body must not mix placements.",
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        placer = Placer.for_model(model, self.context)
        self.changed(placer.place_model(model))
        logger.debug("placed %d nodes (%d changed)", placer.placed, self.changes)
        return self.result(model)

    def ensures(self, model: ir.Model) -> None:
        for node in walk(model):
            place = node.metadata_props.get(PLACEMENT_KEY)
            if place is None:
                self.broken(f"{node.op_type} has no placement", node)
            for body in subgraphs(node):
                for inner in body:
                    if inner.metadata_props.get(PLACEMENT_KEY) != place and not is_fanout(inner):
                        self.broken(f"{inner.op_type} is not placed with its {node.op_type} ({place!r})", inner)


def is_fanout(node: ir.Node) -> bool:
    """Whether ``node`` is a fan-out (``namu.Map``), the one construct that may run at
    another placement than the body holding it (a remote fan-out)."""
    return node.op_type == "Map" and node.domain == NAMU_DOMAIN


def placement_of(node: ir.Node, default: str) -> str:
    """``node``'s placement (``namu.placement``), or ``default`` if it has none."""
    return node.metadata_props.get(PLACEMENT_KEY, default)


def op_index(nodes: list[ir.Node]) -> dict[int, int]:
    """``id(node)`` -> its index in ``nodes``, and ``id(n)`` -> the index of its op for every
    node ``n`` nested in the bodies of ``nodes`` (a body's op runs where its op runs)."""
    return _op_index(nodes, [_nested(subgraphs(node)) for node in nodes])


def _op_index(nodes: list[ir.Node], nested: list[list[ir.Node]]) -> dict[int, int]:
    index: dict[int, int] = {}
    for i, (node, inner_nodes) in enumerate(zip(nodes, nested)):
        index[id(node)] = i
        for inner in inner_nodes:
            index[id(inner)] = i
    return index


def ensure_placed(model: ir.Model, context: PassContext) -> None:
    """Place the model (as ``infer-placement`` does) unless every op of its main graph
    already has a placement: lets later passes run on hand-written IR."""
    if any(PLACEMENT_KEY not in node.metadata_props for node in model.graph):
        Placer.for_model(model, context).place_model(model)


class Placer:
    """Computes and records placements; see :class:`InferPlacementPass` for the rule.

    Args:
        default: the default placement.
        task_placements: task-table key -> the placement option of tasks that set one.
        functions: the model's sub-workflow functions by name.
    """

    def __init__(self, default: str, task_placements: Mapping[str, str], functions: Mapping[str, ir.Function]) -> None:
        self.default = default
        self.task_placements = task_placements
        self.functions = functions
        self._function_units: dict[str, tuple[str, ir.Node] | None] = {}
        #: id -> (node, placement) of every remote fan-out found (see the pass's doc)
        self.remote: dict[int, tuple[ir.Node, str]] = {}
        #: nodes labelled by the last :meth:`place_model`
        self.placed = 0
        self._changed = 0

    @classmethod
    def for_model(cls, model: ir.Model, context: PassContext) -> Placer:
        """A placer for ``model`` with the compile's default placement."""
        table = TaskTable.of(model)
        task_placements = {t.key: t.options.placement for t in table.tasks if t.options.placement}
        functions = {f.name: f for f in model.functions.values() if f.domain == WORKFLOW_DOMAIN}
        return cls(context.config.placement, task_placements, functions)

    def place_model(self, model: ir.Model) -> int:
        """Label every node of ``model``; return how many labels were added or changed."""
        self.placed = self._changed = 0
        # Each function's unit, callees first (no recursion through a chain of calls); a
        # mixed one fails at its first call, in the order the main graph meets calls.
        first_calls: dict[str, ir.Node] = {}
        for node in walk(model):
            if node.domain == WORKFLOW_DOMAIN and node.op_type in self.functions:
                first_calls.setdefault(node.op_type, node)
        for function in callees_first(model):
            if function.domain == WORKFLOW_DOMAIN and function.name in self.functions:
                self._function_unit(function.name, first_calls.get(function.name))
        self._place_graph(model.graph)
        for function in self.functions.values():
            unit = self._function_unit(function.name, None)
            place = unit[0] if unit is not None else self.default
            for node in walk(function.graph):
                self._label(node, place)
        return self._changed

    # ------------------------------------------------------------------ anchors
    def task_placement(self, node: ir.Node) -> str:
        """Where a ``namu.Task`` node runs: its attribute, else its task's option, else the default."""
        attrs = attributes_of(node)
        place = attrs.get("placement")
        if place is not None and place.value:
            return place.value
        task = attrs.get("task")
        return self.task_placements.get(task.value if task is not None else "", self.default)

    def _unit(self, node: ir.Node, bodies: list[ir.Graph] | None = None) -> tuple[str, ir.Node] | None:
        """The one placement of the tasks ``node`` runs (itself, in its ``bodies``,
        through its function) and one such task, or None when it runs no task."""
        if node.op_type == "Task" and node.domain == NAMU_DOMAIN:
            return self.task_placement(node), node
        if bodies is None:
            bodies = subgraphs(node)
        units: list[tuple[str, ir.Node] | None] = []
        if node.domain == WORKFLOW_DOMAIN and node.op_type in self.functions:
            units.append(self._function_unit(node.op_type, node))
        elif not bodies:
            return None
        fanouts: list[tuple[ir.Node, tuple[str, ir.Node] | None]] = []
        for body in bodies:
            for inner in body:
                if is_fanout(inner):
                    fanouts.append((inner, self._unit(inner)))
                else:
                    units.append(self._unit(inner))
        shared = _shared(units, node)
        for fanout, unit in fanouts:
            if unit is not None and shared is not None and unit[0] != shared[0]:
                self.remote[id(fanout)] = (fanout, unit[0])  # runs at its own placement
            else:
                shared = _shared([shared, unit], node)
        return shared

    def _function_unit(self, name: str, call: ir.Node | None) -> tuple[str, ir.Node] | None:
        """The unit of the function ``name`` (computed once); a mixed one fails at ``call``
        (the first call met), or at its body's task when it has none."""
        if name not in self._function_units:
            self._function_units[name] = None  # no recursion: the frontend rejects it
            units = [self._unit(node) for node in self.functions[name].graph]
            self._function_units[name] = _shared(units, call, f"sub-workflow {name!r}")
        return self._function_units[name]

    # ------------------------------------------------------------------ data flow
    def _place_graph(self, graph: ir.Graph) -> None:
        nodes = list(graph)
        bodies = [subgraphs(node) for node in nodes]
        nested = [_nested(b) for b in bodies]
        index = _op_index(nodes, nested)  # a use inside a body counts as a use by its op
        places: list[str | None] = []
        for node, node_bodies in zip(nodes, bodies):
            unit = self._unit(node, node_bodies)
            places.append(unit[0] if unit is not None else None)
        outputs = {id(v) for v in graph.outputs}

        for i in range(len(nodes) - 1, -1, -1):  # 1. with the consumers
            if places[i] is None:
                places[i] = self._consumers_placement(nodes[i], index, places, outputs)
        for i, node in enumerate(nodes):  # 2. with the producers, 3. the default
            if places[i] is None:
                producers = {
                    self.default if v.producer() is None else places[index[id(v.producer())]]
                    for v in (*node.inputs, *node_captures(node))
                    if v is not None
                }
                places[i] = producers.pop() if len(producers) == 1 else self.default  # type: ignore[assignment]

        for node, inner_nodes, place in zip(nodes, nested, places):
            assert place is not None
            self._label(node, place)
            for inner in inner_nodes:
                self._label(inner, place)
        for fanout, place in self.remote.values():  # bodies first labelled with their op's
            self._label(fanout, place)
            for inner in _nested(subgraphs(fanout)):
                self._label(inner, place)

    def _consumers_placement(
        self, node: ir.Node, index: dict[int, int], places: list[str | None], outputs: set[int]
    ) -> str | None:
        found: str | None = None
        for value in node.outputs:
            candidates: list[str | None] = [self.default] if id(value) in outputs else []
            candidates += [places[index[id(use.node)]] if id(use.node) in index else None for use in value.uses()]
            for place in candidates:
                if place is None or (found is not None and place != found):
                    return None
                found = place
        return found

    def _label(self, node: ir.Node, place: str) -> None:
        self.placed += 1
        metadata = node.metadata_props
        if metadata.get(PLACEMENT_KEY) != place:
            metadata[PLACEMENT_KEY] = place
            self._changed += 1


def _nested(bodies: list[ir.Graph]) -> list[ir.Node]:
    """Every node of ``bodies``, at any depth."""
    return [node for body in bodies for node in walk(body)] if bodies else []


def _shared(units: Iterable[tuple[str, ir.Node] | None], at: ir.Node | None, what: str = "") -> tuple[str, ir.Node] | None:
    """The one placement of ``units`` (and a task placed there), None when there is none.

    Raises:
        CompileError: two placements; at ``at`` (else at the second one's task), naming
            ``what`` runs them (default: what ``at`` is).
    """
    found: tuple[str, ir.Node] | None = None
    for unit in units:
        if unit is None:
            continue
        if found is None:
            found = unit
        elif unit[0] != found[0]:
            _mixed(at if at is not None else unit[1], found, unit, what)
    return found


def _mixed(node: ir.Node, first: tuple[str, ir.Node], second: tuple[str, ir.Node], what: str = "") -> None:
    what = what or _CONSTRUCT.get(node.op_type, "sub-workflow call" if node.domain == WORKFLOW_DOMAIN else node.op_type)
    fail(
        node,
        f"this {what} runs tasks in two placements, {first[0]!r} ({_task_name(first[1])}) and "
        f"{second[0]!r} ({_task_name(second[1])}); control flow runs as one unit in one placement: "
        f"move the {second[0]!r} work out of the {what}, or do the body's work in one @namu.task",
        error=CompileError,
    )


def _task_name(node: ir.Node) -> str:
    attr = node.attributes.get("task")
    return attr.as_string() if attr is not None else node.op_type
