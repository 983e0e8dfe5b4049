"""Lower a ``@namu.workflow`` body (Python ``ast``) to SSA form in namu's ONNX IR.

The rule: a compiled workflow means exactly what the same function means when its tasks
are called as plain Python. Constructs the IR cannot express with that meaning are
rejected with :class:`~namu.errors.WorkflowSyntaxError` at the user's line.

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
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import os
from collections import ChainMap
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from types import CodeType
from typing import Any, NoReturn

import numpy as np
import onnx_ir as ir

from namu.frontend.liveness import assigned_names, first_assignments, live_before, target_names
from namu.frontend.reads import MISSING, NameReads, is_mutable
from namu.frontend.slot import Slot
from namu.frontend.source import FunctionSource
from namu.frontend.task import Task
from namu.frontend.workflow import Workflow
from namu.ir.metadata import INLINE_KEY, SPAN_KEY, Parameter, Signature, TaskEntry
from namu.ir.opsets import NAMU_DOMAIN, WORKFLOW_DOMAIN, opset_imports
from namu.ir.scopes import subgraphs
from namu.ir.types import ValueType, accepts, arithmetic_type, constant_int, from_annotation, set_type, type_of

__all__ = ["CompileContext", "lower_workflow"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: How deep graphs may nest (If branches, Loop and Map bodies, counting those of the
#: sub-workflows inlined into them). An artifact must load: protobuf parses at most 100
#: nested messages (the limit of ONNX's loader and checker), each nested graph costs
#: three (graph, node, attribute), and a value's type takes up to about ten more; 24
#: levels leave room for deep types and the bodies passes add.
MAX_NESTING = 24
#: Python's binary arithmetic operators -> their names in ``operator`` (``namu.Arith``'s op).
_OPERATORS = {
    ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "truediv",
    ast.FloorDiv: "floordiv", ast.Mod: "mod", ast.Pow: "pow",
}
#: (operator, kind of every operand) -> the standard op meaning exactly Python's operator.
_STANDARD_ARITH = {
    ("add", "int"): "Add", ("add", "float"): "Add", ("sub", "int"): "Sub", ("sub", "float"): "Sub",
    ("mul", "int"): "Mul", ("mul", "float"): "Mul", ("neg", "int"): "Neg", ("neg", "float"): "Neg",
    ("mod", "int"): "Mod",
}
_COMPARE_NAMES = {ast.Eq: "eq", ast.NotEq: "ne", ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge"}
_COMPARE = {ast.Lt: "Less", ast.LtE: "LessOrEqual", ast.Gt: "Greater", ast.GtE: "GreaterOrEqual"}

# Statements and expressions with no lowering, and why (the message the user sees).
_REJECTED_STMTS: dict[type, str] = {
    ast.Try: "try/except is not supported in a workflow; handle errors inside a task "
    "(or use @namu.task(retries=..., on_error='skip'))",
    ast.With: "`with` is not supported in a workflow; open resources inside a task",
    ast.AsyncWith: "`async with` is not supported in a workflow",
    ast.AsyncFor: "`async for` is not supported in a workflow",
    ast.Raise: "`raise` is not supported in a workflow; raise inside a task",
    ast.Assert: "`assert` is not supported in a workflow; check inside a task",
    ast.Delete: "`del` is not supported in a workflow",
    ast.Global: "`global` is not supported in a workflow",
    ast.Nonlocal: "`nonlocal` is not supported in a workflow",
    ast.Import: "imports are not supported in a workflow; import at module level",
    ast.ImportFrom: "imports are not supported in a workflow; import at module level",
    ast.FunctionDef: "nested function definitions are not supported in a workflow; "
    "define a @namu.task at module level",
    ast.AsyncFunctionDef: "nested function definitions are not supported in a workflow",
    ast.ClassDef: "class definitions are not supported in a workflow",
    ast.Break: "`break` is not supported in a workflow loop; put the exit test in the "
    "`while` condition",
    ast.Continue: "`continue` is not supported in a workflow loop; use `if` in the body",
    ast.Match: "`match` is not supported in a workflow; use if/elif",
}
_REJECTED_EXPRS: dict[type, str] = {
    ast.Lambda: "lambda is not supported in a workflow; define a @namu.task",
    ast.Await: "`await` is not supported in a workflow: call async tasks directly, namu awaits them",
    ast.Yield: "`yield` is not supported in a workflow",
    ast.YieldFrom: "`yield from` is not supported in a workflow",
    ast.NamedExpr: "assignment expressions (:=) are not supported in a workflow",
    ast.Set: "set literals are not supported in a workflow",
    ast.SetComp: "set comprehensions are not supported in a workflow",
    ast.DictComp: "dict comprehensions are not supported in a workflow",
    ast.GeneratorExp: "generator expressions are not supported in a workflow; "
    "use a list comprehension",
    ast.Starred: "starred expressions are not supported in a workflow",
    ast.Slice: "slices are not supported in a workflow; slice inside a task",
}


@dataclasses.dataclass
class _Return:
    """What a block returns: one value, a tuple of values, or a dict of values."""

    kind: str  # "value" | "tuple" | "dict"
    values: list[ir.Value]
    keys: list[str] = dataclasses.field(default_factory=list)
    node: ast.AST | None = None

    def same_shape(self, other: _Return) -> bool:
        return (self.kind, len(self.values), self.keys) == (other.kind, len(other.values), other.keys)


class _Scope:
    """One graph under construction: a main graph, a function body or a subgraph."""

    def __init__(self, env: MutableMapping[str, ir.Value], depth: int = 0) -> None:
        self.env = env
        self.nodes: list[ir.Node] = []
        self.produced: set[int] = set()  # ids of values produced in this scope
        self.depth = depth  # the graphs enclosing this one in its function

    def child(self) -> _Scope:
        """A nested scope: sees this scope's variables; its assignments stay its own
        (O(1): a ChainMap layer, not a copy, so long workflows lower in linear time)."""
        return _Scope(ChainMap({}, self.env), self.depth + 1)


class CompileContext:
    """State shared by the lowering of one workflow and all its sub-workflows.

    Holds the model-wide SSA name allocator, the task table, the lowered functions, and
    the names the lowering resolved in the workflows' namespaces (``reads``: what a cached
    compile must re-check before it is reused).
    """

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._next_suffix: dict[str, int] = {}
        self.tasks: dict[str, Task] = {}  # key -> Task
        self._task_keys: dict[int, str] = {}  # id(Task) -> key
        self.functions: dict[str, ir.Function] = {}
        self.function_signatures: dict[str, Signature] = {}
        self.function_nesting: dict[str, int] = {}  # function name -> its graphs' nesting once inlined
        self._function_names: dict[int, str] = {}  # id(Workflow) -> function name
        self._in_progress: list[Workflow] = []  # the workflows being lowered, outermost first
        self.reads = NameReads()

    def fresh(self, hint: str) -> str:
        """A model-wide unique SSA name based on ``hint`` (amortized O(1))."""
        hint = hint or "v"
        if hint not in self._names:
            self._names.add(hint)
            return hint
        i = self._next_suffix.get(hint, 1)
        while f"{hint}_{i}" in self._names:
            i += 1
        name = f"{hint}_{i}"
        self._next_suffix[hint] = i + 1
        self._names.add(name)
        return name

    def task_key(self, task: Task) -> str:
        key = self._task_keys.get(id(task))
        if key is None:
            key = task.name
            i = 1
            while key in self.tasks:
                i += 1
                key = f"{task.name}_{i}"
            self.tasks[key] = task
            self._task_keys[id(task)] = key
            if task.fallback is not None:  # a fallback is called by the runtime: table it too
                self.task_key(task.fallback)
        return key

    def task_table(self) -> list[TaskEntry]:
        """One :class:`TaskEntry` per task called, with its parameter and return types."""
        entries = []
        for key, task in self.tasks.items():
            fn = task.fn
            try:
                file = inspect.getsourcefile(fn) or ""
            except TypeError:
                file = ""
            try:
                hints = inspect.get_annotations(fn, eval_str=True)
            except Exception:  # noqa: BLE001 - unresolvable string annotations are opaque
                hints = {}
            prefix = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}
            params = [
                Parameter(
                    name=prefix.get(p.kind, "") + p.name,
                    type=str(from_annotation(hints.get(p.name, inspect.Parameter.empty))),
                    has_default=p.default is not inspect.Parameter.empty,
                )
                for p in task.signature.parameters.values()
            ]
            entries.append(
                TaskEntry(
                    key=key,
                    module=fn.__module__,
                    qualname=fn.__qualname__,
                    file=os.path.abspath(file) if file else "",
                    digest=task.digest,
                    is_async=task.is_async,
                    options=task.options if task.fallback is None else task.options.model_copy(
                        update={"fallback": self._task_keys[id(task.fallback)]}
                    ),
                    params=params,
                    returns=str(task.return_type),
                )
            )
        return entries


def lower_workflow(workflow: Workflow, ctx: CompileContext) -> tuple[ir.Graph, Signature, str]:
    """Lower ``workflow`` into a main graph.

    Returns:
        The graph, the workflow's :class:`Signature`, and the ``sha256:`` digest of the
        source that was lowered (for the compile passport).

    Raises:
        WorkflowSyntaxError: the body uses a construct namu cannot lower.
    """
    lowering = _Lowering(workflow, ctx)
    ctx._in_progress.append(workflow)
    try:
        _lower_callees(lowering)
        graph, signature = lowering.lower_graph()
    finally:
        ctx._in_progress.pop()
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
    ctx._names = set(ctx.functions)
    ctx._next_suffix = {}

    def rename(g: ir.Graph) -> None:
        for value in g.inputs:
            value.name = ctx.fresh(_base(value.name))
        for node in g:
            for inner in subgraphs(node):  # lowered before the node that holds them
                rename(inner)
                inner.name = ctx.fresh(_base(inner.name))
            node.name = ctx.fresh(_base(node.name))
            for value in node.outputs:
                value.name = ctx.fresh(_base(value.name))

    rename(graph)
    for function in ctx.functions.values():
        rename(function.graph)


class _Lowering:
    def __init__(self, workflow: Workflow, ctx: CompileContext) -> None:
        self.wf = workflow
        self.ctx = ctx
        self.src = FunctionSource(workflow.fn)
        # Names the body assigns are local to the whole body, as in Python: reading one
        # before its assignment is an error, never the global of the same name.
        self.local_sites = first_assignments(self.src.tree.body)
        self.local_names = set(self.local_sites) | {a.arg for a in self.src.tree.args.args}
        fn = workflow.fn
        self._globals: dict[str, Any] = fn.__globals__
        self._builtins: dict[str, Any] = fn.__builtins__
        self._cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or ()))
        self.nesting = 0  # how deep the graphs of the body nest, with those of inlined calls

    # ------------------------------------------------------------------ names
    def _resolve(self, name: str) -> Any:
        """What ``name`` means where the workflow is defined -- its closure variable, else
        its module's global, else the builtin -- or :data:`MISSING`. Each resolution is
        recorded in ``ctx.reads``, which a cached compile re-checks before it is reused."""
        return self._lookup(name, self.ctx.reads)

    def _lookup(self, name: str, reads: NameReads | None) -> Any:
        """:meth:`_resolve`, recording in ``reads`` unless it is None."""
        cell = self._cells.get(name)
        if cell is not None:
            try:
                value = cell.cell_contents
            except ValueError:  # a closure variable not assigned (yet)
                return MISSING
            if reads is not None:
                reads.cell(cell, value)
            return value
        value = self._globals.get(name, MISSING)
        if reads is not None:
            reads.key(self._globals, name, value)
        if value is MISSING:
            value = self._builtins.get(name, MISSING)
            if reads is not None:
                reads.key(self._builtins, name, value)
        return value

    def _nest(self, depth: int, at: ast.AST, call: Workflow | None = None) -> None:
        """Graphs nest ``depth`` deep at ``at``: record it, or reject it past :data:`MAX_NESTING`."""
        if depth > MAX_NESTING:
            through = f" (counting the sub-workflow bodies the call of `{call.name}` inlines)" if call is not None else ""
            self.src.fail(
                at,
                f"control flow is nested more than {MAX_NESTING} levels deep here{through}, more than an "
                "ONNX artifact can hold; move the inner work into a task, or mark a sub-workflow "
                "@namu.workflow(inline=False)",
            )
        self.nesting = depth

    def _fail_unbound_local(self, node: ast.AST, name: str) -> NoReturn:
        """Reject a read of a local name the body has not assigned yet on this path."""
        site = self.local_sites.get(name)
        where = f" (it is assigned at line {self.src.position(site)[0]})" if site is not None else ""
        self.src.fail(
            node,
            f"`{name}` is local in the workflow{where} and is read here before it is assigned; "
            "Python raises UnboundLocalError (a name assigned anywhere in a function is local "
            "to all of it: rename the local or the global)",
        )

    def _global_path(self, func: ast.expr) -> tuple[ast.Name, tuple[str, ...]] | None:
        """``(base, attributes)`` of ``name`` or ``name.a.b``, else None."""
        path: list[str] = []
        while isinstance(func, ast.Attribute):
            path.append(func.attr)
            func = func.value
        return (func, tuple(reversed(path))) if isinstance(func, ast.Name) else None

    def _follow(self, base: Any, path: tuple[str, ...]) -> Any:
        """``base.<path...>`` (recorded in ``ctx.reads``), or :data:`MISSING`."""
        obj = base
        for attr in path:
            try:
                obj = getattr(obj, attr)
            except Exception:  # noqa: BLE001 - a missing or failing attribute: not callable here
                return MISSING
        if path:
            self.ctx.reads.attribute(base, path, obj)
        return obj

    def workflow_calls(self) -> Iterator[tuple[ast.Call, Workflow]]:
        """The calls of sub-workflows in the body, in source order, found by resolving each
        callee's name statically (a name the body or a comprehension binds is skipped;
        lowering resolves those calls itself)."""
        if not any(_may_lead_to_workflow(self._lookup(name, None)) for name in _code_names(self.wf.fn.__code__)):
            return  # no name of the body can be a workflow: skip the walk over the tree
        bound = set(self.local_names)
        calls: list[ast.Call] = []
        for stmt in self.src.tree.body:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Call):
                    calls.append(node)
                elif isinstance(node, ast.comprehension):
                    bound |= target_names(node.target)
        calls.sort(key=lambda c: (c.lineno, c.col_offset))
        for call in calls:
            found = self._global_path(call.func)
            if found is None or found[0].id in bound:
                continue
            base = self._resolve(found[0].id)
            callee = MISSING if base is MISSING else self._follow(base, found[1])
            if isinstance(callee, Workflow):
                yield call, callee

    # ------------------------------------------------------------------ entry points
    def lower_graph(self) -> tuple[ir.Graph, Signature]:
        fdef = self.src.tree
        inputs, params = self._parameters(fdef)
        scope = _Scope({p.name: v for p, v in zip(params, inputs)})
        for v in inputs:
            scope.produced.add(id(v))
        result = self._function_body(fdef, scope)
        outputs = [self._ensure_local(scope, v, self.src.tree) for v in result.values]
        self._dedupe_outputs(scope, outputs)
        graph = ir.Graph(
            inputs,
            outputs,
            nodes=scope.nodes,
            name=self.wf.name,
            opset_imports=opset_imports(),
        )
        signature = Signature(
            name=self.wf.name,
            file=self.src.filename,
            params=params,
            returns=result.kind,  # type: ignore[arg-type]
            return_keys=result.keys,
        )
        return graph, signature

    def _parameters(self, fdef: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[list[ir.Value], list[Parameter]]:
        args = fdef.args
        for bad, what in ((args.vararg, "*args"), (args.kwarg, "**kwargs")):
            if bad is not None:
                self.src.fail(bad, f"{what} parameters are not supported in a workflow")
        if args.posonlyargs or args.kwonlyargs:
            node = (args.posonlyargs or args.kwonlyargs)[0]
            self.src.fail(node, "positional-only and keyword-only parameters are not supported")
        sig = self.wf.signature
        try:
            hints = inspect.get_annotations(self.wf.fn, locals=_Namespace(self), eval_str=True)
        except Exception as exc:  # noqa: BLE001 - a forward reference that does not resolve
            self.src.fail(fdef, f"cannot evaluate the workflow's annotations: {type(exc).__name__}: {exc}")
        inputs: list[ir.Value] = []
        params: list[Parameter] = []
        default_nodes: list[ast.expr | None] = [None] * (len(args.args) - len(args.defaults)) + list(args.defaults)
        for arg, default_node in zip(args.args, default_nodes):
            p = sig.parameters[arg.arg]
            vtype = from_annotation(hints.get(arg.arg, inspect.Parameter.empty))
            value = ir.Value(name=self.ctx.fresh(arg.arg))
            set_type(value, vtype)
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
                if not _is_literal(p.default):
                    self.src.fail(arg, f"the default of `{arg.arg}` must be a literal (None, bool, int, float, str, or a tuple of them)")
                default = p.default
            params.append(Parameter(name=arg.arg, type=str(vtype), has_default=has_default, default=default))
        return inputs, params

    def _function_body(self, fdef: ast.FunctionDef | ast.AsyncFunctionDef, scope: _Scope) -> _Return:
        body = list(fdef.body)
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body = body[1:]  # docstring
        if not _terminates(body):
            end = ast.Return(value=None)
            ast.copy_location(end, fdef.body[-1])
            end.lineno = getattr(fdef.body[-1], "end_lineno", end.lineno)
            body.append(end)
        result = self._block(body, scope, set())
        assert result is not None  # the body ends in a return
        return result

    # ------------------------------------------------------------------ IR helpers
    def _emit(
        self,
        scope: _Scope,
        op_type: str,
        inputs: Sequence[ir.Value | None],
        out_types: Sequence[ValueType],
        at: ast.AST,
        *,
        domain: str = "",
        attrs: Sequence[ir.Attr] = (),
        names: Sequence[str] | None = None,
    ) -> list[ir.Value]:
        node = ir.Node(
            domain,
            op_type,
            inputs,
            attributes=list(attrs),
            num_outputs=len(out_types),
            name=self.ctx.fresh(f"n_{op_type}"),
        )
        if scope.depth > self.nesting:
            self._nest(scope.depth, at)
        node.metadata_props[SPAN_KEY] = self.src.span(at)
        hints = names or [op_type.lower()] * len(out_types)
        for value, vtype, hint in zip(node.outputs, out_types, hints):
            value.name = self.ctx.fresh(hint)
            set_type(value, vtype)
            scope.produced.add(id(value))
        scope.nodes.append(node)
        return list(node.outputs)

    def _emit1(self, scope: _Scope, op_type: str, inputs: Sequence[ir.Value | None], out: ValueType, at: ast.AST, **kw: Any) -> ir.Value:
        return self._emit(scope, op_type, inputs, [out], at, **kw)[0]

    def _const(self, scope: _Scope, value: Any, at: ast.AST, hint: str = "const") -> ir.Value:
        """A typed literal: ``Constant`` for scalars, sequences / namu ops for containers."""
        if value is None:
            return self._emit1(scope, "None", [], ValueType.opaque("NoneType"), at, domain=NAMU_DOMAIN, names=[hint])
        if isinstance(value, bool):
            tensor = ir.tensor(np.array(value, dtype=np.bool_))
            return self._emit1(scope, "Constant", [], ValueType.bool(), at, attrs=[ir.AttrTensor("value", tensor)], names=[hint])
        if isinstance(value, int):
            if not _INT64_MIN <= value <= _INT64_MAX:
                self.src.fail(at, f"integer literal {value} does not fit in 64 bits")
            tensor = ir.tensor(np.array(value, dtype=np.int64))
            return self._emit1(scope, "Constant", [], ValueType.int(), at, attrs=[ir.AttrTensor("value", tensor)], names=[hint])
        if isinstance(value, float):
            tensor = ir.tensor(np.array(value, dtype=np.float64))
            return self._emit1(scope, "Constant", [], ValueType.float(), at, attrs=[ir.AttrTensor("value", tensor)], names=[hint])
        if isinstance(value, str):
            tensor = ir.StringTensor(np.array([value.encode("utf-8")], dtype=object).reshape(()), shape=ir.Shape([]))
            return self._emit1(scope, "Constant", [], ValueType.str(), at, attrs=[ir.AttrTensor("value", tensor)], names=[hint])
        if isinstance(value, (list, tuple)):
            items = [self._const(scope, v, at) for v in value]
            return self._container(scope, "List" if isinstance(value, list) else "Tuple", items, at)
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                self.src.fail(at, "dict constants need string keys")
            items = [self._const(scope, v, at) for v in value.values()]
            return self._dict(scope, list(value), items, at)
        self.src.fail(at, f"a constant of type {type(value).__name__} cannot be used in a workflow")

    def _container(self, scope: _Scope, kind: str, items: list[ir.Value], at: ast.AST) -> ir.Value:
        types = [type_of(v) for v in items]
        if kind == "List":
            if items and all(t == types[0] for t in types) and types[0].is_onnx:
                return self._emit1(scope, "SequenceConstruct", items, ValueType.list(types[0]), at, names=["list"])
            return self._emit1(scope, "List", items, ValueType.opaque("list"), at, domain=NAMU_DOMAIN)
        return self._emit1(scope, "Tuple", items, ValueType.opaque("tuple", items=tuple(types)), at, domain=NAMU_DOMAIN)

    def _dict(self, scope: _Scope, keys: list[str], values: list[ir.Value], at: ast.AST) -> ir.Value:
        """``namu.Dict``: a dict with string keys."""
        return self._emit1(scope, "Dict", values, ValueType.opaque("dict"), at, domain=NAMU_DOMAIN, attrs=[ir.AttrStrings("keys", keys)])

    def _identity(self, scope: _Scope, value: ir.Value, at: ast.AST) -> ir.Value:
        vtype = type_of(value)
        domain = "" if vtype.is_onnx else NAMU_DOMAIN
        return self._emit1(scope, "Identity", [value], vtype, at, domain=domain, names=[_base(value.name)])

    def _ensure_local(self, scope: _Scope, value: ir.Value, at: ast.AST) -> ir.Value:
        """Graph outputs must be produced in their own graph: copy outer values in."""
        if id(value) in scope.produced and value.producer() is not None:
            return value
        return self._identity(scope, value, at)

    def _dedupe_outputs(self, scope: _Scope, outputs: list[ir.Value]) -> None:
        seen: set[int] = set()
        for i, v in enumerate(outputs):
            if id(v) in seen:
                outputs[i] = self._identity(scope, v, self.src.tree)
            seen.add(id(outputs[i]))

    def _cast(self, scope: _Scope, value: ir.Value, to: ValueType, at: ast.AST) -> ir.Value:
        if type_of(value) == to:
            return value
        dtype = to.onnx_type.dtype  # type: ignore[union-attr]
        return self._emit1(scope, "Cast", [value], to, at, attrs=[ir.AttrInt64("to", dtype.value)], names=[_base(value.name)])

    def _truth(self, scope: _Scope, value: ir.Value, at: ast.AST) -> ir.Value:
        """A bool tensor holding Python's ``bool(value)``."""
        if type_of(value).kind == "bool":
            return value
        return self._emit1(scope, "Truth", [value], ValueType.bool(), at, domain=NAMU_DOMAIN, names=["cond"])

    # ------------------------------------------------------------------ statements
    def _block(self, stmts: list[ast.stmt], scope: _Scope, live_out: set[str]) -> _Return | None:
        """Lower a statement list; return what it returns (``None`` if it falls through)."""
        stmts = list(stmts)
        for i, stmt in enumerate(stmts):
            if isinstance(stmt, ast.If) and i + 1 < len(stmts) and _contains_return(stmt) and not _terminates([stmt]):
                # `if c: return a` followed by more code: the rest runs on every path of
                # the `if` that falls through, so it moves to the end of those paths.
                stmts = stmts[:i] + [_append_rest(stmt, stmts[i + 1 :])]
                break
        # Backward liveness once for the whole block: live[i] holds after statement i.
        live = [set(live_out)] * len(stmts)
        after = set(live_out)
        for i in range(len(stmts) - 1, -1, -1):
            live[i] = after
            after = live_before([stmts[i]], after)
        for i, stmt in enumerate(stmts):
            result = self._stmt(stmt, scope, live[i])
            if result is not None:
                if i + 1 < len(stmts):
                    self.src.fail(stmts[i + 1], "unreachable code after `return`")
                return result
        return None

    def _stmt(self, stmt: ast.stmt, scope: _Scope, live_after: set[str]) -> _Return | None:
        message = _REJECTED_STMTS.get(type(stmt))
        if message is not None:
            self.src.fail(stmt, message)
        if isinstance(stmt, ast.Return):
            return self._return(stmt, scope)
        if isinstance(stmt, ast.Assign):
            value = stmt.value
            for target in stmt.targets:
                self._check_target(target)
            if len(stmt.targets) == 1 and isinstance(stmt.targets[0], (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)):
                self._assign_parallel(stmt.targets[0], value, scope)
                return None
            result = self._expr(value, scope)
            for target in stmt.targets:
                self._bind(target, result, scope, stmt)
            return None
        if isinstance(stmt, ast.AnnAssign):
            self._check_target(stmt.target)
            if stmt.value is not None:
                self._bind(stmt.target, self._annotated(stmt, scope), scope, stmt)
            return None
        if isinstance(stmt, ast.AugAssign):
            self._check_target(stmt.target)
            assert isinstance(stmt.target, ast.Name)
            load = ast.Name(id=stmt.target.id, ctx=ast.Load())
            ast.copy_location(load, stmt.target)
            binop = ast.BinOp(left=load, op=stmt.op, right=stmt.value)
            ast.copy_location(binop, stmt)
            self._bind(stmt.target, self._expr(binop, scope), scope, stmt)
            return None
        if isinstance(stmt, ast.Expr):
            if isinstance(stmt.value, ast.Constant):
                return None  # a bare literal (docstring-like) has no effect
            self._expr(stmt.value, scope)
            return None
        if isinstance(stmt, ast.Pass):
            return None
        if isinstance(stmt, ast.If):
            return self._if(stmt, scope, live_after)
        if isinstance(stmt, ast.While):
            self._while(stmt, scope, live_after)
            return None
        if isinstance(stmt, ast.For):
            self._for(stmt, scope, live_after)
            return None
        self.src.fail(stmt, f"{type(stmt).__name__} statements are not supported in a workflow")

    def _annotated(self, stmt: ast.AnnAssign, scope: _Scope) -> ir.Value:
        """``x: T = value``: the annotation gives an untyped value (a dict item, the result
        of an unannotated task, ``[]``) its type. Annotations never change what Python
        computes, and namu's ops compute exactly what Python does, so trusting them is safe."""
        assert stmt.value is not None
        try:
            code = compile(ast.Expression(stmt.annotation), self.src.filename, "eval")
            annotation = eval(code, self._globals, _Namespace(self))  # noqa: S307
        except Exception as exc:  # noqa: BLE001 - any failure means we cannot read it
            self.src.fail(stmt.annotation, f"cannot evaluate the annotation: {type(exc).__name__}: {exc}")
        declared = from_annotation(annotation)
        if isinstance(stmt.value, ast.List) and not stmt.value.elts and declared.kind == "list" and declared.is_onnx:
            dtype = declared.elem.onnx_type.dtype if declared.elem and declared.elem.kind != "list" else None  # type: ignore[union-attr]
            if dtype is not None:
                return self._emit1(scope, "SequenceEmpty", [], declared, stmt.value, attrs=[ir.AttrInt64("dtype", dtype.value)], names=["empty"])
        value = self._expr(stmt.value, scope)
        actual = type_of(value)
        if actual == declared:
            return value
        if not accepts(declared, actual):  # PEP 484: `x: float = 3` is fine
            self.src.fail(stmt.annotation, f"the annotation says {declared} but the value is {actual}")
        return self._emit1(scope, "Identity", [value], declared, stmt, domain=NAMU_DOMAIN, names=[_base(value.name)])

    def _check_target(self, target: ast.expr) -> None:
        if isinstance(target, ast.Name):
            return
        if isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._check_target(elt)
            return
        if isinstance(target, ast.Attribute):
            self.src.fail(target, "attribute assignment is not supported in a workflow; values are immutable")
        if isinstance(target, ast.Subscript):
            self.src.fail(target, "subscript assignment is not supported in a workflow; values are immutable")
        if isinstance(target, ast.Starred):
            self.src.fail(target, "starred assignment is not supported in a workflow")
        self.src.fail(target, "unsupported assignment target")

    def _assign_parallel(self, target: ast.Tuple | ast.List, value: ast.Tuple | ast.List, scope: _Scope) -> None:
        if len(target.elts) != len(value.elts) or any(isinstance(e, ast.Starred) for e in value.elts):
            self.src.fail(value, f"cannot unpack {len(value.elts)} values into {len(target.elts)} names")
        results = [self._expr(v, scope) for v in value.elts]  # evaluate all right sides first
        for t, r in zip(target.elts, results):
            self._bind(t, r, scope, value)

    def _bind(self, target: ast.expr, value: ir.Value, scope: _Scope, at: ast.AST) -> None:
        if isinstance(target, ast.Name):
            scope.env[target.id] = value
            return
        assert isinstance(target, (ast.Tuple, ast.List))
        n = len(target.elts)
        vtype = type_of(value)
        if vtype.items is not None:
            if len(vtype.items) != n:
                self.src.fail(at, f"cannot unpack a {vtype} into {n} names")
            item_types = list(vtype.items)
        elif vtype.kind == "list" and vtype.elem is not None:
            item_types = [vtype.elem] * n
        else:
            item_types = [ValueType.opaque()] * n
        names = [t.id if isinstance(t, ast.Name) else "item" for t in target.elts]
        parts = self._emit(scope, "Unpack", [value], item_types, at, domain=NAMU_DOMAIN, names=names)
        for t, part in zip(target.elts, parts):
            self._bind(t, part, scope, at)

    def _return(self, stmt: ast.Return, scope: _Scope) -> _Return:
        value = stmt.value
        if isinstance(value, ast.Tuple):
            return _Return("tuple", [self._expr(v, scope) for v in value.elts], node=stmt)
        if isinstance(value, ast.Dict) and all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in value.keys) and value.keys:
            keys = [k.value for k in value.keys]  # type: ignore[union-attr]
            if len(set(keys)) != len(keys):
                self.src.fail(value, "duplicate keys in the returned dict")
            return _Return("dict", [self._expr(v, scope) for v in value.values], keys=keys, node=stmt)
        if value is None:
            return _Return("value", [self._const(scope, None, stmt, "none")], node=stmt)
        return _Return("value", [self._expr(value, scope)], node=stmt)

    def _pack(self, scope: _Scope, ret: _Return) -> ir.Value:
        """Turn a tuple/dict return into one value (when branches return different shapes)."""
        at = ret.node or self.src.tree
        if ret.kind == "value":
            return ret.values[0]
        if ret.kind == "tuple":
            return self._container(scope, "Tuple", ret.values, at)
        return self._dict(scope, ret.keys, ret.values, at)

    # ------------------------------------------------------------------ if / else
    def _if(self, stmt: ast.If, scope: _Scope, live_after: set[str]) -> _Return | None:
        cond = self._truth(scope, self._expr(stmt.test, scope), stmt.test)
        then_scope, else_scope = scope.child(), scope.child()
        then_ret = self._block(stmt.body, then_scope, live_after)
        else_ret = self._block(stmt.orelse, else_scope, live_after)
        if then_ret is not None and else_ret is not None:
            if not then_ret.same_shape(else_ret):
                then_ret = _Return("value", [self._pack(then_scope, then_ret)])
                else_ret = _Return("value", [self._pack(else_scope, else_ret)])
            outs = self._branches(stmt, cond, then_scope, then_ret.values, else_scope, else_ret.values, ["result"] * len(then_ret.values), scope)
            return _Return(then_ret.kind, outs, keys=then_ret.keys, node=stmt)
        assert then_ret is None and else_ret is None  # _block folded early returns
        assigned = assigned_names(stmt.body) | assigned_names(stmt.orelse)
        phis = sorted(assigned & live_after)
        for name in phis:
            for branch, branch_scope in (("if", then_scope), ("else", else_scope)):
                if name not in branch_scope.env:
                    self.src.fail(stmt, f"`{name}` is assigned only in some branches of this `if` but used after it; assign it in every branch or before the `if`")
        if not phis:
            if not then_scope.nodes and not else_scope.nodes:
                return None
        then_vals = [then_scope.env[n] for n in phis]
        else_vals = [else_scope.env[n] for n in phis]
        outs = self._branches(stmt, cond, then_scope, then_vals, else_scope, else_vals, phis, scope)
        for name, value in zip(phis, outs):
            scope.env[name] = value
        return None

    def _branches(
        self,
        at: ast.AST,
        cond: ir.Value,
        then_scope: _Scope,
        then_vals: list[ir.Value],
        else_scope: _Scope,
        else_vals: list[ir.Value],
        names: list[str],
        scope: _Scope,
    ) -> list[ir.Value]:
        """Emit an ``If`` in ``scope`` whose outputs are the phi values of the two branches."""
        then_outs = [self._ensure_local(then_scope, v, at) for v in then_vals]
        else_outs = [self._ensure_local(else_scope, v, at) for v in else_vals]
        self._dedupe_outputs(then_scope, then_outs)
        self._dedupe_outputs(else_scope, else_outs)
        out_types = [
            type_of(t) if type_of(t) == type_of(e) else ValueType.opaque()
            for t, e in zip(then_outs, else_outs)
        ]
        # Standard If needs at least one output and tensor/sequence types on every output.
        domain = "" if out_types and all(t.is_onnx for t in out_types) else NAMU_DOMAIN
        then_g = ir.Graph([], then_outs, nodes=then_scope.nodes, name=self.ctx.fresh("then_branch"))
        else_g = ir.Graph([], else_outs, nodes=else_scope.nodes, name=self.ctx.fresh("else_branch"))
        return self._emit(
            scope,
            "If",
            [cond],
            out_types,
            at,
            domain=domain,
            attrs=[ir.AttrGraph("then_branch", then_g), ir.AttrGraph("else_branch", else_g)],
            names=names,
        )

    # ------------------------------------------------------------------ loops
    def _while(self, stmt: ast.While, scope: _Scope, live_after: set[str]) -> None:
        if stmt.orelse:
            self.src.fail(stmt.orelse[0], "`while ... else` is not supported in a workflow")
        _reject_returns(self.src, stmt.body, "while")
        header_live = live_before([stmt], live_after)
        carried = sorted(assigned_names(stmt.body) & (header_live | live_after))
        self._check_carried(stmt, carried, scope, "while")
        cond0 = self._truth(scope, self._expr(stmt.test, scope), stmt.test)

        def body(body_scope: _Scope) -> ir.Value:
            self._block(stmt.body, body_scope, header_live)
            return self._truth(body_scope, self._expr(stmt.test, body_scope), stmt.test)

        self._loop(stmt, scope, None, cond0, carried, body)

    def _for(self, stmt: ast.For, scope: _Scope, live_after: set[str]) -> None:
        if stmt.orelse:
            self.src.fail(stmt.orelse[0], "`for ... else` is not supported in a workflow")
        _reject_returns(self.src, stmt.body, "for")
        self._check_target(stmt.target)
        targets = target_names(stmt.target)
        leaked = targets & live_after
        if leaked:
            self.src.fail(stmt.target, f"the loop variable `{sorted(leaked)[0]}` is used after the loop; namu loop variables are local to the loop")
        header_live = live_before([stmt], live_after)
        body_entry = live_before(stmt.body, header_live)
        carried = sorted((assigned_names(stmt.body) - targets) & ((body_entry - targets) | live_after))
        seq = self._expr(stmt.iter, scope)
        if not carried:
            # No variable flows between iterations: each item is an independent path.
            def fan_out_body(body_scope: _Scope) -> None:
                self._block(stmt.body, body_scope, set())

            self._map(stmt, scope, seq, stmt.target, fan_out_body, flatten=False)
            return
        self._check_carried(stmt, carried, scope, "for")
        seq_type = type_of(seq)
        if not (seq_type.is_onnx and seq_type.kind == "list"):
            # Iterate like Python (dicts yield keys, strings characters): materialize first.
            items_type = ValueType.list(self._elem_type(seq, stmt.iter))
            seq = self._emit1(scope, "ToList", [seq], items_type, stmt.iter, domain=NAMU_DOMAIN, names=["items"])
            seq_type = items_type
        if seq_type.is_onnx:
            count = self._emit1(scope, "SequenceLength", [seq], ValueType.int(), stmt.iter, names=["count"])
        else:
            count = self._emit1(scope, "Len", [seq], ValueType.int(), stmt.iter, domain=NAMU_DOMAIN, names=["count"])
        true = self._const(scope, True, stmt, "true")

        def body(body_scope: _Scope, iter_num: ir.Value, cond_in: ir.Value) -> ir.Value:
            elem = self._item(body_scope, seq, iter_num, stmt.target)
            self._bind(stmt.target, elem, body_scope, stmt.target)
            self._block(stmt.body, body_scope, header_live)
            return self._identity(body_scope, cond_in, stmt)

        self._loop(stmt, scope, count, true, carried, body, with_iter=True)

    def _item(self, scope: _Scope, seq: ir.Value, index: ir.Value, at: ast.AST) -> ir.Value:
        seq_type = type_of(seq)
        if seq_type.kind == "list" and seq_type.is_onnx:
            return self._emit1(scope, "SequenceAt", [seq, index], seq_type.elem, at, names=["item"])  # type: ignore[arg-type]
        elem = seq_type.elem if seq_type.kind == "list" and seq_type.elem else ValueType.opaque()
        return self._emit1(scope, "GetItem", [seq, index], elem, at, domain=NAMU_DOMAIN, names=["item"])

    def _elem_type(self, seq: ir.Value, at: ast.AST) -> ValueType:
        """The type of the items Python's iteration over ``seq`` yields."""
        seq_type = type_of(seq)
        if seq_type.kind in ("int", "float", "bool"):
            self.src.fail(at, f"cannot iterate over a value of type {seq_type}")
        if seq_type.kind == "list" and seq_type.elem is not None:
            return seq_type.elem
        if seq_type.kind == "str":
            return ValueType.str()
        return ValueType.opaque()

    def _check_carried(self, stmt: ast.stmt, carried: list[str], scope: _Scope, kind: str) -> None:
        for name in carried:
            if name not in scope.env:
                self.src.fail(stmt, f"`{name}` is first assigned inside the `{kind}` loop but read before assignment in the loop or after it; assign it before the loop")

    def _loop(
        self,
        stmt: ast.stmt,
        scope: _Scope,
        trip_count: ir.Value | None,
        cond0: ir.Value,
        carried: list[str],
        lower_body: Callable[..., ir.Value],
        with_iter: bool = False,
    ) -> None:
        """Emit a ``Loop``: body inputs (iter_num, cond_in, carried...), outputs (cond_out, carried...)."""
        init = [scope.env[n] for n in carried]
        types = [type_of(v) for v in init]
        body_scope = scope.child()
        iter_num = ir.Value(name=self.ctx.fresh("iter_num"))
        set_type(iter_num, ValueType.int())
        cond_in = ir.Value(name=self.ctx.fresh("cond_in"))
        set_type(cond_in, ValueType.bool())
        body_inputs = [iter_num, cond_in]
        for name, vtype in zip(carried, types):
            v = ir.Value(name=self.ctx.fresh(name))
            set_type(v, vtype)
            body_inputs.append(v)
            body_scope.env[name] = v
        for v in body_inputs:
            body_scope.produced.add(id(v))
        cond_out = lower_body(body_scope, iter_num, cond_in) if with_iter else lower_body(body_scope)
        outs = [self._ensure_local(body_scope, cond_out, stmt)]
        for name, vtype in zip(carried, types):
            value = body_scope.env[name]
            if type_of(value) != vtype:
                self.src.fail(stmt, f"`{name}` changes type inside the loop ({vtype} -> {type_of(value)}); a loop-carried variable must keep its type (e.g. start from 0.0 instead of 0)")
            outs.append(self._ensure_local(body_scope, value, stmt))
        self._dedupe_outputs(body_scope, outs)
        graph = ir.Graph(body_inputs, outs, nodes=body_scope.nodes, name=self.ctx.fresh("loop_body"))
        domain = "" if types and all(t.is_onnx for t in types) else NAMU_DOMAIN
        results = self._emit(scope, "Loop", [trip_count, cond0, *init], types, stmt, domain=domain, attrs=[ir.AttrGraph("body", graph)], names=carried)
        for name, value in zip(carried, results):
            scope.env[name] = value

    def _map(
        self,
        at: ast.AST,
        scope: _Scope,
        seq: ir.Value,
        target: ast.expr,
        lower_body: Callable[[_Scope], ir.Value | None],
        *,
        flatten: bool,
    ) -> ir.Value | None:
        """Emit a ``namu.Map`` fan-out over ``seq`` whose body binds ``target`` per item."""
        elem_type = self._elem_type(seq, at)
        body_scope = scope.child()
        item = ir.Value(name=self.ctx.fresh(target.id if isinstance(target, ast.Name) else "item"))
        set_type(item, elem_type)
        body_scope.produced.add(id(item))
        self._bind(target, item, body_scope, target)
        result = lower_body(body_scope)
        outs = [] if result is None else [self._ensure_local(body_scope, result, at)]
        graph = ir.Graph([item], outs, nodes=body_scope.nodes, name=self.ctx.fresh("map_body"))
        attrs: list[ir.Attr] = [ir.AttrGraph("body", graph), ir.AttrInt64("flatten", int(flatten))]
        if result is None:
            self._emit(scope, "Map", [seq], [], at, domain=NAMU_DOMAIN, attrs=attrs)
            return None
        rtype = type_of(result)
        if flatten:
            out_type = rtype if rtype.kind == "list" else ValueType.opaque("list")
        else:
            out_type = ValueType.list(rtype)
        return self._emit1(scope, "Map", [seq], out_type, at, domain=NAMU_DOMAIN, attrs=attrs, names=["gathered"])

    # ------------------------------------------------------------------ expressions
    def _expr(self, node: ast.expr, scope: _Scope) -> ir.Value:
        message = _REJECTED_EXPRS.get(type(node))
        if message is not None:
            self.src.fail(node, message)
        if isinstance(node, ast.Constant):
            return self._const(scope, node.value, node)
        if isinstance(node, ast.Name):
            return self._name(node, scope)
        if isinstance(node, ast.List):
            return self._container(scope, "List", [self._expr(e, scope) for e in node.elts], node)
        if isinstance(node, ast.Tuple):
            return self._container(scope, "Tuple", [self._expr(e, scope) for e in node.elts], node)
        if isinstance(node, ast.Dict):
            keys = []
            for k in node.keys:
                if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
                    self.src.fail(k or node, "dict literals in a workflow need string-literal keys")
                keys.append(k.value)
            values = [self._expr(v, scope) for v in node.values]
            return self._dict(scope, keys, values, node)
        if isinstance(node, ast.JoinedStr):
            return self._fstring(node, scope)
        if isinstance(node, ast.Attribute):
            return self._attribute(node, scope)
        if isinstance(node, ast.BinOp):
            return self._binop(node, scope)
        if isinstance(node, ast.UnaryOp):
            return self._unaryop(node, scope)
        if isinstance(node, ast.BoolOp):
            return self._boolop(node, scope)
        if isinstance(node, ast.Compare):
            return self._compare(node, scope)
        if isinstance(node, ast.IfExp):
            return self._ifexp(node, scope)
        if isinstance(node, ast.Call):
            return self._call(node, scope)
        if isinstance(node, ast.ListComp):
            return self._listcomp(node, node.generators, scope)
        if isinstance(node, ast.Subscript):
            return self._subscript(node, scope)
        self.src.fail(node, f"{type(node).__name__} expressions are not supported in a workflow")

    def _name(self, node: ast.Name, scope: _Scope) -> ir.Value:
        if node.id in scope.env:
            return scope.env[node.id]
        if node.id in self.local_names:
            self._fail_unbound_local(node, node.id)
        obj = self._resolve(node.id)
        if obj is MISSING:
            self.src.fail(node, f"name `{node.id}` is not defined")
        if isinstance(obj, (Task, Workflow)):
            self.src.fail(node, f"`{node.id}` is a namu task or workflow; it can only be called, not used as a value")
        if not _is_literal(obj):
            self.src.fail(node, f"`{node.id}` is a {type(obj).__name__}; a workflow can only use tasks, workflows and literal constants from its module")
        self.ctx.reads.constant(obj)  # folded into the IR: a change in place makes the compile stale
        return self._const(scope, obj, node, node.id)

    def _check_numeric(self, lt: ValueType, rt: ValueType, node: ast.AST, what: str) -> None:
        if not (lt.is_numeric and rt.is_numeric):
            hint = "annotate the value first (`n: int = ...`) or compute it inside a task" if "opaque" in (lt.kind, rt.kind) else "compute it inside a task"
            self.src.fail(node, f"operator {what} needs int, float or bool operands here, got {lt} and {rt}; {hint}")

    def _numeric_pair(self, left: ir.Value, right: ir.Value, scope: _Scope, node: ast.AST, what: str) -> tuple[ir.Value, ir.Value, ValueType]:
        lt, rt = type_of(left), type_of(right)
        self._check_numeric(lt, rt, node, what)
        result = ValueType.float() if "float" in (lt.kind, rt.kind) else ValueType.int()
        return self._cast(scope, left, result, node), self._cast(scope, right, result, node), result

    def _binop(self, node: ast.BinOp, scope: _Scope) -> ir.Value:
        left = self._expr(node.left, scope)
        right = self._expr(node.right, scope)
        op = type(node.op)
        symbol = _SYMBOLS.get(op, op.__name__)
        lt, rt = type_of(left), type_of(right)
        if op is ast.Add and lt.kind == "str" and rt.kind == "str":
            return self._emit1(scope, "StringConcat", [left, right], ValueType.str(), node, names=["concat"])
        name = _OPERATORS.get(op)
        if name is None:
            self.src.fail(node, f"operator {symbol} is not supported in a workflow")
        self._check_numeric(lt, rt, node, symbol)
        return self._arith(scope, name, [left, right], node)

    def _arith(self, scope: _Scope, name: str, operands: list[ir.Value], node: ast.AST) -> ir.Value:
        """Python's ``operator.<name>`` on numbers, with Python's result (no ``Cast``: an
        int never goes through a double). The standard op where it means exactly that
        (``Add``/``Sub``/``Mul``/``Neg`` on two ints or two floats, ``Mod`` on ints), else
        ``namu.Arith``; the type is ``arithmetic_type``'s, as infer-types derives it."""
        types = [type_of(v) for v in operands]
        exponent = constant_int(operands[1]) if name == "pow" else None
        rtype = arithmetic_type(name, types, exponent)
        assert rtype is not None  # the callers checked the operands are numbers
        kind = types[0].kind if all(t.kind == types[0].kind for t in types) else None
        standard = _STANDARD_ARITH.get((name, kind))
        if standard == "Mod":
            return self._emit1(scope, "Mod", operands, rtype, node, attrs=[ir.AttrInt64("fmod", 0)])
        if standard is not None:
            return self._emit1(scope, standard, operands, rtype, node)
        return self._emit1(scope, "Arith", operands, rtype, node, domain=NAMU_DOMAIN, attrs=[ir.AttrString("op", name)], names=[name])

    def _unaryop(self, node: ast.UnaryOp, scope: _Scope) -> ir.Value:
        operand = self._expr(node.operand, scope)
        if isinstance(node.op, ast.Not):
            return self._emit1(scope, "Not", [self._truth(scope, operand, node)], ValueType.bool(), node)
        vtype = type_of(operand)
        if not vtype.is_numeric or isinstance(node.op, ast.Invert):
            self.src.fail(node, f"unary {_SYMBOLS.get(type(node.op), '?')} is not supported on {vtype} in a workflow")
        literal = node.operand.value if isinstance(node.operand, ast.Constant) else None
        if type(literal) in (int, float) and isinstance(node.op, ast.USub):
            # `-1` is a literal, as Python's own compiler folds it: `2 ** -1` is typed float.
            return self._const(scope, -literal, node)  # type: ignore[operator]
        # `+x` is an op too: it makes an int of a bool, and an int-typed value may hold one.
        return self._arith(scope, "pos" if isinstance(node.op, ast.UAdd) else "neg", [operand], node)

    def _boolop(self, node: ast.BoolOp, scope: _Scope) -> ir.Value:
        op = "And" if isinstance(node.op, ast.And) else "Or"
        acc = self._expr(node.values[0], scope)
        for operand in node.values[1:]:
            if type_of(acc).kind != "bool":
                self.src.fail(node, f"`{op.lower()}` is supported on bool operands only (it returns an operand in Python); got {type_of(acc)}")
            if not _is_safe(operand):
                # Short-circuit: a right side that calls tasks or may raise runs only when
                # Python would evaluate it.
                then_scope, else_scope = scope.child(), scope.child()
                rhs_scope = then_scope if op == "And" else else_scope
                rhs = self._expr(operand, rhs_scope)
                if type_of(rhs).kind != "bool":
                    self.src.fail(operand, f"`{op.lower()}` is supported on bool operands only; got {type_of(rhs)}")
                other = else_scope if op == "And" else then_scope
                keep = self._identity(other, acc, operand)
                then_val, else_val = (rhs, keep) if op == "And" else (keep, rhs)
                acc = self._branches(node, acc, then_scope, [then_val], else_scope, [else_val], [op.lower()], scope=scope)[0]
            else:
                rhs = self._expr(operand, scope)
                if type_of(rhs).kind != "bool":
                    self.src.fail(operand, f"`{op.lower()}` is supported on bool operands only; got {type_of(rhs)}")
                acc = self._emit1(scope, op, [acc, rhs], ValueType.bool(), node)
        return acc

    def _compare(self, node: ast.Compare, scope: _Scope) -> ir.Value:
        left = self._expr(node.left, scope)
        return self._chain(node, left, list(zip(node.ops, node.comparators)), scope)

    def _chain(self, node: ast.Compare, left: ir.Value, pairs: list[tuple[ast.cmpop, ast.expr]], scope: _Scope) -> ir.Value:
        """``a < b < c`` is ``a < b and b < c`` with ``b`` evaluated once and ``c`` only if needed."""
        (op, comp), rest = pairs[0], pairs[1:]
        right = self._expr(comp, scope)
        test = self._compare_one(op, left, right, scope, node)
        if not rest:
            return test
        if all(_is_safe(c) for _, c in rest):
            tail = self._chain(node, right, rest, scope)
            return self._emit1(scope, "And", [test, tail], ValueType.bool(), node)
        then_scope, else_scope = scope.child(), scope.child()
        tail = self._chain(node, right, rest, then_scope)
        false = self._identity(else_scope, test, node)
        return self._branches(node, test, then_scope, [tail], else_scope, [false], ["chain"], scope)[0]

    def _compare_one(self, op: ast.cmpop, left: ir.Value, right: ir.Value, scope: _Scope, node: ast.AST) -> ir.Value:
        symbol = _SYMBOLS.get(type(op), type(op).__name__)
        lt, rt = type_of(left), type_of(right)
        if {lt.kind, rt.kind} == {"int", "float"} and type(op) in _COMPARE_NAMES:
            # Python compares int with float exactly; a Cast to double would round ints
            # above 2**53, so mixed comparisons use namu.Compare.
            attrs = [ir.AttrString("op", _COMPARE_NAMES[type(op)])]
            return self._emit1(scope, "Compare", [left, right], ValueType.bool(), node, domain=NAMU_DOMAIN, attrs=attrs, names=["cmp"])
        if isinstance(op, (ast.In, ast.NotIn)):
            found = self._emit1(scope, "Contains", [right, left], ValueType.bool(), node, domain=NAMU_DOMAIN, names=["contains"])
            return found if isinstance(op, ast.In) else self._emit1(scope, "Not", [found], ValueType.bool(), node, names=["not_in"])
        if isinstance(op, (ast.Is, ast.IsNot)):
            value = self._none_operand(left, right, node, symbol)
            is_none = self._emit1(scope, "IsNone", [value], ValueType.bool(), node, domain=NAMU_DOMAIN, names=["is_none"])
            return is_none if isinstance(op, ast.Is) else self._emit1(scope, "Not", [is_none], ValueType.bool(), node, names=["is_not_none"])
        if isinstance(op, (ast.Eq, ast.NotEq)):
            if lt.kind == "str" and rt.kind == "str":
                eq = self._emit1(scope, "Equal", [left, right], ValueType.bool(), node, names=["eq"])
            else:
                a, b, _ = self._numeric_pair(left, right, scope, node, symbol)
                eq = self._emit1(scope, "Equal", [a, b], ValueType.bool(), node, names=["eq"])
            if isinstance(op, ast.Eq):
                return eq
            return self._emit1(scope, "Not", [eq], ValueType.bool(), node, names=["ne"])
        if type(op) in _COMPARE:
            a, b, _ = self._numeric_pair(left, right, scope, node, symbol)
            return self._emit1(scope, _COMPARE[type(op)], [a, b], ValueType.bool(), node)
        self.src.fail(node, f"comparison `{symbol}` is not supported in a workflow; compare inside a task")

    def _attribute(self, node: ast.Attribute, scope: _Scope) -> ir.Value:
        """``x.name`` on a workflow value: ``namu.GetAttr``, read when the run gets there
        (an opaque value; annotate it to use it in arithmetic: ``n: int = rec.count``)."""
        base = node.value
        if isinstance(base, ast.Name) and base.id not in scope.env:
            if base.id in self.local_names:
                self._fail_unbound_local(base, base.id)
            self.src.fail(node, f"attribute reads are supported on workflow values only; `{base.id}` is not one (read `{ast.unparse(node)}` inside a task)")
        if node.attr.startswith("__") and node.attr.endswith("__"):
            self.src.fail(node, f"special attribute `{node.attr}` cannot be read in a workflow; do it inside a task")
        value = self._expr(base, scope)
        attrs = [ir.AttrString("name", node.attr)]
        return self._emit1(scope, "GetAttr", [value], ValueType.opaque(), node, domain=NAMU_DOMAIN, attrs=attrs, names=[node.attr])

    def _none_operand(self, left: ir.Value, right: ir.Value, node: ast.AST, symbol: str) -> ir.Value:
        """The operand of ``x is None`` / ``None is x``: identity is supported only against
        None (identity of ints, strings or containers depends on CPython's object caching,
        which compiled code cannot reproduce)."""
        for value, other in ((left, right), (right, left)):
            producer = other.producer()
            if producer is not None and producer.domain == NAMU_DOMAIN and producer.op_type == "None":
                return value
        self.src.fail(node, f"`{symbol}` is supported in a workflow only against None (`x {symbol} None`); use == to compare values")

    def _fstring(self, node: ast.JoinedStr, scope: _Scope) -> ir.Value:
        """``f"..."``: ``namu.Format`` of the equivalent ``str.format`` template (``f"{x!r:>5}"``
        is ``"{!r:>5}".format(x)``), the replacement fields' values as inputs."""
        template: list[str] = []
        values: list[ir.Value] = []
        for part in node.values:
            if isinstance(part, ast.Constant):
                template.append(str(part.value).replace("{", "{{").replace("}", "}}"))
                continue
            assert isinstance(part, ast.FormattedValue)
            field = "{"
            if part.conversion != -1:
                field += "!" + chr(part.conversion)
            if part.format_spec is not None:
                spec = part.format_spec
                if not all(isinstance(v, ast.Constant) for v in getattr(spec, "values", [])):
                    self.src.fail(node, "nested replacement fields in an f-string's format spec are not supported in a workflow; format inside a task")
                field += ":" + "".join(str(v.value) for v in spec.values)  # type: ignore[attr-defined]
            template.append(field + "}")
            values.append(self._expr(part.value, scope))
        attrs = [ir.AttrString("template", "".join(template))]
        return self._emit1(scope, "Format", values, ValueType.str(), node, domain=NAMU_DOMAIN, attrs=attrs, names=["fstring"])

    def _ifexp(self, node: ast.IfExp, scope: _Scope) -> ir.Value:
        cond = self._truth(scope, self._expr(node.test, scope), node.test)
        then_scope, else_scope = scope.child(), scope.child()
        then_val = self._expr(node.body, then_scope)
        else_val = self._expr(node.orelse, else_scope)
        return self._branches(node, cond, then_scope, [then_val], else_scope, [else_val], ["choice"], scope=scope)[0]

    def _subscript(self, node: ast.Subscript, scope: _Scope) -> ir.Value:
        if isinstance(node.slice, ast.Slice):
            self.src.fail(node.slice, _REJECTED_EXPRS[ast.Slice])
        container = self._expr(node.value, scope)
        key = self._expr(node.slice, scope)
        ctype, ktype = type_of(container), type_of(key)
        if ctype.kind == "list" and ctype.is_onnx and ktype.kind == "int":
            return self._emit1(scope, "SequenceAt", [container, key], ctype.elem, node, names=["item"])  # type: ignore[arg-type]
        index = _constant_int(node.slice)
        if ctype.items is not None and index is not None and -len(ctype.items) <= index < len(ctype.items):
            out = ctype.items[index]
        elif ctype.kind == "list" and ctype.elem is not None:
            out = ctype.elem
        elif ctype.kind == "str":
            out = ValueType.str()
        else:
            out = ValueType.opaque()
        return self._emit1(scope, "GetItem", [container, key], out, node, domain=NAMU_DOMAIN, names=["item"])

    def _listcomp(self, node: ast.ListComp, generators: list[ast.comprehension], scope: _Scope) -> ir.Value:
        gen = generators[0]
        if gen.is_async:
            self.src.fail(gen, "async comprehensions are not supported in a workflow")
        self._check_target(gen.target)
        seq = self._expr(gen.iter, scope)
        rest = generators[1:]

        def element(body_scope: _Scope) -> ir.Value:
            if rest:
                return self._listcomp(node, rest, body_scope)
            return self._expr(node.elt, body_scope)

        def body(body_scope: _Scope) -> ir.Value:
            if not gen.ifs:
                return element(body_scope)
            # `for x in xs if c1 if c2`: each item yields a list of 0 or 1 elements (of 0
            # or more, for nested generators), and the Map flattens them. The element is
            # computed only for items that pass every filter, and a filter only after the
            # ones before it passed, as in Python.
            return self._filtered(gen.ifs, element, body_scope, wrap=not rest)

        result = self._map(node, scope, seq, gen.target, body, flatten=bool(rest) or bool(gen.ifs))
        assert result is not None
        return result

    def _filtered(self, ifs: list[ast.expr], element: Callable[[_Scope], ir.Value], scope: _Scope, *, wrap: bool) -> ir.Value:
        """``element`` (as a one-item list when ``wrap``) if every filter of ``ifs`` holds,
        else an empty list of the same type: an ``If`` per filter."""
        test = ifs[0]
        cond = self._truth(scope, self._expr(test, scope), test)
        then_scope, else_scope = scope.child(), scope.child()
        if len(ifs) > 1:
            kept = self._filtered(ifs[1:], element, then_scope, wrap=wrap)
        else:
            kept = element(then_scope)
            if wrap:
                kept = self._container(then_scope, "List", [kept], test)
        empty = self._empty_list(else_scope, type_of(kept), test)
        return self._branches(test, cond, then_scope, [kept], else_scope, [empty], ["kept"], scope)[0]

    def _empty_list(self, scope: _Scope, like: ValueType, at: ast.AST) -> ir.Value:
        """``[]`` typed like ``like`` where ONNX can hold it (``SequenceEmpty``), else opaque."""
        if like.kind == "list" and like.elem is not None and like.is_onnx:
            dtype = like.elem.onnx_type.dtype  # type: ignore[union-attr]
            return self._emit1(scope, "SequenceEmpty", [], like, at, attrs=[ir.AttrInt64("dtype", int(dtype))], names=["empty"])
        return self._container(scope, "List", [], at)

    # ------------------------------------------------------------------ calls
    def _callee(self, func: ast.expr, scope: _Scope) -> Any:
        found = self._global_path(func)
        if found is not None and found[0].id not in scope.env:
            base, path = found
            if base.id in self.local_names:
                self._fail_unbound_local(base, base.id)
            obj = self._resolve(base.id)
            if obj is MISSING:
                self.src.fail(base, f"name `{base.id}` is not defined")
            if not path:
                return obj
            obj = self._follow(obj, path)
            if obj is MISSING:
                self.src.fail(func, f"`{ast.unparse(func)}` does not exist")
            if isinstance(obj, (Task, Workflow, Slot)):
                return obj
        elif isinstance(func, ast.Name):
            self.src.fail(func, f"`{func.id}` is a workflow value, not a task; only tasks and workflows can be called")
        self.src.fail(func, f"cannot call `{ast.unparse(func)}` in a workflow: only @namu.task and @namu.workflow functions can be called")

    def _call(self, node: ast.Call, scope: _Scope) -> ir.Value:
        callee = self._callee(node.func, scope)
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                self.src.fail(arg, "*args in calls are not supported in a workflow")
        for kw in node.keywords:
            if kw.arg is None:
                self.src.fail(kw.value, "**kwargs in calls are not supported in a workflow")
        if callee is len and not isinstance(callee, (Task, Workflow)):
            if len(node.args) != 1 or node.keywords:
                self.src.fail(node, "len() takes exactly one argument")
            value = self._expr(node.args[0], scope)
            if type_of(value).kind == "list" and type_of(value).is_onnx:
                return self._emit1(scope, "SequenceLength", [value], ValueType.int(), node, names=["length"])
            return self._emit1(scope, "Len", [value], ValueType.int(), node, domain=NAMU_DOMAIN, names=["length"])
        if isinstance(callee, Task):
            return self._task_call(node, callee, scope)
        if isinstance(callee, Slot):
            return self._slot_call(node, callee, scope)
        if isinstance(callee, Workflow):
            return self._workflow_call(node, callee, scope)
        name = ast.unparse(node.func)
        self.src.fail(node, f"cannot call `{name}` in a workflow: it is not a @namu.task or @namu.workflow (wrap it in a task)")

    def _bind_check(self, node: ast.Call, sig: inspect.Signature, name: str) -> None:
        placeholders = [object()] * len(node.args)
        try:
            sig.bind(*placeholders, **{kw.arg: object() for kw in node.keywords if kw.arg})
        except TypeError as exc:
            self.src.fail(node, f"{name}(): {exc}")

    def _task_call(self, node: ast.Call, task: Task, scope: _Scope) -> ir.Value:
        self._bind_check(node, task.signature, task.name)
        args, kwnames = self._call_inputs(node, scope)
        attrs: list[ir.Attr] = [ir.AttrString("task", self.ctx.task_key(task)), *kwnames]
        return self._emit1(scope, "Task", args, task.return_type, node, domain=NAMU_DOMAIN, attrs=attrs, names=[task.name])

    def _slot_call(self, node: ast.Call, slot: Slot, scope: _Scope) -> ir.Value:
        """``llm(prompt)``: ``namu.Slot <slot="llm">``, bound to a task by ``resolve-slots``."""
        args, kwnames = self._call_inputs(node, scope)
        attrs: list[ir.Attr] = [ir.AttrString("slot", slot.name), *kwnames]
        return self._emit1(scope, "Slot", args, slot.return_type, node, domain=NAMU_DOMAIN, attrs=attrs, names=[slot.name])

    def _call_inputs(self, node: ast.Call, scope: _Scope) -> tuple[list[ir.Value], list[ir.Attr]]:
        """A call's inputs (positional, then keyword values) and its ``kwnames`` attribute, if any."""
        args = [self._expr(a, scope) for a in node.args]
        kwnames = [kw.arg for kw in node.keywords]
        args += [self._expr(kw.value, scope) for kw in node.keywords]
        return args, [ir.AttrStrings("kwnames", kwnames)] if kwnames else []  # type: ignore[arg-type]

    def _workflow_call(self, node: ast.Call, wf: Workflow, scope: _Scope) -> ir.Value:
        self._bind_check(node, wf.signature, wf.name)
        fname, sig = _lower_function(wf, self.ctx, self.src, node)
        bound = wf.signature.bind_partial(*node.args, **{kw.arg: kw.value for kw in node.keywords if kw.arg})
        inputs: list[ir.Value] = []
        for param in sig.params:
            if param.name in bound.arguments:
                inputs.append(self._expr(bound.arguments[param.name], scope))
            else:
                inputs.append(self._const(scope, param.default, node, param.name))
        function = self.ctx.functions[fname]
        if wf.inline and scope.depth + self.ctx.function_nesting[fname] > self.nesting:
            self._nest(scope.depth + self.ctx.function_nesting[fname], node, wf)
        out_types = [type_of(v) for v in function.outputs]
        hints = sig.return_keys if sig.returns == "dict" else [fname] * len(out_types)
        outs = self._emit(scope, fname, inputs, out_types, node, domain=WORKFLOW_DOMAIN, names=hints)
        ret = _Return(sig.returns, outs, keys=list(sig.return_keys), node=node)
        return self._pack(scope, ret)


