"""``synthesize-wire-ops``: carry values between placements over paired Send/Recv ops."""

from __future__ import annotations

import logging
from collections import defaultdict

import onnx_ir as ir

from namu.ir.metadata import PLACEMENT_KEY, SPAN_KEY
from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.scopes import node_captures
from namu.ir.types import set_type, type_of
from namu.passes.base import Example, NamuPass
from namu.passes.infer_placement import ensure_placed, op_index, placement_of
from namu.passes.registry import register
from namu.passes.rewire import Names

__all__ = ["SynthesizeWireOpsPass", "wire_problem"]

logger = logging.getLogger(__name__)


@register(
    "synthesize-wire-ops",
    "values cross placements only through paired namu.Send / namu.Recv ops",
    after=("infer-placement",),
    level=0,
)
class SynthesizeWireOpsPass(NamuPass):
    """Put a ``namu.Send`` / ``namu.Recv`` pair on every edge between two placements.

    For every value of the main graph read by ops of another placement than its
    producer's (a body's op counts as its control-flow op, whose placement it shares),
    the pass adds ``namu.Send(value) <channel, to>`` at the producer's placement, right
    after the producer, and ``namu.Recv() <channel, from>`` at the reader's placement,
    right before the first reader, and the readers of that placement read the Recv's
    output instead. There is **one pair per (value, destination placement)**, however
    many ops read it there. Graph inputs are produced, and graph outputs read, at the
    default placement (the caller).

    The channel is ``"<value name>@<destination>"``: unique (SSA names are unique and
    there is one pair per value and destination) and deterministic. The Recv's output
    is named ``<value name>_<destination>`` and typed like the value; a graph output
    keeps its name (the Recv's output takes it, and the value sent is renamed
    ``<name>_<source>``). Wire ops sit in the main graph only, so each runs exactly once
    per run.

    Placements come from ``infer-placement`` (``namu.placement``); on IR that has none
    the pass places it first with the same rule.

    Guarantees:
        every op reads only values produced at its own placement (a graph input counts
            as produced at the default placement);
        graph outputs are produced at the default placement;
        in the node order every Send comes before its Recv.
    """

    EXAMPLE = Example(
        before="""
        g (int64 x) => (int64 y) {
          e = namu.Task <task = "embed", placement = "gpu"> (x)
          y = namu.Task <task = "rank", placement = "local"> (e, x)
        }""",
        after="""
        g (int64 x) => (int64 y) {
          = namu.Send <channel = "x@gpu", to = "gpu"> (x)
          x_gpu = namu.Recv <channel = "x@gpu", from = "local"> ()
          e = namu.Task <task = "embed", placement = "gpu"> (x_gpu)
          = namu.Send <channel = "e@local", to = "local"> (e)
          e_local = namu.Recv <channel = "e@local", from = "gpu"> ()
          y = namu.Task <task = "rank", placement = "local"> (e_local, x)
        }""",
        impure_tasks=("embed", "rank"),
        note="`x` goes to `gpu` and `embed`'s result comes back; `rank` reads `x` where it is.",
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        ensure_placed(model, self.context)
        default = self.context.config.placement
        if all(placement_of(node, default) == default for node in model.graph):
            return self.result(model)  # one placement: nothing crosses
        wiring = _Wiring(model, default)
        wiring.run()
        self.changed(wiring.pairs)
        logger.debug("added %d Send/Recv pairs", wiring.pairs)
        return self.result(model)

    def ensures(self, model: ir.Model) -> None:
        problem = wire_problem(model.graph, self.context.config.placement)
        if problem:
            self.broken(problem)
        sent: set[str] = set()
        for node in model.graph:
            if node.domain == NAMU_DOMAIN and node.op_type in ("Send", "Recv"):
                channel = node.attributes["channel"].as_string()
                if node.op_type == "Send":
                    sent.add(channel)
                elif channel not in sent:
                    self.broken(f"the Recv of channel {channel!r} comes before its Send", node)


def wire_problem(graph: ir.Graph, default: str) -> str:
    """What makes ``graph`` (a main graph) read a value across placements without a
    ``namu.Recv``, or produce an output elsewhere than at ``default``; "" when nothing
    does. A body's reads count as its op's; graph inputs are produced at ``default``."""
    produced: dict[int, str] = {id(v): default for v in graph.inputs}
    for node in graph:
        place = placement_of(node, default)
        for value in (*node.inputs, *node_captures(node)):
            if value is not None and produced.get(id(value), place) != place:
                return (
                    f"{node.op_type} at placement {place!r} reads {value.name!r}, produced at "
                    f"{produced[id(value)]!r}, without a namu.Recv"
                )
        for value in node.outputs:
            produced[id(value)] = place
    for value in graph.outputs:
        if produced.get(id(value), default) != default:
            return f"graph output {value.name!r} is produced at {produced[id(value)]!r}, not at the default placement {default!r}"
    return ""


class _Wiring:
    """One run of the pass over the main graph of ``model``."""

    def __init__(self, model: ir.Model, default: str) -> None:
        self.graph = model.graph
        self.default = default
        self.nodes = list(self.graph)
        #: node (or node nested in a body) -> index of its op in the main graph
        self.index = op_index(self.nodes)
        self.places = [placement_of(n, default) for n in self.nodes]
        self.names = Names(model)
        self.pairs = 0
        # where the new ops go: Sends after their producer (-1: at the start), Recvs
        # before their first reader (len(nodes): at the end, for graph outputs)
        self.sends: defaultdict[int, list[ir.Node]] = defaultdict(list)
        self.recvs: defaultdict[int, list[ir.Node]] = defaultdict(list)

    def run(self) -> None:
        outputs: defaultdict[int, list[int]] = defaultdict(list)
        for k, value in enumerate(self.graph.outputs):
            outputs[id(value)].append(k)
        for value in self.graph.inputs:
            self._wire(value, -1, self.default, outputs.get(id(value), []))
        for i, node in enumerate(self.nodes):
            for value in node.outputs:
                self._wire(value, i, self.places[i], outputs.get(id(value), []))
        if not self.pairs:
            return
        start = self.sends.pop(-1, [])
        end = self.recvs.pop(len(self.nodes), [])
        if self.nodes:
            self.graph.insert_before(self.nodes[0], start)
        else:
            self.graph.extend(start)
        for i, recvs in self.recvs.items():
            self.graph.insert_before(self.nodes[i], recvs)
        for i, sends in self.sends.items():
            self.graph.insert_after(self.nodes[i], sends)
        self.graph.extend(end)

    def _wire(self, value: ir.Value, producer: int, source: str, output_slots: list[int]) -> None:
        """Route ``value``'s readers in other placements through one Recv per placement."""
        readers: dict[str, list[tuple[ir.Node, int]]] = {}
        first: dict[str, int] = {}
        for use in value.uses():
            i = self.index[id(use.node)]
            place = self.places[i]
            if place != source:
                readers.setdefault(place, []).append((use.node, use.idx))
                first[place] = min(first.get(place, i), i)
        if output_slots and source != self.default:
            readers.setdefault(self.default, [])
            first.setdefault(self.default, len(self.nodes))
        for place in sorted(readers, key=first.__getitem__):
            received = self._pair(value, producer, source, place, first[place])
            for node, slot in readers[place]:
                node.replace_input_with(slot, received)
            if place == self.default and output_slots:
                # graph outputs keep their names: the value sent takes a new one
                name = value.name
                value.name = self.names.fresh(f"{name}_{source}")
                received.name = name
                for k in output_slots:
                    self.graph.outputs[k] = received

    def _pair(self, value: ir.Value, producer: int, source: str, dest: str, reader: int) -> ir.Value:
        """Add the Send/Recv pair carrying ``value`` from ``source`` to ``dest``; return
        the Recv's output."""
        channel = f"{value.name}@{dest}"
        send = ir.Node(
            NAMU_DOMAIN,
            "Send",
            [value],
            attributes=[ir.AttrString("channel", channel), ir.AttrString("to", dest)],
            num_outputs=0,
            name=f"send_{channel}",
        )
        recv = ir.Node(
            NAMU_DOMAIN,
            "Recv",
            [],
            attributes=[ir.AttrString("channel", channel), ir.AttrString("from", source)],
            num_outputs=1,
            name=f"recv_{channel}",
        )
        received = recv.outputs[0]
        received.name = self.names.fresh(f"{value.name}_{dest}")
        set_type(received, type_of(value))
        reader_node = self.nodes[reader] if reader < len(self.nodes) else None
        producer_node = self.nodes[producer] if producer >= 0 else reader_node
        for node, place, at in ((send, source, producer_node), (recv, dest, reader_node or producer_node)):
            node.metadata_props[PLACEMENT_KEY] = place
            if at is not None and SPAN_KEY in at.metadata_props:
                node.metadata_props[SPAN_KEY] = at.metadata_props[SPAN_KEY]
        self.sends[producer].append(send)
        self.recvs[reader].append(recv)
        self.pairs += 1
        return received
