"""Lower the statements of a workflow body: assignments, ``return``, ``if``, ``while``, ``for``.

Straight-line code is SSA renaming in the scope's environment; ``if`` becomes an ``If``
whose outputs are the phi values of the variables assigned in its branches and live
after it; a loop becomes a ``Loop`` whose loop-carried values are the live variables its
body assigns, or -- a ``for`` whose iterations share nothing -- a ``namu.Map`` fan-out.
Liveness (:mod:`namu.frontend.liveness`) decides which variables flow out.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable, Sequence

import onnx_ir as ir

from namu.errors import WorkflowSyntaxError
from namu.frontend.builder import Scope, base_name
from namu.frontend.catch import Catch, Guard, rewrite_try
from namu.frontend.comprehensions import rewrite_ordered_comprehensions
from namu.frontend.liveness import (
    COMPREHENSION,
    PHI_READS,
    SCAN_WALRUS,
    assigned_names,
    conditional_walruses,
    header_expressions,
    live_before,
    target_names,
    walrus_targets,
)
from namu.frontend.loop_control import rewrite_loop_control
from namu.frontend.mutation import rewrite_mutations
from namu.frontend.names import Namespace
from namu.frontend.patterns import rewrite_match
from namu.frontend.rejections import REJECTED_FORMS, REJECTED_STATEMENTS
from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.types import ValueType, accepts, from_annotation, join, type_of
from namu.ops.exceptions import class_name, resolve_class

__all__ = ["Returned", "StatementLowering"]


@dataclasses.dataclass
class Returned:
    """What a block returns: one value, a tuple of values, or a dict of values."""

    kind: str  # "value" | "tuple" | "dict" | "raise" (every path raises: no values)
    values: list[ir.Value]
    keys: list[str] = dataclasses.field(default_factory=list)
    node: ast.AST | None = None

    def same_shape(self, other: Returned) -> bool:
        return (self.kind, len(self.values), self.keys) == (other.kind, len(other.values), other.keys)


#: how many times a loop is lowered again with wider types for its carried variables
_WIDENINGS = 3

class StatementLowering:
    """Statement lowering of the Python frontend (mixed into ``namu.frontend.lower._Lowering``,
    with the expression, call and name mixins and :class:`~namu.frontend.builder.IRBuilder`)."""

    def _function_body(self, fdef: ast.FunctionDef | ast.AsyncFunctionDef, scope: Scope) -> Returned:
        """Lower a function's body (its docstring left out); a body that can fall off its
        end returns None there, as in Python."""
        body = list(fdef.body)
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body = body[1:]  # docstring
        args = fdef.args
        params = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
        # The rewrites that look for a construct run only when the source's text may hold
        # it (a search of the text costs nothing next to a walk over a big body's tree).
        text = self.src.text
        if ":=" in text or "any" in text or "all" in text:
            body = rewrite_ordered_comprehensions(body, self._is_builtin)
        body = rewrite_mutations(body, params, self._is_builtin)
        if "match" in text:
            matched = rewrite_match(body, self.src.fail)
            if matched is not body:
                SCAN_WALRUS.set(True)  # its captures are assignment expressions (reset with the lowering's scan)
            body = matched
        if "try" in text:
            body = rewrite_try(body, self.src.fail)
        body = rewrite_loop_control(body)
        if not _terminates(body):
            end = ast.Return(value=None)
            ast.copy_location(end, fdef.body[-1])
            end.lineno = getattr(fdef.body[-1], "end_lineno", end.lineno)
            body.append(end)
        result = self._block(body, scope, set())
        assert result is not None  # the body ends in a return (or raises)
        if result.kind == "raise":
            return Returned("value", [self.constant(scope, None, fdef, "none")], node=result.node)
        return result

    def _block(self, stmts: list[ast.stmt], scope: Scope, live_out: set[str]) -> Returned | None:
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
                    word = "raise" if result.kind == "raise" else "return"
                    self.src.fail(stmts[i + 1], f"unreachable code after `{word}`")
                return result
        return None

    def _stmt(self, stmt: ast.stmt, scope: Scope, live_after: set[str]) -> Returned | None:
        message = REJECTED_STATEMENTS.get(type(stmt))
        if message is not None:
            self.src.fail(stmt, message)
        self._check_walrus(stmt)
        if isinstance(stmt, ast.Return):
            return self._return(stmt, scope)
        if isinstance(stmt, ast.Assign):
            value = stmt.value
            for target in stmt.targets:
                self._check_target(target)
            if (len(stmt.targets) == 1 and isinstance(stmt.targets[0], (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List))
                    and not any(isinstance(e, ast.Starred) for e in (*stmt.targets[0].elts, *value.elts))):
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
        if isinstance(stmt, Catch):
            self._catch(stmt, scope, live_after)
            return None
        if isinstance(stmt, ast.Raise):
            return self._raise(stmt, scope)
        if isinstance(stmt, ast.Assert):
            return self._assert(stmt, scope, live_after)
        if isinstance(stmt, ast.Delete):
            self._delete(stmt, scope)
            return None
        self.src.fail(stmt, f"{type(stmt).__name__} statements are not supported in a workflow")

    def _annotated(self, stmt: ast.AnnAssign, scope: Scope) -> ir.Value:
        """``x: T = value``: the annotation gives an untyped value (a dict item, the result
        of an unannotated task, ``[]``) its type. Annotations never change what Python
        computes, and namu's ops compute exactly what Python does, so trusting them is safe."""
        assert stmt.value is not None
        declared = from_annotation(self._static_value(stmt.annotation, "the annotation"))
        if isinstance(stmt.value, ast.List) and not stmt.value.elts and declared.kind == "list" and declared.is_onnx:
            dtype = declared.elem.onnx_type.dtype if declared.elem and declared.elem.kind != "list" else None  # type: ignore[union-attr]
            if dtype is not None:
                return self.emit1(scope, "SequenceEmpty", [], declared, stmt.value, attrs=[ir.AttrInt64("dtype", dtype.value)], names=["empty"])
        value = self._expr(stmt.value, scope)
        actual = type_of(value)
        if actual == declared:
            return value
        if not accepts(declared, actual):  # PEP 484: `x: float = 3` is fine
            self.src.fail(stmt.annotation, f"the annotation says {declared} but the value is {actual}")
        return self.emit1(scope, "Identity", [value], declared, stmt, domain=NAMU_DOMAIN, names=[base_name(value.name)])

    def _static_value(self, expr: ast.expr, what: str) -> object:
        """The value of ``expr`` evaluated in the workflow's module (an annotation, the
        classes of an ``except`` clause), its reads recorded like any other.

        Raises:
            WorkflowSyntaxError: ``expr`` cannot be evaluated, at its position.
        """
        try:
            code = compile(ast.Expression(expr), self.src.filename, "eval")
            return eval(code, self._globals, Namespace(self))  # noqa: S307
        except Exception as exc:  # noqa: BLE001 - any failure means we cannot read it
            self.src.fail(expr, f"cannot evaluate {what}: {type(exc).__name__}: {exc}")

    def exception_classes(self, expr: ast.expr, scope: Scope) -> list[str]:
        """The ``"module:qualname"`` names of the classes an ``except`` clause names
        (a class, or a tuple of them), each checked to be importable by that name.

        Raises:
            WorkflowSyntaxError: ``expr`` reads a workflow variable, is not exception
                classes, or names a class that cannot be imported by name.
        """
        local = sorted({n.id for n in ast.walk(expr) if isinstance(n, ast.Name)} & set(scope.env))
        if local:
            self.src.fail(expr, f"the classes of an `except` clause must be module-level names, not the workflow variable `{local[0]}`")
        value = self._static_value(expr, "the classes of the `except` clause")
        classes = value if isinstance(value, tuple) else (value,)
        names = []
        for cls in classes:
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                self.src.fail(expr, f"catching classes that do not inherit from BaseException is not allowed (got {cls!r})")
            name = class_name(cls)
            try:
                importable = resolve_class(name) is cls
            except Exception:  # noqa: BLE001 - not importable is the answer
                importable = False
            if not importable:
                self.src.fail(expr, f"exception class {cls.__qualname__} cannot be imported as {name!r}, which a compiled "
                                    "workflow needs; define it at module level")
            names.append(name)
        return names

    def _check_target(self, target: ast.expr) -> None:
        if isinstance(target, ast.Name):
            return
        if isinstance(target, (ast.Tuple, ast.List)):
            starred = [elt for elt in target.elts if isinstance(elt, ast.Starred)]
            if len(starred) > 1:
                self.src.fail(starred[1], "multiple starred expressions in assignment")
            for elt in target.elts:
                self._check_target(elt.value if isinstance(elt, ast.Starred) else elt)
            return
        if isinstance(target, ast.Attribute):
            self.src.fail(target, REJECTED_FORMS["x.name = ..."])
        if isinstance(target, ast.Subscript):
            self.src.fail(target, REJECTED_FORMS["x[i] = ..."])
        self.src.fail(target, "unsupported assignment target")

    def _assign_parallel(self, target: ast.Tuple | ast.List, value: ast.Tuple | ast.List, scope: Scope) -> None:
        if len(target.elts) != len(value.elts) or any(isinstance(e, ast.Starred) for e in value.elts):
            self.src.fail(value, f"cannot unpack {len(value.elts)} values into {len(target.elts)} names")
        results = [self._expr(v, scope) for v in value.elts]  # evaluate all right sides first
        for t, r in zip(target.elts, results):
            self._bind(t, r, scope, value)

    def _bind(self, target: ast.expr, value: ir.Value, scope: Scope, at: ast.AST) -> None:
        if isinstance(target, ast.Name):
            scope.env[target.id] = value
            return
        assert isinstance(target, (ast.Tuple, ast.List))
        n = len(target.elts)
        vtype = type_of(value)
        star = next((i for i, t in enumerate(target.elts) if isinstance(t, ast.Starred)), None)
        if star is not None:  # `a, *rest, b = value`: the starred name gets a list of the middle items
            item_types = [ValueType.opaque()] * n
            item_types[star] = ValueType.opaque("list")
            names = [t.id if isinstance(t, ast.Name) else "item" for t in target.elts]
            attrs = [ir.AttrInt64("star", star)]
            parts = self.emit(scope, "Unpack", [value], item_types, at, domain=NAMU_DOMAIN, names=names, attrs=attrs)
            for t, part in zip(target.elts, parts):
                self._bind(t.value if isinstance(t, ast.Starred) else t, part, scope, at)
            return
        if vtype.items is not None:
            if len(vtype.items) != n:
                self.src.fail(at, f"cannot unpack a {vtype} into {n} names")
            item_types = list(vtype.items)
        elif vtype.kind == "list" and vtype.elem is not None:
            item_types = [vtype.elem] * n
        else:
            item_types = [ValueType.opaque()] * n
        names = [t.id if isinstance(t, ast.Name) else "item" for t in target.elts]
        parts = self.emit(scope, "Unpack", [value], item_types, at, domain=NAMU_DOMAIN, names=names)
        for t, part in zip(target.elts, parts):
            self._bind(t, part, scope, at)

    def _return(self, stmt: ast.Return, scope: Scope) -> Returned:
        value = stmt.value
        if isinstance(value, ast.Tuple) and not any(isinstance(v, ast.Starred) for v in value.elts):
            return Returned("tuple", [self._expr(v, scope) for v in value.elts], node=stmt)
        if isinstance(value, ast.Dict) and all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in value.keys) and value.keys:
            keys = [k.value for k in value.keys]  # type: ignore[union-attr]
            if len(set(keys)) != len(keys):
                self.src.fail(value, "duplicate keys in the returned dict")
            return Returned("dict", [self._expr(v, scope) for v in value.values], keys=keys, node=stmt)
        if value is None:
            return Returned("value", [self.constant(scope, None, stmt, "none")], node=stmt)
        return Returned("value", [self._expr(value, scope)], node=stmt)

    def _pack(self, scope: Scope, ret: Returned) -> ir.Value:
        """Turn a tuple/dict return into one value (when branches return different shapes)."""
        at = ret.node or self.src.tree
        if ret.kind == "value":
            return ret.values[0]
        if ret.kind == "tuple":
            return self.container(scope, "Tuple", ret.values, at)
        return self.dictionary(scope, ret.keys, ret.values, at)

    # ------------------------------------------------------------------ errors
    def _catch(self, stmt: Catch, scope: Scope, live_after: set[str]) -> None:
        """A catch region (:class:`~namu.frontend.catch.Catch`): a ``namu.Try`` whose outputs
        are the variables its statement assigns (the handler keeps their values from
        before) and the flag (None, or the exception)."""
        flag = stmt.flag
        names = sorted((assigned_names(stmt.body) & live_after) - {flag})
        body_scope, handler_scope = scope.child(), scope.child()
        self._block(stmt.body, body_scope, live_after)
        exc = self.graph_input(handler_scope, flag, ValueType.opaque("BaseException"))

        def value(branch: Scope, name: str) -> ir.Value:
            return branch.env[name] if name in branch.env else self.constant(branch, None, stmt, name)

        body_outs = [self.ensure_local(body_scope, value(body_scope, n), stmt) for n in names]
        body_outs.append(self.constant(body_scope, None, stmt, flag))
        handler_outs = [self.ensure_local(handler_scope, value(handler_scope, n), stmt) for n in names]
        handler_outs.append(exc)
        self.dedupe_outputs(body_scope, body_outs, self.src.tree)
        self.dedupe_outputs(handler_scope, handler_outs, self.src.tree)
        out_types = [join(type_of(b), type_of(h)) for b, h in zip(body_outs, handler_outs)]
        body_g = self.subgraph(body_scope, [], body_outs, "try_body")
        handler_g = self.subgraph(handler_scope, [exc], handler_outs, "try_handler")
        attrs = [ir.AttrGraph("body", body_g), ir.AttrGraph("handler", handler_g)]
        outs = self.emit(scope, "Try", [], out_types, stmt, domain=NAMU_DOMAIN, attrs=attrs, names=[*names, flag])
        for name, out in zip([*names, flag], outs):
            scope.env[name] = out

    def _raise(self, stmt: ast.Raise, scope: Scope) -> Returned:
        """``raise E(args)`` / ``raise E`` (E an exception class the artifact can import)
        makes the exception when it runs; ``raise value`` raises a value (a caught
        exception)."""
        if stmt.exc is None:
            self.src.fail(stmt, "a bare `raise` is supported inside an `except` block only")
        exc = stmt.exc
        call = exc if isinstance(exc, ast.Call) else None
        target = call.func if call is not None else exc
        local = {n.id for n in ast.walk(target) if isinstance(n, ast.Name)} & set(scope.env)
        cls = None
        if not local and isinstance(target, (ast.Name, ast.Attribute)):
            try:
                cls = self._static_value(target, "the exception class")
            except WorkflowSyntaxError:
                cls = None
        if isinstance(cls, type) and issubclass(cls, BaseException):
            args: list[ast.expr] = list(call.args) if call is not None else []
            if call is not None and (call.keywords or any(isinstance(a, ast.Starred) for a in args)):
                self.src.fail(call, "an exception raised in a workflow takes positional arguments only")
            inputs = [self._expr(a, scope) for a in args]
            attrs: list[ir.Attr] = [ir.AttrString("exception", self.exception_classes(target, scope)[0])]
        else:
            inputs, attrs = [self._expr(exc, scope)], []
        if stmt.cause is not None:  # `raise ... from cause`: the cause is evaluated after the exception
            inputs.append(self._expr(stmt.cause, scope))
            attrs.append(ir.AttrInt64("cause", 1))
        self.emit(scope, "Raise", inputs, [], stmt, domain=NAMU_DOMAIN, attrs=attrs)
        return Returned("raise", [], node=stmt)

    def _delete(self, stmt: ast.Delete, scope: Scope) -> None:
        """``del x``: the name is unbound from here (a later read is Python's
        ``UnboundLocalError``; a workflow gives None, as for any unbound name on a path).
        ``del xs[k]`` of a container the body owns was rewritten (mutation); another is
        refused."""
        for target in stmt.targets:
            if not isinstance(target, ast.Name):
                self.src.fail(target, REJECTED_FORMS["del x[i]"])
        for target in stmt.targets:
            if target.id not in scope.env:  # type: ignore[attr-defined]
                self.src.fail(target, f"cannot delete `{target.id}`: it is not bound here")  # type: ignore[attr-defined]
            scope.env[target.id] = self.constant(scope, None, target, target.id)  # type: ignore[attr-defined]

    def _assert(self, stmt: ast.Assert, scope: Scope, live_after: set[str]) -> Returned | None:
        """``assert test, message``: ``if not test: raise AssertionError(message)``
        (always checked: a workflow has no ``-O``)."""
        error = ast.Call(func=ast.Name(id="AssertionError", ctx=ast.Load()), args=[stmt.msg] if stmt.msg else [], keywords=[])
        fails = ast.Raise(exc=error, cause=None)
        check = ast.If(test=ast.UnaryOp(op=ast.Not(), operand=stmt.test), body=[fails], orelse=[])
        for node in (error, error.func, fails, check, check.test):
            ast.copy_location(node, stmt)
        return self._if(check, scope, live_after)

    # ------------------------------------------------------------------ if / else
    def _if(self, stmt: ast.If, scope: Scope, live_after: set[str]) -> Returned | None:
        cond = self.truth(scope, self._expr(stmt.test, scope), stmt.test)
        then_scope, else_scope = scope.child(), scope.child()
        then_ret = self._block(stmt.body, then_scope, live_after)
        else_ret = self._block(stmt.orelse, else_scope, live_after)
        then_raises, else_raises = (r is not None and r.kind == "raise" for r in (then_ret, else_ret))
        if then_raises and else_raises:
            self._branches(stmt, cond, then_scope, [], else_scope, [], [], scope)
            return then_ret
        if then_raises or else_raises:
            # the raising branch gives the other's values: Nones, never read
            kept, raising_scope = (else_ret, then_scope) if then_raises else (then_ret, else_scope)
            nones = None
            if kept is not None:
                nones = Returned(kept.kind, [self.constant(raising_scope, None, stmt, "none") for _ in kept.values], keys=kept.keys)
            then_ret, else_ret = (nones, kept) if then_raises else (kept, nones)
        if then_ret is not None and else_ret is not None:
            if not then_ret.same_shape(else_ret):
                then_ret = Returned("value", [self._pack(then_scope, then_ret)])
                else_ret = Returned("value", [self._pack(else_scope, else_ret)])
            outs = self._branches(stmt, cond, then_scope, then_ret.values, else_scope, else_ret.values, ["result"] * len(then_ret.values), scope)
            return Returned(then_ret.kind, outs, keys=then_ret.keys, node=stmt)
        assert then_ret is None and else_ret is None  # _block folded early returns
        assigned = assigned_names(stmt.body) | assigned_names(stmt.orelse)
        phis = sorted(assigned & live_after)
        for name in phis:
            for raises, branch_scope in ((then_raises, then_scope), (else_raises, else_scope)):
                if name not in branch_scope.env and (raises or isinstance(stmt, Guard)):
                    branch_scope.env[name] = self.constant(branch_scope, None, stmt, name)
                elif name not in branch_scope.env:
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
        then_scope: Scope,
        then_vals: list[ir.Value],
        else_scope: Scope,
        else_vals: list[ir.Value],
        names: list[str],
        scope: Scope,
    ) -> list[ir.Value]:
        """Emit an ``If`` in ``scope`` whose outputs are the phi values of the two branches."""
        then_outs = [self.ensure_local(then_scope, v, at) for v in then_vals]
        else_outs = [self.ensure_local(else_scope, v, at) for v in else_vals]
        self.dedupe_outputs(then_scope, then_outs, self.src.tree)
        self.dedupe_outputs(else_scope, else_outs, self.src.tree)
        out_types = [
            type_of(t) if type_of(t) == type_of(e) else ValueType.opaque()
            for t, e in zip(then_outs, else_outs)
        ]
        # Standard If needs at least one output and tensor/sequence types on every output.
        domain = "" if out_types and all(t.is_onnx for t in out_types) else NAMU_DOMAIN
        then_g = self.subgraph(then_scope, [], then_outs, "then_branch")
        else_g = self.subgraph(else_scope, [], else_outs, "else_branch")
        return self.emit(
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
    def _while(self, stmt: ast.While, scope: Scope, live_after: set[str]) -> None:
        # `else`, `break`, `continue` and `return` in the body were rewritten away (loop_control)
        header_live = live_before([stmt], live_after)
        tested = {t.id for t in walrus_targets(stmt.test)}  # `while (line := read()):` binds every test
        carried = sorted((assigned_names(stmt.body) | tested) & (header_live | live_after))
        cond0 = self.truth(scope, self._expr(stmt.test, scope), stmt.test)
        self._check_carried(stmt, carried, scope, "while", live_after)

        def body(body_scope: Scope) -> ir.Value:
            self._block(stmt.body, body_scope, header_live)
            return self.truth(body_scope, self._expr(stmt.test, body_scope), stmt.test)

        self._loop(stmt, scope, None, cond0, carried, body)

    def _for(self, stmt: ast.For, scope: Scope, live_after: set[str]) -> None:
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
            def fan_out_body(body_scope: Scope) -> None:
                self._block(stmt.body, body_scope, set())

            self._map(stmt, scope, seq, stmt.target, fan_out_body, flatten=False)
            return
        self._check_carried(stmt, carried, scope, "for", live_after)
        seq_type = type_of(seq)
        if not (seq_type.is_onnx and seq_type.kind == "list"):
            # Iterate like Python (dicts yield keys, strings characters): materialize first.
            items_type = ValueType.list(self._elem_type(seq, stmt.iter))
            seq = self.emit1(scope, "ToList", [seq], items_type, stmt.iter, domain=NAMU_DOMAIN, names=["items"])
            seq_type = items_type
        if seq_type.is_onnx:
            count = self.emit1(scope, "SequenceLength", [seq], ValueType.int(), stmt.iter, names=["count"])
        else:
            count = self.emit1(scope, "Len", [seq], ValueType.int(), stmt.iter, domain=NAMU_DOMAIN, names=["count"])
        true = self.constant(scope, True, stmt, "true")

        def body(body_scope: Scope, iter_num: ir.Value, cond_in: ir.Value) -> ir.Value:
            elem = self._item(body_scope, seq, iter_num, stmt.target)
            self._bind(stmt.target, elem, body_scope, stmt.target)
            self._block(stmt.body, body_scope, header_live)
            return self.identity(body_scope, cond_in, stmt)

        self._loop(stmt, scope, count, true, carried, body, with_iter=True)

    def _item(self, scope: Scope, seq: ir.Value, index: ir.Value, at: ast.AST) -> ir.Value:
        seq_type = type_of(seq)
        if seq_type.kind == "list" and seq_type.is_onnx:
            return self.emit1(scope, "SequenceAt", [seq, index], seq_type.elem, at, names=["item"])  # type: ignore[arg-type]
        elem = seq_type.elem if seq_type.kind == "list" and seq_type.elem else ValueType.opaque()
        return self.emit1(scope, "GetItem", [seq, index], elem, at, domain=NAMU_DOMAIN, names=["item"])

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

    def _check_walrus(self, stmt: ast.stmt) -> None:
        """Refuse an assignment expression (``:=``) in a comprehension the rewrite left as
        one (Python binds it in the enclosing function, from whichever item ran last;
        namu's items are a fan-out; :mod:`namu.frontend.comprehensions` makes a loop of
        one that is the whole value of its statement).
        One on a path that may not run (the right of ``and``/``or``, a branch of ``x if c
        else y``, a later link of a chained comparison) binds a phi value: the new value
        where it ran, the old one (or None, Python's unbound) where it did not."""
        if not SCAN_WALRUS.get():
            return
        for expression in header_expressions(stmt):
            for node, where in conditional_walruses(expression):
                if where == COMPREHENSION:
                    self.src.fail(node, "an assignment expression (:=) in a comprehension is supported where the "
                                        "comprehension is the whole value of an assignment, a `return` or an expression "
                                        "statement (not in a generator expression); elsewhere use a for loop")

    def _check_carried(self, stmt: ast.stmt, carried: list[str], scope: Scope, kind: str, live_after: set[str]) -> None:
        """Every carried variable has a value before the loop. One that is carried only
        because a phi in the loop keeps its old value on a path that does not assign it (a
        catch region's exception path, an assignment expression that did not run: it is
        unbound there in Python, and never read) starts as None."""
        missing = [name for name in carried if name not in scope.env]
        if not missing:
            return
        token = PHI_READS.set(False)
        try:
            read = live_before([stmt], live_after)
        finally:
            PHI_READS.reset(token)
        for name in missing:
            if name not in read:
                scope.env[name] = self.constant(scope, None, stmt, name)
            else:
                self.src.fail(stmt, f"`{name}` is first assigned inside the `{kind}` loop but read before assignment in the loop or after it; assign it before the loop")

    def _loop(
        self,
        stmt: ast.stmt,
        scope: Scope,
        trip_count: ir.Value | None,
        cond0: ir.Value,
        carried: list[str],
        lower_body: Callable[..., ir.Value],
        with_iter: bool = False,
    ) -> None:
        """Emit a ``Loop``: body inputs (iter_num, cond_in, carried...), outputs (cond_out, carried...).

        A carried variable whose type the body changes (``acc = 0`` then ``acc = acc +
        0.5``, or a ``str`` that the body adds an untyped value to) gets the join of both
        types, and the body is lowered again with it (at most :data:`_WIDENINGS` times):
        the loop's phi, as Python has it, where the value may be either."""
        types = [type_of(scope.env[n]) for n in carried]
        for _ in range(_WIDENINGS + 1):
            body_scope = scope.child()
            iter_num = self.graph_input(body_scope, "iter_num", ValueType.int())
            cond_in = self.graph_input(body_scope, "cond_in", ValueType.bool())
            body_inputs = [iter_num, cond_in]
            for name, vtype in zip(carried, types):
                body_scope.env[name] = self.graph_input(body_scope, name, vtype)
                body_inputs.append(body_scope.env[name])
            cond_out = lower_body(body_scope, iter_num, cond_in) if with_iter else lower_body(body_scope)
            wider = [join(vtype, type_of(body_scope.env[name])) for name, vtype in zip(carried, types)]
            if wider == types:
                break
            types = wider
        else:  # pragma: no cover - a join reaches `object` in at most two steps
            self.src.fail(stmt, "the types of the loop's variables do not settle")
        init = []
        for name, vtype in zip(carried, types):
            value = scope.env[name]
            if type_of(value) != vtype:  # widened: the value enters the loop as the wider type
                value = self.emit1(scope, "Identity", [value], vtype, stmt, domain=NAMU_DOMAIN, names=[name])
            init.append(value)
        outs = [self.ensure_local(body_scope, cond_out, stmt)]
        for name, vtype in zip(carried, types):
            value = body_scope.env[name]
            if type_of(value) != vtype:
                value = self.emit1(body_scope, "Identity", [value], vtype, stmt, domain=NAMU_DOMAIN, names=[name])
            outs.append(self.ensure_local(body_scope, value, stmt))
        self.dedupe_outputs(body_scope, outs, self.src.tree)
        graph = self.subgraph(body_scope, body_inputs, outs, "loop_body")
        domain = "" if types and all(t.is_onnx for t in types) else NAMU_DOMAIN
        results = self.emit(scope, "Loop", [trip_count, cond0, *init], types, stmt, domain=domain, attrs=[ir.AttrGraph("body", graph)], names=carried)
        for name, value in zip(carried, results):
            scope.env[name] = value

    def _map(
        self,
        at: ast.AST,
        scope: Scope,
        seq: ir.Value,
        target: ast.expr,
        lower_body: Callable[[Scope], ir.Value | None],
        *,
        flatten: bool,
    ) -> ir.Value | None:
        """Emit a ``namu.Map`` fan-out over ``seq`` whose body binds ``target`` per item."""
        elem_type = self._elem_type(seq, at)
        body_scope = scope.child()
        item = self.graph_input(body_scope, target.id if isinstance(target, ast.Name) else "item", elem_type)
        self._bind(target, item, body_scope, target)
        result = lower_body(body_scope)
        outs = [] if result is None else [self.ensure_local(body_scope, result, at)]
        graph = self.subgraph(body_scope, [item], outs, "map_body")
        attrs: list[ir.Attr] = [ir.AttrGraph("body", graph), ir.AttrInt64("flatten", int(flatten))]
        if result is None:
            self.emit(scope, "Map", [seq], [], at, domain=NAMU_DOMAIN, attrs=attrs)
            return None
        rtype = type_of(result)
        if flatten:
            out_type = rtype if rtype.kind == "list" else ValueType.opaque("list")
        else:
            out_type = ValueType.list(rtype)
        return self.emit1(scope, "Map", [seq], out_type, at, domain=NAMU_DOMAIN, attrs=attrs, names=["gathered"])


def _terminates(stmts: Sequence[ast.stmt]) -> bool:
    """True when every path through ``stmts`` ends in ``return``."""
    if not stmts:
        return False
    last = stmts[-1]
    if isinstance(last, (ast.Return, ast.Raise)):
        return True
    if isinstance(last, ast.If):
        return _terminates(last.body) and _terminates(last.orelse)
    return False


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

    folded = type(stmt)(test=stmt.test, body=extend(stmt.body), orelse=extend(stmt.orelse))  # a Guard stays one
    return ast.copy_location(folded, stmt)
