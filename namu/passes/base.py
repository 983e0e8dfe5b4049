"""``NamuPass``: the base of namu's passes, and the context a compile gives them.

A namu pass is an ``onnx_ir.passes.InPlacePass`` that may read a :class:`PassContext`
(the compile's :class:`~namu.passes.config.CompileConfig`, the live task objects, the
passes of the pipeline) and counts its changes for ``--timings``. It keeps no state
between runs: the pipeline makes a fresh instance for every run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, NoReturn

import onnx_ir as ir

from namu.errors import CompileError, PassError
from namu.ir.metadata import SPAN_KEY
from namu.passes.config import CompileConfig

if TYPE_CHECKING:
    from namu.frontend.task import Task

__all__ = ["Example", "NamuPass", "PassContext", "fail"]


@dataclasses.dataclass(frozen=True)
class PassContext:
    """What a compile hands every pass.

    Attributes:
        config: the compile's options.
        tasks: the task table's keys bound to the live ``@namu.task`` objects (empty when
            passes run over a loaded or hand-written model). Passes that evaluate or add
            tasks (``fold-constants``, ``resolve-slots``) use it; a pass that adds a task
            to the task table adds it here too, and the compiled artifact runs it.
        pipeline: names of the passes this compile runs, in order.
    """

    config: CompileConfig = dataclasses.field(default_factory=CompileConfig)
    tasks: MutableMapping[str, Task] = dataclasses.field(default_factory=dict)
    pipeline: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Example:
    """A before/after example of a pass, shown in ``docs/passes.md`` and run by its tests.

    ``before`` and ``after`` are ONNX text graphs (``onnx.parser`` syntax, without the
    model header). ``tests/passes/test_docs.py`` parses ``before`` with a task table
    holding ``pure_tasks`` and ``impure_tasks``, runs the pass with ``config``, and
    checks the result equals ``after`` structurally (``before`` when ``after`` is empty:
    a pass that only writes metadata) and carries ``metadata`` -- or, when ``error`` is
    set, that the pass raises an error whose ``"Type: message"`` text contains it.

    Attributes:
        before: the input graph.
        after: the expected graph ("" when the example shows an error, or when the pass
            leaves the structure unchanged).
        error: the expected error, e.g. ``"IRVerificationError: task 'ghost' is not"``.
        metadata: node metadata expected after the pass, by the name of the node's first
            output (a node of the main graph): ``{"b": {"namu.priority": "3"}}``.
        pure_tasks, impure_tasks: task keys of the example's task table.
        config: ``CompileConfig`` fields for the run.
        note: one sentence shown under the example.
    """

    before: str
    after: str = ""
    error: str = ""
    metadata: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)
    pure_tasks: tuple[str, ...] = ()
    impure_tasks: tuple[str, ...] = ()
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    note: str = ""


class NamuPass(ir.passes.InPlacePass):
    """Base of namu's passes: holds the compile's context and counts changes.

    Subclasses implement ``call(model)`` and call :meth:`changed` once per rewrite, so
    ``namu compile --timings`` can show how much each pass did. ``EXAMPLE`` is the
    pass's before/after :class:`Example` (``docs/passes.md`` is generated from it).
    A pass whose "Guarantees:" can be checked cheaply checks them in :meth:`ensures`.
    """

    EXAMPLE: Example | None = None

    def __init__(self, context: PassContext | None = None) -> None:
        super().__init__()
        self.context = context if context is not None else PassContext()
        #: rewrites done by the last run (reset at the start of each run)
        self.changes = 0

    def __call__(self, model: ir.Model) -> ir.passes.PassResult:
        """Run the pass. With ``CompileConfig.check_guarantees``, through onnx_ir's
        ``PassBase`` protocol: ``requires(model)``, ``call(model)``, ``ensures(model)``
        and the in-place check; otherwise ``call(model)`` alone.

        Raises:
            onnx_ir.passes.PostconditionError: (checking) ``ensures`` failed; its cause
                is the :class:`~namu.errors.PassError` naming the broken guarantee.
        """
        self.changes = 0
        if self.context.config.check_guarantees:
            return super().__call__(model)
        return self.call(model)

    def ensures(self, model: ir.Model) -> None:
        """Check the pass's guarantees on ``model``, the result of :meth:`call`
        (onnx_ir's post-condition hook). The default checks nothing.

        Raises:
            PassError: a guarantee does not hold (see :meth:`broken`).
        """

    def broken(self, guarantee: str, node: ir.Node | None = None) -> NoReturn:
        """Raise the error saying the pass broke ``guarantee``, at ``node`` (its source
        span, else the name of its first output).

        Raises:
            PassError: always; its message and ``pass_name`` name the pass.
        """
        name = getattr(type(self), "pass_name", type(self).__name__)
        where = ""
        if node is not None:
            span = node.metadata_props.get(SPAN_KEY, "")
            where = f" (at {span})" if span else f" (the node of {node.outputs[0].name!r})" if node.outputs else ""
        error = PassError(f"pass {name!r} broke its guarantee: {guarantee}{where}")
        error.pass_name = name
        raise error

    def changed(self, n: int = 1) -> None:
        """Record ``n`` rewrites."""
        self.changes += n

    def result(self, model: ir.Model) -> ir.passes.PassResult:
        """``PassResult(model, modified=<any change recorded>)``."""
        return ir.passes.PassResult(model, modified=self.changes > 0)


def fail(node: ir.Node | None, reason: str, error: type[CompileError] = CompileError, **extra: Any) -> NoReturn:
    """Raise ``error`` at ``node``'s source span (``file:line:col``), if it has one."""
    span = node.metadata_props.get(SPAN_KEY, "") if node is not None else ""
    raise error(reason, span=span, **extra)