def _code_names(code: CodeType) -> Iterator[str]:
    """The global and free names ``code`` and its nested code objects (comprehensions)
    mention -- a superset of the names the body resolves (attribute names are in it too)."""
    pending = [code]
    while pending:
        current = pending.pop()
        yield from current.co_names
        yield from current.co_freevars
        pending.extend(c for c in current.co_consts if isinstance(c, CodeType))


def _may_lead_to_workflow(value: Any) -> bool:
    """``value`` is a workflow, or an object whose attributes may hold one (a module, a
    class, a namespace) -- not a task, a slot, a literal or a builtin."""
    if isinstance(value, Workflow):
        return True
    return value is not MISSING and hasattr(value, "__dict__") and not isinstance(value, (Task, Slot))


class _Namespace:
    """The workflow's names as a mapping, for ``eval`` of its annotations: each lookup goes
    through :meth:`_Lowering._resolve`, so it is recorded like any other read."""

    def __init__(self, lowering: _Lowering) -> None:
        self._lowering = lowering

    def __getitem__(self, name: str) -> Any:
        value = self._lowering._resolve(name)
        if value is MISSING:
            raise KeyError(name)
        return value


def _lower_function(wf: Workflow, ctx: CompileContext, src: FunctionSource, at: ast.AST) -> tuple[str, Signature]:
    """The FunctionProto of the ``namu.workflow`` domain of a sub-workflow, lowered once.

    Sub-workflows are lowered before their callers (:func:`_lower_callees`), so this
    lowers only a callee that the static scan could not see.
    """
    _check_not_recursive(wf, ctx, src, at)
    existing = ctx._function_names.get(id(wf))
    if existing is not None:
        return existing, ctx.function_signatures[existing]
    lowering = _Lowering(wf, ctx)
    ctx._in_progress.append(wf)
    try:
        _lower_callees(lowering)
        return _add_function(lowering)
    finally:
        ctx._in_progress.pop()


