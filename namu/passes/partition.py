"""``partition``: split the workflow into one installable function per placement."""

from __future__ import annotations

import json
import logging

import onnx_ir as ir

from namu.errors import CompileError, IRVerificationError
from namu.ir.metadata import HANDLERS_KEY, PLACEMENT_KEY, SPAN_KEY
from namu.ir.opsets import NAMU_DOMAIN, PARTITION_DOMAIN
from namu.ir.scopes import node_captures, subgraphs, walk
from namu.ir.types import ValueType, set_type, type_of, value_like
from namu.passes.base import Example, NamuPass, fail
from namu.passes.infer_placement import ensure_placed, is_fanout, placement_of
from namu.passes.registry import register
from namu.passes.rewire import Names
from namu.passes.synthesize_wire_ops import SynthesizeWireOpsPass, wire_problem

__all__ = ["PARTITIONS_KEY", "PartitionPass"]

logger = logging.getLogger(__name__)

#: model metadata: JSON list of the placements, one ``namu.partition`` function each;
#: the default placement (the caller's partition) first, then the others by name.
PARTITIONS_KEY = "namu.partitions"


@register(
    "partition",
    "one namu.partition function per placement; the main graph launches the default one",
    after=("synthesize-wire-ops",),
    level=0,
)
class PartitionPass(NamuPass):
    """Split the main graph at its wire ops into one ``FunctionProto`` per placement.

    Each placement ``P`` becomes the function ``namu.partition.P`` holding the ops placed
    there (their bodies with them), in the order they had in the unpartitioned graph --
    a global topological order, in which every ``Send`` precedes its ``Recv``. The
    **default** partition takes the workflow's inputs and returns its outputs; every
    other partition has neither and exchanges values only through wire ops. Each
    function is self-contained: an installable target for the machine, pool or peer
    class of its placement. The main graph becomes the **launcher**,
    ``(inputs) => (outputs) { outputs = namu.partition.<default>(inputs) }``, so the
    model stays a valid ONNX model; model metadata ``namu.partitions`` lists every
    partition (the default first, then by name), and the runtime starts the others.

    **Why one process cannot deadlock.** Let every partition run its ops one at a time
    in its stored order, a ``Recv`` blocking until its ``Send`` ran and a ``Send``
    never blocking. Suppose all unfinished partitions wait. Take the waiting ``Recv``
    ``r`` that is earliest in the global order; its ``Send`` ``s`` comes before ``r``
    in that order, in another partition ``Q``. ``Q`` has finished, or waits at a
    ``Recv`` no earlier than ``r`` (``r`` is the earliest); either way it ran every op of
    its own before that point, ``s`` included: ``r``'s value was sent, a contradiction. Partitions with
    blocking receives and non-blocking sends form a Kahn process network (G. Kahn, "The
    Semantics of a Simple Language for Parallel Programming", 1974), so the results do
    not depend on how the threads interleave. The reference executor runs partitions
    exactly so; the kernel runs a ``Recv`` as an awaitable and never blocks on it, so it
    only follows data dependencies, which the global order proves acyclic.

    **Remote fan-outs** (``infer-placement``: a fan-out whose body runs at placement
    ``P``, nested in control flow of another placement, as a federated server's round
    loop sends each client its work) are split at the fan-out: its body becomes a request
    handler, ``namu.Handle <channel> <body>``, in the **handler partition**
    ``namu.partition.P`` (no inputs; one ``Handle`` per remote fan-out to ``P``, e.g.
    training and evaluation, each output, the channel it serves, a partition output). A handler's body takes the item and the values
    the fan-out's body read from outside (made explicit) and returns the item's results;
    a peer of class ``P`` runs it once per request on its channel. In the fan-out's place
    the enclosing body gets the wire pair ``namu.Scatter <channel, to = P, label>(items,
    values...)`` -- one request per item, to the peer the item names; ``label`` is the
    body's first task, for progress displays -- and
    ``namu.Gather <channel, from = P>(exchange)``, the replies in item order. Model
    metadata ``namu.handlers`` maps each handler placement to its channels. The split is
    the one Flower makes between a
    strategy (server) and a client app, and bytesandbrains between per-peer functions at
    wire ops; here the compiler finds the cut from placements.

    With a single placement (every op at the default) the pass changes nothing.

    Guarantees:
        with several placements, the main graph holds exactly one node, a call of the
            default partition;
        every op lives in the function of its placement, in the global order;
        no partition reads a value another partition produced, except through ``Recv``.

    Raises:
        IRVerificationError: an op reads a value produced at another placement without
            a wire op (``synthesize-wire-ops`` did not run).
        CompileError: a placement has both handlers and ops of the main graph (a peer
            class serves requests only); at the fan-out's line.
    """

    EXAMPLE = Example(
        before=SynthesizeWireOpsPass.EXAMPLE.after,  # what the pass before this one makes
        after="""
        g (int64 x) => (int64 y) { y = namu.partition.local(x) }
        <domain: "namu.partition", opset_import: ["" : 21, "namu" : 1, "namu.partition" : 1]>
        local (x) => (y) {
          = namu.Send <channel = "x@gpu", to = "gpu"> (x)
          e_local = namu.Recv <channel = "e@local", from = "gpu"> ()
          y = namu.Task <task = "rank", placement = "local"> (e_local, x)
        }
        <domain: "namu.partition", opset_import: ["" : 21, "namu" : 1, "namu.partition" : 1]>
        gpu () => () {
          x_gpu = namu.Recv <channel = "x@gpu", from = "local"> ()
          e = namu.Task <task = "embed", placement = "gpu"> (x_gpu)
          = namu.Send <channel = "e@local", to = "local"> (e)
        }""",
        impure_tasks=("embed", "rank"),
        note="The input is `synthesize-wire-ops`' example output. The main graph shown is the launcher; "
        "the two partitions are model functions.",
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        ensure_placed(model, self.context)
        default = self.context.config.placement
        graph = model.graph
        nodes = list(graph)
        groups: dict[str, list[ir.Node]] = {default: []}
        for node in nodes:
            groups.setdefault(placement_of(node, default), []).append(node)
        handlers = _RemoteFanouts(model, default).split(set(groups))
        self.changed(len(handlers))
        if len(groups) == 1 and not handlers:
            return self.result(model)
        problem = wire_problem(graph, default)
        if problem:
            raise IRVerificationError(f"{problem}: run synthesize-wire-ops before partition")
        order = [default, *sorted(p for p in (*groups, *handlers) if p != default)]
        if handlers:
            model.metadata_props[HANDLERS_KEY] = json.dumps(handlers, sort_keys=True)

        inputs, outputs = list(graph.inputs), list(graph.outputs)
        graph.remove(nodes)
        graph.inputs.clear()
        graph.outputs.clear()
        model.opset_imports.setdefault(PARTITION_DOMAIN, 1)
        for place in order:
            if place in handlers:
                continue  # made by the split
            is_default = place == default
            body = ir.Graph(
                inputs if is_default else [],
                outputs if is_default else [],
                nodes=groups[place],
                name=place,
                opset_imports=dict(model.opset_imports),
            )
            model.functions[(PARTITION_DOMAIN, place, "")] = ir.Function(PARTITION_DOMAIN, place, graph=body, attributes=[])
            self.changed()

        launcher_inputs = [value_like(v) for v in inputs]
        call = ir.Node(PARTITION_DOMAIN, default, launcher_inputs, num_outputs=len(outputs), name=f"launch_{default}")
        call.metadata_props[PLACEMENT_KEY] = default
        for new, old in zip(call.outputs, outputs):
            new.name = old.name
            set_type(new, type_of(old))
        graph.inputs.extend(launcher_inputs)
        graph.append(call)
        graph.outputs.extend(call.outputs)
        model.metadata_props[PARTITIONS_KEY] = json.dumps(order)
        logger.debug("partitioned %d ops into %s", len(nodes), order)
        return self.result(model)

    def ensures(self, model: ir.Model) -> None:
        order = json.loads(model.metadata_props.get(PARTITIONS_KEY, "[]"))
        if len(order) < 2:
            return
        launcher = list(model.graph)
        if len(launcher) != 1 or (launcher[0].domain, launcher[0].op_type) != (PARTITION_DOMAIN, order[0]):
            self.broken(f"the main graph is not one call of the default partition {order[0]!r}")
        for place in order:
            function = model.functions.get((PARTITION_DOMAIN, place, ""))
            if function is None:
                self.broken(f"partition {place!r} has no function")
            body = function.graph
            for node in body:
                for value in (*node.inputs, *node_captures(node)):
                    producer = value.producer() if value is not None else None
                    if producer is not None and producer.graph is not body:
                        self.broken(f"partition {place!r} reads {value.name!r} from another partition", node)


class _RemoteFanouts:
    """Splits the remote fan-outs of ``model`` (see :class:`PartitionPass`)."""

    def __init__(self, model: ir.Model, default: str) -> None:
        self.model = model
        self.default = default
        self.names = Names(model)

    def split(self, main_placements: set[str]) -> dict[str, list[str]]:
        """Split every remote fan-out; return handler placement -> its channels."""
        handles: dict[str, list[ir.Node]] = {}
        for node in walk(self.model):
            outer = placement_of(node, self.default)
            for body in subgraphs(node):
                for inner in list(body):
                    place = placement_of(inner, self.default)
                    if not is_fanout(inner) or place == outer:
                        continue
                    if place in main_placements:
                        fail(
                            inner,
                            f"this fan-out runs at placement {place!r} for control flow at {outer!r}, and other ops of "
                            f"the workflow run at {place!r} too: a peer class serves requests only; move those ops "
                            "into a task of another placement",
                            error=CompileError,
                        )
                    handles.setdefault(place, []).append(self._split(body, inner, outer, place))
        for place, nodes in handles.items():  # the partition returns the channels it serves
            graph = ir.Graph([], [n.outputs[0] for n in nodes], nodes=nodes, name=place,
                             opset_imports=dict(self.model.opset_imports))
            self.model.functions[(PARTITION_DOMAIN, place, "")] = ir.Function(PARTITION_DOMAIN, place, graph=graph, attributes=[])
        return {place: [n.attributes["channel"].as_string() for n in nodes] for place, nodes in handles.items()}

    def _split(self, graph: ir.Graph, fanout: ir.Node, outer: str, place: str) -> ir.Node:
        """Replace ``fanout`` (in ``graph``) by a Scatter/Gather pair; return the
        ``namu.Handle`` holding its body, for the handler partition of ``place``."""
        body = fanout.attributes["body"].as_graph()
        captured = node_captures(fanout)
        inside = {id(n) for n in walk(body)}
        params: list[ir.Value] = []
        for value in captured:
            param = value_like(value, self.names.fresh(f"{value.name}_{place}"))
            for use in list(value.uses()):
                if id(use.node) in inside:
                    use.node.replace_input_with(use.idx, param)
            params.append(param)
        inputs, outputs, nodes = list(body.inputs), list(body.outputs), list(body)
        body.remove(nodes)
        body.inputs.clear()
        body.outputs.clear()
        result = fanout.outputs[0].name if fanout.outputs else "items"
        channel = f"{result}@{place}"
        handler = ir.Graph([*inputs, *params], outputs, nodes=nodes, name=self.names.fresh(f"handle_{result}"))
        handle = ir.Node(NAMU_DOMAIN, "Handle", [], attributes=[ir.AttrString("channel", channel), ir.AttrGraph("body", handler)],
                         num_outputs=1, name=self.names.fresh(f"handle_{result}"))
        handle.outputs[0].name = self.names.fresh(f"{result}_handler")
        set_type(handle.outputs[0], ValueType.str())

        tasks = [n.attributes["task"].as_string() for n in walk(handler) if n.op_type == "Task" and n.domain == NAMU_DOMAIN]
        scatter = ir.Node(
            NAMU_DOMAIN, "Scatter", [fanout.inputs[0], *captured],
            attributes=[ir.AttrString("channel", channel), ir.AttrString("to", place),
                        ir.AttrString("label", tasks[0] if tasks else result)],
            num_outputs=1, name=self.names.fresh(f"scatter_{result}"),
        )
        scatter.outputs[0].name = self.names.fresh(f"{result}_exchange")
        set_type(scatter.outputs[0], ValueType.opaque())
        flatten = fanout.attributes.get("flatten")
        gather = ir.Node(
            NAMU_DOMAIN, "Gather", [scatter.outputs[0]],
            attributes=[ir.AttrString("channel", channel), ir.AttrString("from", place),
                        ir.AttrInt64("flatten", flatten.as_int() if flatten is not None else 0)],
            num_outputs=len(fanout.outputs), name=self.names.fresh(f"gather_{result}"),
        )
        for new, old in zip(gather.outputs, fanout.outputs):
            set_type(new, type_of(old))
        for node, where in ((scatter, outer), (gather, outer), (handle, place)):
            node.metadata_props[PLACEMENT_KEY] = where
            if SPAN_KEY in fanout.metadata_props:
                node.metadata_props[SPAN_KEY] = fanout.metadata_props[SPAN_KEY]
        ir.convenience.replace_nodes_and_values(
            graph, fanout, [fanout], [scatter, gather], list(fanout.outputs), list(gather.outputs)
        )
        return handle
