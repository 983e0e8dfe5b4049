"""Lower a ``@namu.workflow`` body (Python ``ast``) to SSA form in namu's ONNX IR.

The rule: a compiled workflow means exactly what the same function means when its tasks
are called as plain Python. Constructs the IR cannot express with that meaning are
rejected with :class:`~namu.errors.WorkflowSyntaxError` at the user's line.

How each construct lowers:

* assignment, tuple unpacking: SSA renaming; ``namu.Unpack`` for non-literal right sides;
* literals: ``Constant`` (typed tensors), ``SequenceConstruct``, ``namu.List/Tuple/Dict``;
* operators on scalars: standard ONNX ops (``Add``, ``Less``, ``And``, ...), with
  ``Cast`` where Python would promote ``int`` to ``float``;
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
import builtins
import dataclasses
import inspect
import os
from collections import ChainMap
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

import numpy as np
import onnx_ir as ir

from namu.frontend.liveness import assigned_names, live_before, target_names
from namu.frontend.slot import Slot
from namu.frontend.source import FunctionSource
from namu.frontend.task import Task
from namu.frontend.workflow import Workflow
from namu.ir.metadata import INLINE_KEY, SPAN_KEY, Parameter, Signature, TaskEntry
from namu.ir.opsets import NAMU_DOMAIN, WORKFLOW_DOMAIN, opset_imports
from namu.ir.types import ValueType, from_annotation, set_type, type_of

__all__ = ["CompileContext", "lower_workflow"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_ARITH = {ast.Add: "Add", ast.Sub: "Sub", ast.Mult: "Mul", ast.Div: "Div", ast.Pow: "Pow"}
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

    def __init__(self, env: MutableMapping[str, ir.Value]) -> None:
        self.env = env
        self.nodes: list[ir.Node] = []
        self.produced: set[int] = set()  # ids of values produced in this scope

    def child(self) -> _Scope:
        """A nested scope: sees this scope's variables; its assignments stay its own
        (O(1): a ChainMap layer, not a copy, so long workflows lower in linear time)."""
        return _Scope(ChainMap({}, self.env))


class CompileContext:
    """State shared by the lowering of one workflow and all its sub-workflows.

    Holds the model-wide SSA name allocator, the task table and the lowered functions.
    """

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._next_suffix: dict[str, int] = {}
        self.tasks: dict[str, Task] = {}  # key -> Task
        self._task_keys: dict[int, str] = {}  # id(Task) -> key
        self.functions: dict[str, ir.Function] = {}
        self.function_signatures: dict[str, Signature] = {}
        self._function_names: dict[int, str] = {}  # id(Workflow) -> function name
        self._in_progress: list[Workflow] = []

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
    ctx._in_progress.append(workflow)
    try:
        lowering = _Lowering(workflow, ctx)
        graph, signature = lowering.lower_graph()
        return graph, signature, lowering.src.digest
    finally:
        ctx._in_progress.pop()


class _Lowering:
    def __init__(self, workflow: Workflow, ctx: CompileContext) -> None:
        self.wf = workflow
        self.ctx = ctx
        self.src = FunctionSource(workflow.fn)
        # Names the body binds: reading one before its assignment is an error, not a global.
        self.local_names = assigned_names(self.src.tree.body) | {a.arg for a in self.src.tree.args.args}
        closure = inspect.getclosurevars(workflow.fn)
        self.names: dict[str, Any] = {
            **vars(builtins),
            **workflow.fn.__globals__,
            **closure.nonlocals,
        }

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
            hints = inspect.get_annotations(self.wf.fn, eval_str=True)
        except Exception as exc:  # noqa: BLE001 - a forward reference that does not resolve
            self.src.fail(fdef, f"cannot evaluate the workflow's annotations: {type(exc).__name__}: {exc}")
        inputs: list[ir.Value] = []
        params: list[Parameter] = []
        for arg in args.args:
            p = sig.parameters[arg.arg]
            vtype = from_annotation(hints.get(arg.arg, inspect.Parameter.empty))
            value = ir.Value(name=self.ctx.fresh(arg.arg))
            set_type(value, vtype)
            inputs.append(value)
            default = None
            has_default = p.default is not inspect.Parameter.empty
            if has_default:
                if not _is_literal(p.default):
                    self.src.fail(arg, f"the default of `{arg.arg}` must be a literal (int, float, str, bool, None, list, dict)")
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
            annotation = eval(compile(ast.Expression(stmt.annotation), self.src.filename, "eval"), self.names)  # noqa: S307
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
        if actual.kind != "opaque" and not (actual.kind == "list" and declared.kind == "list"):
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
            self.src.fail(node, f"`{node.id}` is used before it is assigned")
        if node.id not in self.names:
            self.src.fail(node, f"name `{node.id}` is not defined")
        obj = self.names[node.id]
        if isinstance(obj, (Task, Workflow)):
            self.src.fail(node, f"`{node.id}` is a namu task or workflow; it can only be called, not used as a value")
        if not _is_literal(obj):
            self.src.fail(node, f"`{node.id}` is a {type(obj).__name__}; a workflow can only use tasks, workflows and literal constants from its module")
        return self._const(scope, obj, node, node.id)

    def _numeric_pair(self, left: ir.Value, right: ir.Value, scope: _Scope, node: ast.AST, what: str) -> tuple[ir.Value, ir.Value, ValueType]:
        lt, rt = type_of(left), type_of(right)
        if not (lt.is_numeric and rt.is_numeric):
            hint = "annotate the value first (`n: int = ...`) or compute it inside a task" if "opaque" in (lt.kind, rt.kind) else "compute it inside a task"
            self.src.fail(node, f"operator {what} needs int, float or bool operands here, got {lt} and {rt}; {hint}")
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
        if op is ast.Div:
            a, b, _ = self._numeric_pair(left, right, scope, node, symbol)
            a, b = self._cast(scope, a, ValueType.float(), node), self._cast(scope, b, ValueType.float(), node)
            return self._emit1(scope, "Div", [a, b], ValueType.float(), node)
        if op in (ast.FloorDiv, ast.Mod):
            a, b, rtype = self._numeric_pair(left, right, scope, node, symbol)
            if rtype.kind != "int":
                self.src.fail(node, f"operator {symbol} is supported on ints only; ONNX has no float floor-modulo with Python's meaning")
            mod = self._emit1(scope, "Mod", [a, b], rtype, node, attrs=[ir.AttrInt64("fmod", 0)])
            if op is ast.Mod:
                return mod
            # Python floors: a // b == (a - a % b) / b, and that division is exact.
            diff = self._emit1(scope, "Sub", [a, mod], rtype, node)
            return self._emit1(scope, "Div", [diff, b], rtype, node, names=["floordiv"])
        if op in _ARITH:
            a, b, rtype = self._numeric_pair(left, right, scope, node, symbol)
            return self._emit1(scope, _ARITH[op], [a, b], rtype, node)
        self.src.fail(node, f"operator {symbol} is not supported in a workflow")

    def _unaryop(self, node: ast.UnaryOp, scope: _Scope) -> ir.Value:
        operand = self._expr(node.operand, scope)
        if isinstance(node.op, ast.Not):
            return self._emit1(scope, "Not", [self._truth(scope, operand, node)], ValueType.bool(), node)
        vtype = type_of(operand)
        if not vtype.is_numeric or isinstance(node.op, ast.Invert):
            self.src.fail(node, f"unary {_SYMBOLS.get(type(node.op), '?')} is not supported on {vtype} in a workflow")
        if vtype.kind == "bool":
            operand = self._cast(scope, operand, ValueType.int(), node)
            vtype = ValueType.int()
        if isinstance(node.op, ast.UAdd):
            return operand
        return self._emit1(scope, "Neg", [operand], vtype, node)

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
        if isinstance(func, ast.Name):
            if func.id in scope.env:
                self.src.fail(func, f"`{func.id}` is a workflow value, not a task; only tasks and workflows can be called")
            if func.id not in self.names:
                self.src.fail(func, f"name `{func.id}` is not defined")
            return self.names[func.id]
        if isinstance(func, ast.Attribute):
            base = func.value
            path = [func.attr]
            while isinstance(base, ast.Attribute):
                path.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id not in scope.env and base.id in self.names:
                obj = self.names[base.id]
                for attr in reversed(path):
                    if not hasattr(obj, attr):
                        self.src.fail(func, f"`{ast.unparse(func)}` does not exist")
                    obj = getattr(obj, attr)
                if isinstance(obj, (Task, Workflow, Slot)):
                    return obj
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
        out_types = [type_of(v) for v in function.outputs]
        hints = sig.return_keys if sig.returns == "dict" else [fname] * len(out_types)
        outs = self._emit(scope, fname, inputs, out_types, node, domain=WORKFLOW_DOMAIN, names=hints)
        ret = _Return(sig.returns, outs, keys=list(sig.return_keys), node=node)
        return self._pack(scope, ret)


def _lower_function(wf: Workflow, ctx: CompileContext, src: FunctionSource, at: ast.AST) -> tuple[str, Signature]:
    """Lower a sub-workflow into a FunctionProto of the ``namu.workflow`` domain (once)."""
    if wf in ctx._in_progress:
        chain = " -> ".join(w.name for w in [*ctx._in_progress, wf])
        src.fail(at, f"recursive workflow call ({chain}) is not supported")
    existing = ctx._function_names.get(id(wf))
    if existing is not None:
        return existing, ctx.function_signatures[existing]
    ctx._in_progress.append(wf)
    try:
        graph, sig = _Lowering(wf, ctx).lower_graph()
    finally:
        ctx._in_progress.pop()
    name = ctx.fresh(wf.name)
    graph.name = name
    function = ir.Function(WORKFLOW_DOMAIN, name, graph=graph, attributes=[])
    if not wf.inline:
        function.metadata_props[INLINE_KEY] = "false"  # inline-functions keeps its calls
    ctx.functions[name] = function
    ctx.function_signatures[name] = sig
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