def _check_not_recursive(wf: Workflow, ctx: CompileContext, src: FunctionSource, at: ast.AST) -> None:
    if wf in ctx._in_progress:
        chain = " -> ".join(w.name for w in [*ctx._in_progress, wf])
        src.fail(at, f"recursive workflow call ({chain}) is not supported")


def _lower_callees(caller: _Lowering) -> None:
    """Lower the sub-workflows ``caller`` calls, and theirs, each before its callers.

    A depth-first walk of the call graph with an explicit stack, so that a chain of
    sub-workflows of any depth lowers without recursion (the caller's lowering then finds
    each callee's function and signature ready). ``ctx._in_progress`` is the path of the
    walk: a call of a workflow on it is recursion, rejected where the cycle closes.
    """
    ctx = caller.ctx
    depth = len(ctx._in_progress)
    pending = [(caller, caller.workflow_calls())]
    try:
        while pending:
            lowering, calls = pending[-1]
            for at, callee in calls:
                _check_not_recursive(callee, ctx, lowering.src, at)
                if id(callee) not in ctx._function_names:
                    inner = _Lowering(callee, ctx)
                    ctx._in_progress.append(callee)
                    pending.append((inner, inner.workflow_calls()))
                    break
            else:
                pending.pop()
                if pending:  # a callee: all of its own callees are lowered
                    _add_function(lowering)
                    ctx._in_progress.pop()
    finally:
        del ctx._in_progress[depth:]


