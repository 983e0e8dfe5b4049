"""``fold-constants``: evaluate at compile time what depends only on constants."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx_ir as ir

from namu.ir.constants import NOT_CONSTANT, constant_value, string_tensor
from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.scopes import subgraphs, top_graphs
from namu.ir.types import ValueType, set_type, type_of
from namu.ops.registry import CompileTimeEnv, OpDef, lookup
from namu.passes.base import Example, NamuPass
from namu.passes.effects import CONTROL_FLOW, pure_tasks, task_of
from namu.passes.registry import register
from namu.passes.rewire import Names, adopt

if TYPE_CHECKING:
    from namu.frontend.task import Task

__all__ = ["MAX_ELEMENTS", "FoldConstantsPass"]

logger = logging.getLogger(__name__)

#: largest value folded: characters of a string, items of a list (nested ones counted),
#: 64-bit words of an int. Bigger results stay computed at run time, so artifacts stay small.
MAX_ELEMENTS = 10_000

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

#: a constant node's value not read yet
_UNREAD = object()
_SCALARS: dict[type, tuple[ValueType, Any]] = {
    bool: (ValueType.bool(), np.bool_),
    int: (ValueType.int(), np.int64),
    float: (ValueType.float(), np.float64),
    str: (ValueType.str(), None),
}


@register(
    "fold-constants",
    "every op and pure task call whose inputs are all constants is replaced by its value",
    after=("infer-types",),
    group="cleanup",
    level=1,
)
class FoldConstantsPass(NamuPass):
    """Evaluate at compile time every op whose inputs are all constants.

    One forward pass over each graph in topological order (SSA needs no iteration: a
    value is known when its producer is), entering subgraphs with the constants of the
    enclosing scopes -- constant propagation as in Kildall, "A Unified Approach to
    Global Program Optimization" (POPL 1973), and folding the way onnxscript's optimizer
    does, by running the runtime's own evaluator rather than a second copy of each op's
    arithmetic. Folded are:

    - namu's builtin ops and the standard ops the runtime knows (``Add`` .. ``Pow``,
      ``Mod``, ``Cast``, comparisons, ``And``/``Or``/``Not``, ``StringConcat``,
      ``SequenceAt``/``SequenceLength``, ``namu.Arith``/``Compare``/``Truth``/``Len``/
      ``GetItem``/``Unpack``/``ToList``): every op whose registry definition says
      ``fold="evaluate"`` or ``"keep"``, each evaluated by its registered Python
      implementation (so ``2 ** -1`` folds to ``0.5``, Python's value);
    - calls of ``pure=True`` tasks, by calling the live task function (from the
      compile's task objects) once, on copies of the constant arguments. A call whose
      task is not available (a loaded artifact) or is ``async def`` stays, and so does
      one that changes its arguments (an effect, whatever ``pure`` says).

    A folded value replaces its node when ONNX can hold it: ``int`` (int64 range),
    ``float``, ``bool`` and ``str`` become a ``Constant`` (int64, double, bool, string
    scalar tensor), ``None`` becomes ``namu.None``, a list of one such type a
    ``SequenceConstruct`` of constants (``SequenceEmpty`` when empty). The new node keeps
    the old node's span and output name. Other values (tuples, dicts, mixed lists, ints
    beyond int64, objects) leave their node in place, but are still known to the ops
    reading them, so ``t[0]`` of a constant tuple folds. Constructors of constants
    (``SequenceConstruct``, ``namu.List``/``Tuple``/``Dict``) stay as they are. Inputs
    that become unused are left for ``eliminate-dead-code``.

    Guarantees:
        Every op above whose inputs are all constants, whose evaluation does not raise
            and whose value a constant can hold, is a constant.
        Evaluation that raises (``1 // 0``, a pure task raising) leaves the op, so the
            run raises where Python would: the compile never fails because of a fold.
        No value bigger than ``MAX_ELEMENTS`` (10,000 characters, items or 64-bit int
            words) is folded, and ``a ** b`` is not even evaluated when its result would be.
        If/Loop/Map stay (``simplify-control-flow`` removes constant branches).

    Notes:
        A ``pure`` task is taken at its word: folding runs it at compile time (also in a
            branch that never runs, and again in each round of the clean-up group when
            its result is not a constant the IR can hold), with no timeout or retries.
    """

    EXAMPLE = Example(
        before="""
        g (int64 x) => (int64 y, string s) {
          two = Constant <value = int64 {2}> ()
          three = Constant <value = int64 {3}> ()
          six = Mul(two, three)
          zero = Constant <value = int64 {0}> ()
          bad = Mod <fmod = 0> (six, zero)
          y = Add(six, bad)
          a = Constant <value = string {"na"}> ()
          s = StringConcat(a, a)
        }""",
        after="""
        g (int64 x) => (int64 y, string s) {
          two = Constant <value = int64 {2}> ()
          three = Constant <value = int64 {3}> ()
          six = Constant <value = int64 {6}> ()
          zero = Constant <value = int64 {0}> ()
          bad = Mod <fmod = 0> (six, zero)
          y = Add(six, bad)
          a = Constant <value = string {"na"}> ()
          s = Constant <value = string {"nana"}> ()
        }""",
        note="`6 % 0` raises, so it stays (the run fails there, as Python does); its inputs stay for eliminate-dead-code.",
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        pure = pure_tasks(model)
        tasks = {key: task for key, task in self.context.tasks.items() if key in pure and not task.is_async}
        folder = _Folder(tasks, Names(model))
        for graph in top_graphs(model):
            folder.graph(graph)
        logger.debug("folded %d ops", folder.folded)
        self.changed(folder.folded)
        return self.result(model)


#: folded ops have no bodies and call no tasks (pure task calls are called directly)
_EVALUATE = CompileTimeEnv()


class _Folder:
    def __init__(self, tasks: Mapping[str, Task], names: Names) -> None:
        self.tasks = tasks
        self.names = names
        #: values known at compile time (any Python value, materialized or not); the
        #: value of a constant node is read when an op needs it (reading costs more
        #: than most ops)
        self.known: dict[ir.Value, Any] = {}
        self.folded = 0

    def graph(self, graph: ir.Graph) -> None:
        for node in list(graph):
            if (node.domain, node.op_type) in CONTROL_FLOW:
                for body in subgraphs(node):
                    self.graph(body)
            else:
                self.node(graph, node)

    def node(self, graph: ir.Graph, node: ir.Node) -> None:
        definition = lookup(node.domain, node.op_type)
        if definition is not None and definition.fold == "read":
            self.known[node.outputs[0]] = _UNREAD
            return
        fn = self.evaluator(node, definition)
        if fn is None:
            return
        args = [self.value(v) for v in node.inputs]  # evaluator() checked they are known
        if any(a is NOT_CONSTANT for a in args) or _too_costly(node, args):
            return
        try:
            result = fn(*args)
        except Exception:  # noqa: BLE001 - the op raises at run time, where Python would
            return
        results = [result] if len(node.outputs) == 1 else list(result)
        if len(results) != len(node.outputs) or any(_size(r) > MAX_ELEMENTS for r in results):
            return
        self.known.update(zip(node.outputs, results))
        if definition is not None and definition.fold == "keep":
            return
        plans = [_constant_type(r, type_of(out)) for r, out in zip(results, node.outputs)]
        if any(p is None for p in plans):
            return
        for out, value, vtype in zip(list(node.outputs), results, plans):
            built = self.build(value, vtype, node)  # type: ignore[arg-type]
            if len(node.outputs) == 1:
                built[-1].name = node.name
            graph.insert_before(node, built)
            new = built[-1].outputs[0]
            adopt(out, new)
            self.known[new] = value
        graph.remove(node, safe=True)
        self.folded += 1

    def value(self, value: ir.Value) -> Any:
        """The known value of ``value`` (NOT_CONSTANT: a constant the runtime cannot read)."""
        known = self.known[value]
        if known is _UNREAD:
            known = self.known[value] = constant_value(value)
        return known

    def evaluator(self, node: ir.Node, definition: OpDef | None) -> Callable[..., Any] | None:
        """The callable computing ``node`` (whose registry definition is ``definition``)
        if it can be folded now, else None."""
        if any(v is None or v not in self.known for v in node.inputs):
            return None
        if subgraphs(node):
            return None
        key = task_of(node)
        if key is not None:
            task = self.tasks.get(key)
            return None if task is None else _task_call(task, node)
        if definition is None or definition.fold not in ("evaluate", "keep"):
            return None
        try:
            return definition.build(node, _EVALUATE)[0]
        except Exception:  # noqa: BLE001 - an op the runtime rejects fails at run time too
            return None

    def build(self, value: Any, vtype: ValueType, at: ir.Node, name: str | None = None) -> list[ir.Node]:
        """Nodes producing ``value`` (of type ``vtype``) with ``at``'s span; the last
        node's output is the value (named ``name``, if given)."""
        nodes: list[ir.Node] = []
        if value is None:
            node = ir.Node(NAMU_DOMAIN, "None", [], num_outputs=1)
        elif vtype.kind == "list" and not value:
            dtype = vtype.elem.onnx_type.dtype  # type: ignore[union-attr]
            node = ir.Node("", "SequenceEmpty", [], attributes=[ir.AttrInt64("dtype", dtype.value)], num_outputs=1)
        elif vtype.kind == "list":
            assert vtype.elem is not None
            items: list[ir.Value] = []
            for item in value:
                built = self.build(item, vtype.elem, at, self.names.fresh(f"{at.outputs[0].name}_item"))
                nodes += built
                items.append(built[-1].outputs[0])
            node = ir.Node("", "SequenceConstruct", items, num_outputs=1)
        else:
            node = ir.Node("", "Constant", [], attributes=[ir.AttrTensor("value", _tensor(value))], num_outputs=1)
        node.metadata_props.update(at.metadata_props)
        if name is not None:
            node.outputs[0].name = name
        set_type(node.outputs[0], vtype)
        return [*nodes, node]


class _MutatedArgument(Exception):
    """A pure task changed an argument: an effect the fold cannot reproduce."""


def _task_call(task: Task, node: ir.Node) -> Callable[..., Any]:
    """Call ``task``'s function as ``node`` would (trailing inputs by keyword) on copies
    of the arguments; raise if it changed them."""
    kwnames_attr = node.attributes.get("kwnames")
    kwnames = list(kwnames_attr.as_strings()) if kwnames_attr is not None else []
    n_positional = len(node.inputs) - len(kwnames)

    def call(*args: Any) -> Any:
        copies = copy.deepcopy(args)
        result = task.fn(*copies[:n_positional], **dict(zip(kwnames, copies[n_positional:])))
        if copies != args:
            raise _MutatedArgument(task.name)
        return result

    return call


def _too_costly(node: ir.Node, args: list[Any]) -> bool:
    """True when evaluating the op would build a value far beyond :data:`MAX_ELEMENTS`."""
    key = (node.domain, node.op_type)
    arith = node.attributes["op"].as_string() if key == (NAMU_DOMAIN, "Arith") else None
    is_pow = key == ("", "Pow") or arith == "pow"
    if is_pow and len(args) == 2 and all(type(a) is int for a in args):
        base, exponent = args
        return exponent > 0 and abs(base) > 1 and base.bit_length() * exponent > 64 * MAX_ELEMENTS
    if arith == "lshift" and len(args) == 2 and all(type(a) is int for a in args):
        return args[0] != 0 and args[1] > 64 * MAX_ELEMENTS
    if arith == "mul" and len(args) == 2:  # "ab" * 10**9, [0] * 10**9
        for seq, count in (args, args[::-1]):
            if isinstance(seq, (str, bytes, list, tuple)) and type(count) is int:
                return len(seq) * count > MAX_ELEMENTS
    return False


def _size(value: Any) -> int:
    """Elements in ``value`` (stops counting past :data:`MAX_ELEMENTS`)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int):
        return value.bit_length() // 64
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        total = len(value)
        for item in value:
            if total > MAX_ELEMENTS:
                break
            if isinstance(item, (str, int, list, tuple, dict)):
                total += _size(item)
        return total
    return 0


def _constant_type(value: Any, declared: ValueType) -> ValueType | None:
    """The type of the constant holding ``value`` for a value declared ``declared``, or
    None when no constant can hold it (or it would not have the declared type)."""
    if value is None:
        return None if declared.is_onnx else ValueType.opaque("NoneType")
    if type(value) in _SCALARS:
        vtype = _SCALARS[type(value)][0]
        if vtype.kind == "int" and not _INT64_MIN <= value <= _INT64_MAX:
            return None
        if vtype.kind == "str" and not _encodable(value):
            return None
        return vtype if not declared.is_onnx or declared == vtype else None
    if type(value) is list and declared.kind == "list" and declared.is_onnx:
        elem = declared.elem
        assert elem is not None
        if not value and elem.kind == "list":
            return None  # SequenceEmpty holds tensors only
        if all(_constant_type(item, elem) == elem for item in value):
            return declared
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: a string tensor cannot hold them
        return False
    return True


def _tensor(value: bool | int | float | str) -> ir.TensorProtocol:
    """A scalar tensor holding ``value`` (typed as the frontend types literals)."""
    if isinstance(value, str):
        return string_tensor(value)
    return ir.Tensor(np.array(value, dtype=_SCALARS[type(value)][1]))
