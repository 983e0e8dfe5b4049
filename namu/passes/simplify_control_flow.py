"""``simplify-control-flow``: constant branches inlined, zero-trip loops gone, invariants hoisted."""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx_ir as ir

from namu.ir.constants import NOT_CONSTANT, constant_value
from namu.ir.metadata import TaskTable
from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.scopes import subgraphs, top_graphs, walk
from namu.ir.types import set_type, type_of
from namu.passes.base import Example, NamuPass
from namu.passes.effects import CANNOT_RAISE, CONTROL_FLOW, FRESH_MUTABLE, OpKey, op_key, pure_tasks, task_of
from namu.passes.registry import register
from namu.passes.rewire import adopt, detach, forward, replace_node

__all__ = ["SimplifyControlFlowPass"]

logger = logging.getLogger(__name__)

_IF: frozenset[OpKey] = frozenset({("", "If"), (NAMU_DOMAIN, "If")})
_LOOP: frozenset[OpKey] = frozenset({("", "Loop"), (NAMU_DOMAIN, "Loop")})
_MAP: frozenset[OpKey] = frozenset({(NAMU_DOMAIN, "Map")})
# Builtin ops safe to run once before a loop instead of in every iteration: they cannot
# raise (so a loop that runs zero times cannot fail because of them) and do not build a
# fresh list or dict (which every iteration would otherwise get for itself).
_HOISTABLE_BUILTINS = CANNOT_RAISE - FRESH_MUTABLE