def _add_function(lowering: _Lowering) -> tuple[str, Signature]:
    """Lower a sub-workflow's body into a function of the model; its name and signature."""
    ctx, wf = lowering.ctx, lowering.wf
    graph, sig = lowering.lower_graph()
    name = ctx.fresh(wf.name)
    graph.name = name
    function = ir.Function(WORKFLOW_DOMAIN, name, graph=graph, attributes=[])
    if not wf.inline:
        function.metadata_props[INLINE_KEY] = "false"  # inline-functions keeps its calls
    ctx.functions[name] = function
    ctx.function_signatures[name] = sig
    ctx.function_nesting[name] = lowering.nesting
    ctx._function_names[id(wf)] = name
    return name, sig


_SYMBOLS: dict[type, str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
    ast.Pow: "**", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|",
    ast.BitXor: "^", ast.BitAnd: "&", ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=",
    ast.Gt: ">", ast.GtE: ">=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
    ast.Not: "not", ast.Invert: "~", ast.UAdd: "+", ast.USub: "-",
}


def _base(name: str | None) -> str:
    return (name or "v").rsplit("_", 1)[0] if name and name.rsplit("_", 1)[-1].isdigit() else (name or "v")


def _terminates(stmts: Sequence[ast.stmt]) -> bool:
    """True when every path through ``stmts`` ends in ``return``."""
    if not stmts:
        return False
    last = stmts[-1]
    if isinstance(last, ast.Return):
        return True
    if isinstance(last, ast.If):
        return _terminates(last.body) and _terminates(last.orelse)
    return False


