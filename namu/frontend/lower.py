"""Lower a ``@namu.workflow`` body (Python ``ast``) to SSA form in namu's ONNX IR.

The rule: a compiled workflow means exactly what the same function means when its tasks
are called as plain Python. Constructs the IR cannot express with that meaning are
rejected with :class:`~namu.errors.WorkflowSyntaxError` at the user's line (the fixed
messages are the tables of :mod:`namu.frontend.rejections`).

How each construct lowers:

* assignment, tuple unpacking: SSA renaming; ``namu.Unpack`` for non-literal right sides;
* literals: ``Constant`` (typed tensors), ``SequenceConstruct``, ``namu.List/Tuple/Dict``;
* operators on scalars: standard ONNX ops (``Add``, ``Less``, ``And``, ...) where they
  mean exactly Python's operator on the operand types, else ``namu.Arith`` (``/``,
  ``//``, ``**``, mixed int/float/bool arithmetic) and ``namu.Compare``;
* ``if``/``elif``/``else`` and ``x if c else y``: an ``If`` whose outputs are the phi
  values of the variables assigned in the branches and live afterwards;
* ``while``: a ``Loop`` whose loop-carried values are the live assigned variables;
* ``for x in xs``: a ``Loop`` over ``SequenceAt`` if the body carries a variable from
  one iteration to the next, else a ``namu.Map`` fan-out;
* list comprehensions: ``namu.Map`` fan-outs, nested generators flattened;
* calls: ``namu.Task`` for tasks, a ``namu.workflow`` function call for sub-workflows,
  ``namu.Slot`` for role slots (``namu.slot``), bound to tasks by ``resolve-slots``.

One lowering object does it all: the :class:`~namu.frontend.builder.IRBuilder` makes the
nodes, and the lowering of statements (:mod:`~namu.frontend.statements`), expressions
(:mod:`~namu.frontend.expressions`), calls (:mod:`~namu.frontend.calls`) and names
(:mod:`~namu.frontend.names`) is mixed into it.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import onnx_ir as ir

from namu.frontend.builder import IRBuilder, Scope, base_name
from namu.frontend.calls import CallLowering, add_function, lower_callees
from namu.frontend.context import CompileContext
from namu.frontend.expressions import ExpressionLowering
from namu.frontend.liveness import SCAN_WALRUS, first_assignments
from namu.frontend.names import NameResolution, Namespace, is_literal
from namu.frontend.reads import is_mutable
from namu.frontend.source import FunctionSource
from namu.frontend.statements import Returned, StatementLowering
from namu.frontend.workflow import Workflow
from namu.ir.metadata import Parameter, Signature
from namu.ir.scopes import subgraphs
from namu.ir.types import ValueType, from_annotation

__all__ = ["CompileContext", "lower_workflow"]


def lower_workflow(workflow: Workflow, ctx: CompileContext) -> tuple[ir.Graph, Signature, str]:
    """Lower ``workflow`` into a main graph.

    Returns:
        The graph, the workflow's :class:`Signature`, and the ``sha256:`` digest of the
        source that was lowered (for the compile passport).

    Raises:
        WorkflowSyntaxError: the body uses a construct namu cannot lower.
    """
    lowering = _Lowering(workflow, ctx)
    ctx.in_progress.append(workflow)
    try:
        lower_callees(lowering)
        graph, signature = lowering.lower_graph()
        if id(workflow) in ctx.recursive:  # it calls itself: those calls need it as a function
            add_function(_Lowering(workflow, ctx))
    finally:
        ctx.in_progress.pop()
    if ctx.functions:
        _rename_main_first(graph, ctx)
    return graph, signature, lowering.src.digest


def _rename_main_first(graph: ir.Graph, ctx: CompileContext) -> None:
    """Name every value, node and subgraph again, the main graph's first.

    Sub-workflows are lowered before their callers, so they took the plain names (``x``,
    ``inc``) and left the main graph suffixed ones (``x_3``); the main graph is what
    ``namu inspect`` and error messages show, so it gets them back. The functions keep
    their own names (call nodes name them).
    """
    ctx.restart_names(ctx.functions)

    def rename(g: ir.Graph) -> None:
        for value in g.inputs:
            value.name = ctx.fresh(base_name(value.name))
        for node in g:
            for inner in subgraphs(node):  # lowered before the node that holds them
                rename(inner)
                inner.name = ctx.fresh(base_name(inner.name))
            node.name = ctx.fresh(base_name(node.name))
            for value in node.outputs:
                value.name = ctx.fresh(base_name(value.name))

    rename(graph)
    for function in ctx.functions.values():
        rename(function.graph)


class _Lowering(StatementLowering, ExpressionLowering, CallLowering, NameResolution, IRBuilder):
    """The lowering of one workflow's body into a graph."""

    nesting_advice = "move the inner work into a task, or mark a sub-workflow @namu.workflow(inline=False)"
    #: lowering the body of a sub-workflow function (not the main graph)
    as_function = False

    def __init__(self, workflow: Workflow, ctx: CompileContext) -> None:
        super().__init__(ctx, FunctionSource(workflow.fn))
        self.wf = workflow
        # Names the body assigns are local to the whole body, as in Python: reading one
        # before its assignment is an error, never the global of the same name.
        with self.scanning():
            self.local_sites = first_assignments(self.src.tree.body)
        args = self.src.tree.args
        self.local_names = set(self.local_sites) | {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
        fn = workflow.fn
        self._globals: dict[str, Any] = fn.__globals__
        self._builtins: dict[str, Any] = fn.__builtins__
        self._cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or ()))

    @contextlib.contextmanager
    def scanning(self) -> Iterator[None]:
        """Liveness looks for assignment expressions only if this source may hold one."""
        token = SCAN_WALRUS.set(":=" in self.src.text)
        try:
            yield
        finally:
            SCAN_WALRUS.reset(token)

    def lower_graph(self) -> tuple[ir.Graph, Signature]:
        """The body as a graph (named after the workflow), and the workflow's signature."""
        with self.scanning():
            return self._lower_graph()

    def _lower_graph(self) -> tuple[ir.Graph, Signature]:
        fdef = self.src.tree
        scope = Scope({})
        inputs, params = self._parameters(fdef, scope)
        result = self._function_body(fdef, scope)
        if self.as_function and id(self.wf) in self.ctx.recursive:  # one value: see calls._recursive_call
            result = Returned("value", [self._pack(scope, result)])
        outputs = [self.ensure_local(scope, v, fdef) for v in result.values]
        self.dedupe_outputs(scope, outputs, fdef)
        graph = self.main_graph(scope, inputs, outputs, self.wf.name)
        signature = Signature(
            name=self.wf.name,
            file=self.src.filename,
            params=params,
            returns=result.kind,  # type: ignore[arg-type]
            return_keys=result.keys,
        )
        return graph, signature

    def _parameters(self, fdef: ast.FunctionDef | ast.AsyncFunctionDef, scope: Scope) -> tuple[list[ir.Value], list[Parameter]]:
        """The graph's inputs, one per parameter (bound in ``scope``), and the signature's parameters."""
        args = fdef.args
        sig = self.wf.signature
        try:
            hints = inspect.get_annotations(self.wf.fn, locals=Namespace(self), eval_str=True)
        except Exception as exc:  # noqa: BLE001 - a forward reference that does not resolve
            self.src.fail(fdef, f"cannot evaluate the workflow's annotations: {type(exc).__name__}: {exc}")
        inputs: list[ir.Value] = []
        params: list[Parameter] = []
        positional = [*args.posonlyargs, *args.args]
        default_nodes: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
        kinds = ["positional_only"] * len(args.posonlyargs) + ["positional_or_keyword"] * len(args.args)
        ordered: list[tuple[ast.arg, ast.expr | None, str]] = list(zip(positional, default_nodes, kinds))
        if args.vararg is not None:
            ordered.append((args.vararg, None, "var_positional"))
        ordered += [(a, d, "keyword_only") for a, d in zip(args.kwonlyargs, args.kw_defaults)]
        if args.kwarg is not None:
            ordered.append((args.kwarg, None, "var_keyword"))
        for arg, default_node, kind in ordered:
            p = sig.parameters[arg.arg]
            if kind.startswith("var_"):  # *args: a tuple of values, **kwargs: a dict by name
                vtype = ValueType.opaque("tuple" if kind == "var_positional" else "dict")
                scope.env[arg.arg] = value = self.graph_input(scope, arg.arg, vtype)
                inputs.append(value)
                params.append(Parameter(name=arg.arg, type=str(vtype), kind=kind))
                continue
            vtype = from_annotation(hints.get(arg.arg, inspect.Parameter.empty))
            scope.env[arg.arg] = value = self.graph_input(scope, arg.arg, vtype)
            inputs.append(value)
            default = None
            has_default = p.default is not inspect.Parameter.empty
            if has_default:
                if is_mutable(p.default):
                    # Python evaluates a default once and shares it between calls (mutations
                    # included); a compiled run rebuilds it each time and cannot share it.
                    self.src.fail(
                        default_node or arg,
                        f"the default of `{arg.arg}` is a mutable {type(p.default).__name__}, which Python "
                        "shares between calls; use None (and build the value in the body) or a tuple",
                    )
                if not is_literal(p.default):
                    self.src.fail(arg, f"the default of `{arg.arg}` must be a literal (None, bool, int, float, str, or a tuple of them)")
                default = p.default
            params.append(Parameter(name=arg.arg, type=str(vtype), has_default=has_default, default=default, kind=kind))
        return inputs, params