@register(
    "simplify-control-flow",
    "no If has a constant condition, no loop or fan-out provably runs zero times, loop invariants are hoisted",
    after=("fold-constants", "eliminate-dead-code"),
    group="cleanup",
    level=2,
)
class SimplifyControlFlowPass(NamuPass):
    """Rewrite control flow whose behaviour is known at compile time.

    The rewrites are data (``_RULES``), each a pattern and a replacement, applied to
    every If, Loop and ``namu.Map`` after their bodies have been simplified (so nested
    rewrites compose in one pass over the model):

    - ``If(const c)`` (standard or ``namu.If``): the branch ``c`` selects (Python
      truthiness) is inlined where the If was; its nodes read outer values directly,
      its results take the names of the If's outputs.
    - ``Loop`` with a constant trip count ``<= 0`` or a constant initial condition that
      is false: the loop goes, its outputs are the initial carried values (and empty
      tensors for scan outputs); ``namu.Map`` over a constant empty sequence (an empty
      ``SequenceEmpty``, ``namu.List``, ``namu.Tuple``, ``namu.Dict`` or string) becomes
      an empty list (``SequenceEmpty`` when the list is an ONNX sequence, else
      ``namu.List()``), or goes when it has no output.
    - Loop-invariant code motion (as in Aho, Sethi and Ullman, "Compilers:
      Principles, Techniques, and Tools", 1986, ch. 10; on SSA one sweep per body
      finds the invariants): a node of a ``Loop`` or ``namu.Map``
      body (not of a branch inside it) whose inputs are all defined outside the body,
      or by nodes already hoisted, moves before the loop when it is an op that cannot
      raise and builds no fresh mutable value (``Add``, ``Identity``, ``namu.Tuple``,
      ...), or a call of a ``pure=True`` task -- the latter only when the loop provably
      runs at least once (constant trip count >= 1 and a true or absent condition; a
      fan-out over a sequence of known non-zero length) and the task is not
      ``on_error="skip"`` (its failure drops one fan-out item, not the run). Constants
      move only together with an op reading them; nodes producing a body output stay.

    What a rewrite leaves unread -- the constant condition of a removed If, the trip count
    of a removed Loop, the empty list a removed Map ran over, and what only they read --
    is left for ``eliminate-dead-code``, which the ``cleanup`` group runs again after
    this pass changed the model.

    Guarantees:
        No If has a constant condition.
        No Loop has a constant trip count <= 0 or a constant false initial condition
            (unless it has scan outputs of unknown shape); no Map runs over a constant
            empty sequence.
        No hoistable node of a loop body depends only on values defined outside it.
        Behaviour is unchanged: a hoisted op either cannot raise or would have run in
            the first iteration anyway, and pure calls have no effects.
    """

    EXAMPLE = Example(
        before="""
        g (int64 x) => (int64 y, int64 z) {
          debug = Constant <value = bool {0}> ()
          y = If (debug) <
            then_branch = t () => (int64 a) { a = namu.Task <task = "log"> (x) },
            else_branch = e () => (int64 b) { b = Neg(x) }
          >
          zero = Constant <value = int64 {0}> ()
          z = Loop (zero, debug, x) <
            body = loop (int64 i, bool c, int64 acc) => (bool c2, int64 acc2) {
              c2 = Identity(c)
              acc2 = namu.Task <task = "log"> (acc)
            }
          >
        }""",
        after="""
        g (int64 x) => (int64 y, int64 z) {
          debug = Constant <value = bool {0}> ()
          y = Neg(x)
          zero = Constant <value = int64 {0}> ()
          z = Identity(x)
        }""",
        impure_tasks=("log",),
        note="The else branch is inlined (its result takes the name `y`); the loop runs zero times, so `z` is "
        "its initial value. The constants `debug` and `zero`, now unread, are left for eliminate-dead-code.",
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        simplifier = _Simplifier.of(model)
        for graph in top_graphs(model):
            simplifier.graph(graph)
        for rule, count in simplifier.counts.items():
            logger.debug("%s: %d", rule, count)
        self.changed(sum(simplifier.counts.values()))
        return self.result(model)

    def ensures(self, model: ir.Model) -> None:
        simplifier = _Simplifier.of(model)
        for node in walk(model):
            key = op_key(node)
            for rule in _RULES:
                if key in rule.ops and rule.match(simplifier, node) is not None:
                    self.broken(f"the rewrite {rule.identity!r} still applies", node)


class _Simplifier:
    def __init__(self, hoistable_tasks: frozenset[str]) -> None:
        #: pure tasks that may be hoisted out of a loop that runs at least once
        self.hoistable_tasks = hoistable_tasks
        #: rewrites done, per rule identity
        self.counts: collections.Counter[str] = collections.Counter()
        self._constants: dict[ir.Value, Any] = {}

    @classmethod
    def of(cls, model: ir.Model) -> _Simplifier:
        """A simplifier for ``model``: its pure tasks not ``on_error="skip"`` may be hoisted."""
        skip = frozenset(t.key for t in TaskTable.of(model).tasks if t.options.on_error == "skip")
        return cls(pure_tasks(model) - skip)

    def graph(self, graph: ir.Graph) -> None:
        for node in list(graph):
            if (node.domain, node.op_type) in CONTROL_FLOW:
                for body in subgraphs(node):
                    self.graph(body)
                self.node(graph, node)

    def node(self, graph: ir.Graph, node: ir.Node) -> None:
        key = op_key(node)
        for rule in _RULES:
            if key not in rule.ops:
                continue
            match = rule.match(self, node)
            if match is None:
                continue
            self.counts[rule.identity] += rule.replace(self, graph, node, match)
            if node.graph is not graph:
                return  # replaced

    def constant(self, value: ir.Value | None) -> Any:
        """:func:`constant_value` of ``value`` (``NOT_CONSTANT`` if not a constant), remembered."""
        if value is None:
            return NOT_CONSTANT
        known = self._constants.get(value)
        if known is None and value not in self._constants:
            known = self._constants[value] = constant_value(value)
        return known

    def hoistable(self, node: ir.Node, runs_once: bool) -> bool:
        """Whether ``node`` may run once before its loop instead of in every iteration."""
        if subgraphs(node):
            return False
        task = task_of(node)
        if task is not None:
            return runs_once and task in self.hoistable_tasks
        return op_key(node) in _HOISTABLE_BUILTINS


@dataclasses.dataclass(frozen=True)
class _Rule:
    """A rewrite: ``identity`` states it; ``match`` is the pattern (None: no match, else
    what ``replace`` needs); ``replace`` rewrites and returns how many changes it made."""

    identity: str
    ops: frozenset[OpKey]
    match: Callable[[_Simplifier, ir.Node], Any]
    replace: Callable[[_Simplifier, ir.Graph, ir.Node, Any], int]


# ---------------------------------------------------------------- If(const c) -> branch(c)
def _constant_condition(s: _Simplifier, node: ir.Node) -> str | None:
    """The attribute name of the branch a constant condition selects."""
    cond = s.constant(node.inputs[0])
    if cond is NOT_CONSTANT:
        return None
    return "then_branch" if cond else "else_branch"


def _inline_branch(s: _Simplifier, graph: ir.Graph, node: ir.Node, branch_name: str) -> int:
    branch = node.attributes[branch_name].as_graph()
    nodes = list(branch)
    results = list(branch.outputs)
    branch.outputs.clear()  # the results now belong to the enclosing graph
    if nodes:
        branch.remove(nodes)
        graph.insert_before(node, nodes)
    moved = {out for n in nodes for out in n.outputs}
    once = collections.Counter(results)
    for old, new in zip(node.outputs, results, strict=True):
        if new in moved and once[new] == 1:
            adopt(old, new)  # the branch's own result takes the If output's name
        else:
            forward(old, new, graph, node)  # an outer value, or one returned twice
    detach(node)  # the other branch lets go of the outer values it read
    graph.remove(node, safe=True)
    return 1


# ---------------------------------------------------------------- Loop(0 trips, v...) -> v...
def _zero_trips(s: _Simplifier, node: ir.Node) -> list[ir.TensorProtocol] | None:
    """Empty tensors for the scan outputs of a loop that provably runs zero times."""
    m, c = s.constant(node.inputs[0]), s.constant(node.inputs[1])
    # the runtime: `while (M is None or i < M) and (cond is None or cond)`
    if not ((isinstance(m, (int, float)) and m <= 0) or (c is not NOT_CONSTANT and c is not None and not c)):
        return None
    body = node.attributes["body"].as_graph()
    n_carried = len(node.inputs) - 2
    empties = []
    for out in body.outputs[1 + n_carried :]:
        empty = _empty_scan(out)
        if empty is None:
            return None
        empties.append(empty)
    return empties


def _initial_values(s: _Simplifier, graph: ir.Graph, node: ir.Node, empties: list[ir.TensorProtocol]) -> int:
    n_carried = len(node.inputs) - 2
    scans = []
    for old, tensor in zip(node.outputs[n_carried:], empties):
        const = ir.Node("", "Constant", [], attributes=[ir.AttrTensor("value", tensor)], num_outputs=1)
        const.metadata_props.update(node.metadata_props)
        set_type(const.outputs[0], type_of(old))
        graph.insert_before(node, const)
        adopt(old, const.outputs[0])
        scans.append(const.outputs[0])
    replace_node(graph, node, [*node.inputs[2:], *scans])  # type: ignore[list-item]
    return 1


def _empty_scan(value: ir.Value) -> ir.TensorProtocol | None:
    """The scan output of zero iterations of a body output: a tensor of shape [0, ...]."""
    if not isinstance(value.type, ir.TensorType) or value.shape is None or not value.shape.is_static():
        return None
    shape = (0, *value.shape.numpy())
    if value.type.dtype == ir.DataType.STRING:
        return ir.StringTensor(np.empty(shape, dtype=object), shape=ir.Shape(shape))
    return ir.Tensor(np.empty(shape, dtype=value.type.dtype.numpy()))


# ---------------------------------------------------------------- Map(f, []) -> []
def _empty_sequence(s: _Simplifier, node: ir.Node) -> bool | None:
    return True if _length(s, node.inputs[0]) == 0 else None


def _empty_list(s: _Simplifier, graph: ir.Graph, node: ir.Node, _: bool) -> int:
    if node.outputs:
        old = node.outputs[0]
        vtype = type_of(old)
        if vtype.kind == "list" and vtype.is_onnx and vtype.elem is not None and vtype.elem.kind != "list":
            dtype = vtype.elem.onnx_type.dtype  # type: ignore[union-attr]
            empty = ir.Node("", "SequenceEmpty", [], attributes=[ir.AttrInt64("dtype", dtype.value)], num_outputs=1)
        else:
            empty = ir.Node(NAMU_DOMAIN, "List", [], num_outputs=1)
        empty.metadata_props.update(node.metadata_props)
        set_type(empty.outputs[0], vtype)
        graph.insert_before(node, empty)
        adopt(old, empty.outputs[0])
    detach(node)
    graph.remove(node, safe=True)
    return 1


# ---------------------------------------------------------------- loop(f(inv)) -> f(inv); loop
def _invariants(s: _Simplifier, node: ir.Node) -> list[ir.Node] | None:
    """The nodes of the body to hoist before the loop, in body order."""
    body = node.attributes["body"].as_graph()
    runs_once = _runs_at_least_once(s, node)
    variant: set[ir.Value] = set(body.inputs)
    invariant: list[ir.Node] = []
    for inner in body:
        if (
            s.hoistable(inner, runs_once)
            and not any(v in variant for v in inner.inputs if v is not None)
            and not any(out.is_graph_output() for out in inner.outputs)
        ):
            invariant.append(inner)
        else:
            variant.update(inner.outputs)
    # Constants (builtin ops without inputs) move only together with an op reading them.
    read = {v for n in invariant for v in n.inputs}
    hoisted = [n for n in invariant if n.inputs or task_of(n) is not None or any(out in read for out in n.outputs)]
    return hoisted or None


def _hoist(s: _Simplifier, graph: ir.Graph, node: ir.Node, hoisted: list[ir.Node]) -> int:
    node.attributes["body"].as_graph().remove(hoisted)
    graph.insert_before(node, hoisted)
    return len(hoisted)


def _runs_at_least_once(s: _Simplifier, node: ir.Node) -> bool:
    """The Loop or Map provably runs its body at least once."""
    if op_key(node) in _MAP:
        length = _length(s, node.inputs[0])
        return length is not None and length > 0
    trip_count, cond = node.inputs[0], node.inputs[1]
    m, c = s.constant(trip_count), s.constant(cond)
    m_ok = trip_count is None or m is None or (isinstance(m, (int, float)) and m >= 1)
    c_ok = cond is None or c is None or (c is not NOT_CONSTANT and bool(c))
    return m_ok and c_ok


# ---------------------------------------------------------------- the rules
_RULES: tuple[_Rule, ...] = (
    # If(const c) -> the nodes of the branch c selects, in place of the If
    _Rule("If(const c) -> branch(c)", _IF, _constant_condition, _inline_branch),
    # Loop(M <= 0 or cond = false, v...) -> v... (and empty scan outputs)
    _Rule("Loop(zero trips, v...) -> v...", _LOOP, _zero_trips, _initial_values),
    # Map(f, []) -> []
    _Rule("Map(f, []) -> []", _MAP, _empty_sequence, _empty_list),
    # loop { y = f(invariants) ... } -> y = f(invariants); loop { ... }
    _Rule("loop{f(inv)} -> f(inv); loop{}", _LOOP | _MAP, _invariants, _hoist),
)


def _length(s: _Simplifier, value: ir.Value) -> int | None:
    """The number of items of a sequence whose length is known at compile time."""
    producer = value.producer()
    if producer is None:
        return None
    key = op_key(producer)
    if key in (("", "SequenceConstruct"), (NAMU_DOMAIN, "List"), (NAMU_DOMAIN, "Tuple"), (NAMU_DOMAIN, "Dict")):
        return len(producer.inputs)
    if key == ("", "SequenceEmpty"):
        return 0
    const = s.constant(value)
    return len(const) if isinstance(const, str) else None