def _constant_int(node: ast.expr) -> int | None:
    """The value of an int literal, including a negated one (``-1``), else None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _constant_int(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    return None


def _contains_return(stmt: ast.stmt) -> bool:
    return any(isinstance(n, ast.Return) for n in ast.walk(stmt))


def _append_rest(stmt: ast.If, rest: list[ast.stmt]) -> ast.If:
    """A copy of ``stmt`` with ``rest`` appended to every path that falls through it."""

    def extend(block: list[ast.stmt]) -> list[ast.stmt]:
        if _terminates(block):
            return list(block)
        last = block[-1] if block else None
        if isinstance(last, ast.If) and _contains_return(last):
            return [*block[:-1], _append_rest(last, rest)]
        return [*block, *rest]

    folded = ast.If(test=stmt.test, body=extend(stmt.body), orelse=extend(stmt.orelse))
    return ast.copy_location(folded, stmt)


def _reject_returns(src: FunctionSource, stmts: Sequence[ast.stmt], kind: str) -> None:
    for stmt in stmts:
        for sub in ast.walk(stmt):
            if isinstance(sub, ast.Return):
                src.fail(sub, f"`return` inside a `{kind}` loop is not supported; return after the loop")


_SAFE_NODES = (
    ast.Name, ast.Constant, ast.Load, ast.Compare, ast.BoolOp, ast.And, ast.Or, ast.Not,
    ast.USub, ast.UAdd, ast.Add, ast.Sub, ast.Mult, ast.Eq, ast.NotEq, ast.Lt, ast.LtE,
    ast.Gt, ast.GtE,
)


def _is_safe(node: ast.AST) -> bool:
    """True when evaluating ``node`` can neither raise nor have an effect (no calls,
    subscripts, divisions, ...), so it may be evaluated eagerly instead of short-circuited."""
    return all(isinstance(n, (*_SAFE_NODES, ast.UnaryOp, ast.BinOp)) for n in ast.walk(node))


def _is_literal(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_literal(v) for k, v in value.items())
    return False
