"""The op registry: one definition per op namu's IR can hold.

Everything namu knows about an op is in its :class:`OpDef`, registered once with
:func:`op` (as onnxscript registers its evaluators with ``@register``):

* its **Python implementation** (``build``), which the reference executor runs, the
  kernel runs where it has nothing faster, and ``fold-constants`` evaluates at compile
  time;
* the **native kernel op** it maps to, if any (``namu._kernel.NATIVE_OPS``);
* its **effect class** (``pure``, ``raises``, ``fresh``, ``control``), which the passes
  that delete, merge, move or fold ops ask through :mod:`namu.passes.effects`;
* its **type rule**, which ``infer-types`` applies;
* its **constant-folding rule** (``fold``).

The definitions live in :mod:`namu.ops.values` (scalar and container ops), :mod:`namu.ops.builtins`
(Python's builtins and non-mutating methods),
:mod:`namu.ops.control` (``If``, ``Loop``, ``namu.Map``, ``namu.Fused``, function
calls), :mod:`namu.ops.calls` (``namu.Task``, ``namu.Gate``, ``namu.Slot``) and
:mod:`namu.ops.wire` (``namu.Send``, ``namu.Recv``); they are loaded on the first lookup,
so importing the registry costs nothing. A new op is one more ``@op`` in one of them (or
in a plugin module that imports :func:`op`).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from namu.errors import IRVerificationError

if TYPE_CHECKING:
    import onnx_ir as ir

    from namu.ir.types import ValueType
    from namu.runtime.tasks import TaskBinding

__all__ = [
    "ANY_OP",
    "Built",
    "CompileTimeEnv",
    "ErrorHandler",
    "Fold",
    "OpClass",
    "OpDef",
    "OpEnv",
    "SubgraphRunner",
    "Typer",
    "definition",
    "lookup",
    "op",
    "registered",
    "unsupported",
]

#: ``op_type`` of a definition covering every op of its domain (function calls).
ANY_OP = "*"
#: runs a prepared subgraph: (graph inputs + captured values) -> graph outputs.
SubgraphRunner = Callable[[list[Any]], list[Any]]
#: turns the exception a node raised into the exception the run raises.
ErrorHandler = Callable[[Exception], BaseException]
#: what a builder returns: the node's callable and the handler its errors go through.
Built = tuple[Callable[..., Any], "ErrorHandler | None"]
#: ``fold-constants``' rule for an op: ``"evaluate"`` (replace it by its value when its
#: inputs are constants), ``"keep"`` (evaluate it so readers know its value, but keep it:
#: a constructor already says "this constant"), ``"read"`` (it is a constant: read it
#: with :func:`namu.ir.constants.constant_of`) or ``"never"``.
Fold = Literal["evaluate", "keep", "read", "never"]


class OpEnv(Protocol):
    """What a builder needs from the executor building the node (or from a probe)."""

    tasks: dict[str, TaskBinding]
    functions: dict[str, ir.Function]
    #: the events the run's hooks override (``namu.runtime.hooks.needs``): the task and
    #: fan-out callables built report those
    events: frozenset[str]
    #: the model went through insert-resilience-gates: retries, timeouts and fallbacks
    #: run only where a ``namu.Gate`` says (else a task's options apply at every call)
    gated: bool

    def subgraph(self, graph: ir.Graph, captures: Sequence[ir.Value]) -> SubgraphRunner:
        """Prepare ``graph`` to run with ``captures`` appended to its inputs."""

    def function(self, name: str) -> SubgraphRunner:
        """The runner of model function ``name``, prepared on first use and kept."""


class Typer(Protocol):
    """What a type rule may ask of ``infer-types``' sweep."""

    def type(self, value: ir.Value | None) -> ValueType:
        """The type of ``value`` (``object`` when unknown)."""

    def graph(self, graph: ir.Graph) -> None:
        """Type every node of ``graph`` (a body)."""

    def settle(self, node: ir.Node, value: ir.Value, inferred: ValueType, *, onnx_only: bool) -> None:
        """Give an untyped body input ``value`` the ``inferred`` type, or check it."""

    def condition(self, node: ir.Node, vtype: ValueType) -> None:
        """Check that a condition is a ``bool``."""

    def call_task(self, node: ir.Node, args: list[ValueType]) -> list[ValueType]:
        """Check a task call's arguments; its result types."""

    def call_function(self, node: ir.Node, args: list[ValueType]) -> list[ValueType] | None:
        """Check a sub-workflow call's arguments; its result types (None: unknown function)."""

    def fail(self, node: ir.Node, reason: str) -> None:
        """Raise ``TypeCheckError`` at ``node``'s source line."""


#: ``rule(typer, node, input types)`` -> the output types, or None (unknown: leave them).
TypeRule = Callable[[Typer, "ir.Node", "list[ValueType]"], "list[ValueType] | None"]
#: ``build(node, env)`` -> the node's callable and error handler (see :class:`OpDef`).
Builder = Callable[["ir.Node", OpEnv], Built]
#: ``awaited(node, env)`` -> ``fn(*inputs) -> awaitable`` (see :class:`OpDef`).
AwaitedBuilder = Callable[["ir.Node", OpEnv], Callable[..., Any]]


@dataclasses.dataclass(frozen=True, slots=True)
class OpDef:
    """Everything namu knows about one op.

    Attributes:
        domain: the op's domain (``""`` for ai.onnx, ``"namu"``, ...).
        op_type: the op's name, or :data:`ANY_OP` for every op of the domain.
        summary: one line: what the op computes (``docs/ir.md``, ``verify-structure``).
        build: ``build(node, env) -> (callable, error handler or None)``: the op's Python
            meaning. The callable takes the node's inputs, then its captured outer values
            (for ops with bodies), positionally, and returns one value, a tuple for
            several outputs, or anything for none. Raises ``IRVerificationError`` when
            the node's attributes make no op.
        types: the type rule ``infer-types`` applies.
        native: the ``namu._kernel`` native op computing it (a name of
            ``_kernel.NATIVE_OPS``), a function of the node giving that name or None,
            or None: the kernel calls the Python implementation.
        pure: the result depends only on the inputs and attributes, and nothing else
            happens (it may still raise).
        raises: it can fail on the values namu's lowering gives it. A pure op that cannot
            raise may be dropped, moved or repeated without anything observable.
        fresh: it returns a new mutable object (a list, a dict) on every run: never
            merged with an equal op or hoisted out of a loop.
        control: it runs subgraphs (``namu.ir.scopes.subgraphs``): what it does is what
            its bodies do.
        fold: the constant-folding rule (:data:`Fold`).
        lowered_by: the pass that replaces every such op before an artifact exists (a
            compile-time op, e.g. ``namu.Slot``): the executors never see it.
        awaited: ``awaited(node, env)`` -> a function of the node's inputs returning an
            awaitable: the op waits on something outside the process (a wire, an LLM), so
            the kernel awaits it on the run's event loop and its run loop never blocks;
            None: the kernel calls ``build``'s callable.
        kernel: the kernel executor's own lowering of the op (``"task"``, ``"gate"``,
            ``"map"``, ``"if"``, ``"loop"``, ``"function"``, ``"fused"``: ops whose bodies
            become native plans), or "" (native, awaited, or ``build``'s callable).
    """

    domain: str
    op_type: str
    summary: str
    build: Builder
    types: TypeRule
    native: str | Callable[[ir.Node], str | None] | None = None
    pure: bool = False
    raises: bool = True
    fresh: bool = False
    control: bool = False
    fold: Fold = "never"
    lowered_by: str = ""
    awaited: AwaitedBuilder | None = None
    kernel: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """``(domain, op_type)``."""
        return self.domain, self.op_type

    def native_name(self, node: ir.Node) -> str | None:
        """The native kernel op computing ``node``, or None (the kernel calls Python)."""
        native = self.native
        return native(node) if callable(native) else native


class CompileTimeEnv:
    """An :class:`OpEnv` for building ops at compile time, to evaluate them
    (``fold-constants``) or to check that the runtime can build them
    (``verify-runtime-complete``): bodies and functions are never prepared.

    Args:
        tasks: the task bindings task calls may name (default: none).
        functions: the model's functions by name (default: none).
    """

    events: frozenset[str] = frozenset()
    gated = False

    def __init__(self, tasks: dict[str, TaskBinding] | None = None, functions: dict[str, ir.Function] | None = None) -> None:
        self.tasks = tasks or {}
        self.functions = functions or {}

    def subgraph(self, graph: ir.Graph, captures: Sequence[ir.Value]) -> SubgraphRunner:
        return _never

    def function(self, name: str) -> SubgraphRunner:
        return _never


def _never(*_args: Any) -> Any:
    raise AssertionError("a body prepared at compile time was run")


_REGISTRY: dict[tuple[str, str], OpDef] = {}
#: bumped by every registration: an :class:`OpClass` rebuilds its members when it changes
_generation = 0
#: the modules holding namu's own definitions, imported on the first lookup
_DEFINITIONS = (
    "namu.ops.values", "namu.ops.builtins", "namu.ops.control", "namu.ops.exceptions", "namu.ops.calls", "namu.ops.wire", "namu.ops.agents",
)
_loaded = False


def op(
    domain: str,
    op_type: str,
    summary: str,
    *,
    types: TypeRule,
    native: str | Callable[[ir.Node], str | None] | None = None,
    pure: bool = False,
    raises: bool = True,
    fresh: bool = False,
    control: bool = False,
    fold: Fold = "never",
    lowered_by: str = "",
    awaited: AwaitedBuilder | None = None,
    kernel: str = "",
) -> Callable[[Builder], Builder]:
    """Decorator registering ``build`` as the Python meaning of ``domain::op_type``; the
    keywords are the rest of its :class:`OpDef`.

    Example::

        @op("namu", "Upper", "input 0 in upper case", types=returns(ValueType.str()), pure=True)
        def upper(node: ir.Node, env: OpEnv) -> Built:
            return with_span(str.upper, node), None

    Raises:
        ValueError: ``domain::op_type`` is already registered.
    """

    def register(build: Builder) -> Builder:
        key = (domain, op_type)
        if key in _REGISTRY:
            raise ValueError(f"op {domain or 'ai.onnx'}::{op_type} is already registered")
        _REGISTRY[key] = OpDef(
            domain, op_type, summary, build, types, native, pure, raises, fresh, control, fold, lowered_by, awaited, kernel
        )
        global _generation
        _generation += 1
        return build

    return register


def _load() -> None:
    """Import namu's definition modules once. A lookup made while they import (a
    definition module's own imports) sees what is registered so far; a failed import
    leaves the registry to be loaded again by the next lookup, so the error repeats
    instead of leaving a registry without some ops."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    try:
        for module in _DEFINITIONS:
            importlib.import_module(module)
    except BaseException:
        _loaded = False
        raise


def lookup(domain: str, op_type: str) -> OpDef | None:
    """The definition of ``domain::op_type`` (or of every op of ``domain``), or None."""
    if not _loaded:
        _load()
    found = _REGISTRY.get((domain, op_type))
    return found if found is not None else _REGISTRY.get((domain, ANY_OP))


def definition(node: ir.Node) -> OpDef:
    """The definition of ``node``'s op.

    Raises:
        IRVerificationError: namu's runtime knows no such op (the message has the node's
            source line).
    """
    found = lookup(node.domain, node.op_type)
    if found is None:
        raise _unsupported(node)
    return found


def registered() -> list[OpDef]:
    """Every registered op, by domain and name."""
    _load()
    return sorted(_REGISTRY.values(), key=lambda d: d.key)


class OpClass:
    """The ``(domain, op_type)`` keys of the registered ops whose definition passes a
    test (``pure``, ``fresh``, ...), kept current as ops are registered: what the
    passes ask with ``key in op_class``.

    Args:
        test: ``test(definition) -> bool``.
    """

    __slots__ = ("_generation", "_members", "_test")

    def __init__(self, test: Callable[[OpDef], bool]) -> None:
        self._test = test
        self._members: frozenset[tuple[str, str]] = frozenset()
        self._generation = -1

    def members(self) -> frozenset[tuple[str, str]]:
        """The keys of the ops in the class now."""
        if self._generation != _generation or not _loaded:
            _load()
            self._members = frozenset(key for key, d in _REGISTRY.items() if self._test(d))
            self._generation = _generation
        return self._members

    def __contains__(self, key: object) -> bool:
        if self._generation != _generation:
            self.members()
        return key in self._members

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.members())

    def __len__(self) -> int:
        return len(self.members())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, OpClass):
            other = other.members()
        return self.members() == other

    __hash__ = None  # type: ignore[assignment]

    def __sub__(self, other: OpClass) -> OpClass:
        """The ops in this class and not in ``other``."""
        return OpClass(lambda d: self._test(d) and not other._test(d))

    def __repr__(self) -> str:
        return f"OpClass({sorted(self.members())})"


def unsupported(node: ir.Node, env: OpEnv) -> Built:
    """A builder for an op that exists only at compile time (see ``OpDef.lowered_by``).

    Raises:
        IRVerificationError: always, naming the op and its source line.
    """
    raise _unsupported(node)


def _unsupported(node: ir.Node) -> IRVerificationError:
    from namu.ir.metadata import SPAN_KEY

    return IRVerificationError(
        f"{node.metadata_props.get(SPAN_KEY, '?')}: op {node.domain or 'ai.onnx'}::{node.op_type} "
        "is not supported by namu's runtime"
    )
