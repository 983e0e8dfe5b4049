"""Lower the expressions of a workflow body: literals, names, operators, comparisons,
attribute and item reads, f-strings, conditional expressions and list comprehensions.

Operators on scalars become standard ONNX ops (``Add``, ``Less``, ``And``, ...) where
they mean exactly Python's operator on the operand types, else ``namu.Arith`` (``/``,
``//``, ``**``, mixed int/float/bool arithmetic) and ``namu.Compare``; ``and``/``or``
and chained comparisons short-circuit through ``If`` when the right side could raise or
has an effect; a list comprehension is a ``namu.Map`` fan-out, nested generators
flattened.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

import onnx_ir as ir

from namu.frontend.builder import Scope, base_name, kwnames_attrs
from namu.frontend.catch import CaughtAs, ExceptionTest
from namu.frontend.liveness import walrus_targets
from namu.frontend.mutation import InPlace
from namu.frontend.names import is_literal
from namu.frontend.reads import MISSING
from namu.frontend.rejections import REJECTED_EXPRESSIONS, REJECTED_FORMS
from namu.frontend.task import Task
from namu.frontend.workflow import Workflow
from namu.ir.constants import constant_int
from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.types import (
    ValueType,
    arithmetic_type,
    builtin_class,
    operator_type,
    type_of,
)
from namu.ops.builtins import BUILTINS, mutated_type

__all__ = ["ExpressionLowering"]

#: Python's binary arithmetic operators -> their names in ``operator`` (``namu.Arith``'s op).
_OPERATORS = {
    ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "truediv",
    ast.FloorDiv: "floordiv", ast.Mod: "mod", ast.Pow: "pow", ast.BitAnd: "and_",
    ast.BitOr: "or_", ast.BitXor: "xor", ast.LShift: "lshift", ast.RShift: "rshift",
    ast.MatMult: "matmul",
}
#: (operator, kind of every operand) -> the standard op meaning exactly Python's operator.
_STANDARD_ARITH = {
    ("add", "int"): "Add", ("add", "float"): "Add", ("sub", "int"): "Sub", ("sub", "float"): "Sub",
    ("mul", "int"): "Mul", ("mul", "float"): "Mul", ("neg", "int"): "Neg", ("neg", "float"): "Neg",
    ("mod", "int"): "Mod",
}
#: the special attributes a workflow may read (``type(x).__name__``): names, nothing that
#: reaches into an object's machinery
_READABLE_DUNDERS = frozenset({"__name__", "__qualname__"})
_COMPARE_NAMES = {ast.Eq: "eq", ast.NotEq: "ne", ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge"}
_COMPARE = {ast.Lt: "Less", ast.LtE: "LessOrEqual", ast.Gt: "Greater", ast.GtE: "GreaterOrEqual"}
#: How each operator is written, for messages.
_SYMBOLS: dict[type, str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
    ast.Pow: "**", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|",
    ast.BitXor: "^", ast.BitAnd: "&", ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=",
    ast.Gt: ">", ast.GtE: ">=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
    ast.Not: "not", ast.Invert: "~", ast.UAdd: "+", ast.USub: "-",
}


class ExpressionLowering:
    """Expression lowering of the Python frontend (mixed into ``namu.frontend.lower._Lowering``,
    with the statement, call and name mixins and :class:`~namu.frontend.builder.IRBuilder`)."""

    def _expr(self, node: ast.expr, scope: Scope) -> ir.Value:
        """Lower one expression by its ``ast`` class (:data:`_LOWERINGS`).

        Raises:
            WorkflowSyntaxError: a rejected or unsupported expression, at its position.
        """
        message = REJECTED_EXPRESSIONS.get(type(node))
        if message is not None:
            self.src.fail(node, message)
        lowering = _LOWERINGS.get(type(node))
        if lowering is None:
            self.src.fail(node, f"{type(node).__name__} expressions are not supported in a workflow")
        return getattr(self, lowering)(node, scope)

    def _in_place(self, node: InPlace, scope: Scope) -> ir.Value:
        """An in-place change of a container the body owns (:mod:`namu.frontend.mutation`):
        ``namu.Mutated``, the changed copy (and, ``both``, the method's result, as a tuple)."""
        receiver = self._expr(node.receiver, scope)
        call = ast.Call(func=node.receiver, args=node.args, keywords=node.keywords)
        args, kwnames = self._call_inputs(ast.copy_location(call, node), scope, generators=True)
        attrs = [ir.AttrString("name", node.method), *kwnames_attrs(kwnames)]
        names = [base_name(receiver.name), node.method]
        out_types = [mutated_type(type_of(receiver)), ValueType.opaque()]
        changed, result = self.emit(scope, "Mutated", [receiver, *args], out_types, node, domain=NAMU_DOMAIN,
                                    attrs=attrs, names=names)
        return self.container(scope, "Tuple", [changed, result], node) if node.both else changed

    def _exception_test(self, node: ExceptionTest, scope: Scope) -> ir.Value:
        """An ``except`` clause's test (:mod:`namu.frontend.catch`): ``namu.ExceptionMatches``."""
        attrs = [ir.AttrStrings("types", self.exception_classes(node.types, scope))]
        exc = self._expr(node.exception, scope)
        return self.emit1(scope, "ExceptionMatches", [exc], ValueType.bool(), node, domain=NAMU_DOMAIN, attrs=attrs, names=["matches"])

    def _caught_as(self, node: CaughtAs, scope: Scope) -> ir.Value:
        """What ``except ... as name`` binds: ``namu.Caught``."""
        attrs = [ir.AttrStrings("types", self.exception_classes(node.types, scope))]
        exc = self._expr(node.exception, scope)
        return self.emit1(scope, "Caught", [exc], ValueType.opaque("BaseException"), node, domain=NAMU_DOMAIN, attrs=attrs, names=["caught"])

    def _constant_expr(self, node: ast.Constant, scope: Scope) -> ir.Value:
        return self.constant(scope, node.value, node)

    def _list(self, node: ast.List, scope: Scope) -> ir.Value:
        return self._display(node, "List", "list", "add", scope)

    def _tuple(self, node: ast.Tuple, scope: Scope) -> ir.Value:
        return self._display(node, "Tuple", "tuple", "add", scope)

    def _display(self, node: ast.List | ast.Tuple | ast.Set, op: str, builtin: str, join: str, scope: Scope) -> ir.Value:
        """A list, tuple or set display; with ``*xs`` items, the runs of plain items and
        each ``builtin(xs)`` joined by ``join`` in order (``[a, *xs]`` is ``[a] +
        list(xs)``, ``{*s, a}`` is ``set(s) | {a}``), each operand evaluated in order."""
        if not any(isinstance(e, ast.Starred) for e in node.elts):
            items = [self._expr(e, scope) for e in node.elts]
            if op == "Set":
                return self.emit1(scope, "Set", items, ValueType.opaque("set"), node, domain=NAMU_DOMAIN, names=["set"])
            return self.container(scope, op, items, node)
        parts: list[ir.Value] = []
        run: list[ast.expr] = []
        for element in [*node.elts, None]:
            if element is not None and not isinstance(element, ast.Starred):
                run.append(element)
                continue
            if run:
                plain = type(node)(elts=run, ctx=ast.Load()) if op != "Set" else ast.Set(elts=run)
                parts.append(self._display(ast.copy_location(plain, run[0]), op, builtin, join, scope))
                run = []
            if element is not None:
                parts.append(self._builtin(scope, builtin, [self._expr(element.value, scope)], element))
        return self._joined(scope, join, parts, node)

    def _joined(self, scope: Scope, op: str, parts: list[ir.Value], node: ast.AST) -> ir.Value:
        """``parts[0] op parts[1] op ...``, left to right (the pieces of a display)."""
        result = parts[0]
        for part in parts[1:]:
            result = self._arith(scope, op, [result, part], node)
        return result

    def _dict(self, node: ast.Dict, scope: Scope) -> ir.Value:
        """A dict display: ``namu.Dict`` when every key is a string literal; else
        ``dict()`` of its ``(key, value)`` pairs, and with ``**m`` items the runs of pairs
        and each ``dict(m)`` joined by ``|`` in order (later keys win, as in Python)."""
        if all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys):
            values = [self._expr(v, scope) for v in node.values]
            return self.dictionary(scope, [k.value for k in node.keys], values, node)  # type: ignore[union-attr]
        parts: list[ir.Value] = []
        pairs: list[ir.Value] = []
        for key, value in [*zip(node.keys, node.values), (None, None)]:
            if key is not None:
                pair = [self._expr(key, scope), self._expr(value, scope)]  # type: ignore[arg-type]
                pairs.append(self.container(scope, "Tuple", pair, key))
                continue
            if pairs:
                parts.append(self._builtin(scope, "dict", [self.container(scope, "List", pairs, node)], node))
                pairs = []
            if value is not None:
                parts.append(self._builtin(scope, "dict", [self._expr(value, scope)], value))
        return self._joined(scope, "or_", parts, node)

    def _list_comprehension(self, node: ast.ListComp, scope: Scope) -> ir.Value:
        return self._listcomp(node, node.generators, scope)

    def _set_comprehension(self, node: ast.SetComp, scope: Scope) -> ir.Value:
        """``{f(x) for x in xs}``: the fan-out of a list comprehension, then ``set()``."""
        items = self._listcomp(node, node.generators, scope)
        return self._builtin(scope, "set", [items], node)

    def _dict_comprehension(self, node: ast.DictComp, scope: Scope) -> ir.Value:
        """``{k(x): v(x) for x in xs}``: a fan-out of ``(key, value)`` pairs, then
        ``dict()`` of them after the fan-out (later keys win, as in Python)."""
        pair = ast.Tuple(elts=[node.key, node.value], ctx=ast.Load())
        ast.copy_location(pair, node.key)
        pairs = self._listcomp(ast.ListComp(elt=pair, generators=node.generators), node.generators, scope, at=node)
        return self._builtin(scope, "dict", [pairs], node)

    def _generator_argument(self, node: ast.expr, scope: Scope) -> ir.Value:
        """An argument of a builtin or a method: a generator expression is lowered as
        the list comprehension of the same items (a fan-out; every item runs: the
        ``any``/``all`` that must stop at the first decisive item were made loops by
        :mod:`namu.frontend.comprehensions` where they could be), any other as itself."""
        if isinstance(node, ast.GeneratorExp):
            return self._listcomp(node, node.generators, scope)
        return self._expr(node, scope)

    def _builtin(self, scope: Scope, name: str, args: list[ir.Value], at: ast.AST, kwnames: list[str] | None = None) -> ir.Value:
        """``namu.Builtin``: Python's builtin ``name`` on ``args`` (the last ones named by ``kwnames``)."""
        kwnames = kwnames or []
        attrs = [ir.AttrString("name", name), *kwnames_attrs(kwnames)]
        rtype = BUILTINS[name]([type_of(a) for a in args[: len(args) - len(kwnames)]])
        return self.emit1(scope, "Builtin", args, rtype, at, domain=NAMU_DOMAIN, attrs=attrs, names=[name])

    def _name(self, node: ast.Name, scope: Scope) -> ir.Value:
        if node.id in scope.env:
            return scope.env[node.id]
        if node.id in self.local_names:
            self._fail_unbound_local(node, node.id)
        obj = self._resolve(node.id)
        if obj is MISSING:
            self.src.fail(node, f"name `{node.id}` is not defined")
        if isinstance(obj, (Task, Workflow)):
            self.src.fail(node, f"`{node.id}` is a namu task or workflow; it can only be called, not used as a value")
        if not is_literal(obj):
            self.src.fail(node, f"`{node.id}` is a {type(obj).__name__}; a workflow can only use tasks, workflows and literal constants from its module")
        self.ctx.reads.constant(obj)  # folded into the IR: a change in place makes the compile stale
        return self.constant(scope, obj, node, node.id)

    def _check_numeric(self, lt: ValueType, rt: ValueType, node: ast.AST, what: str) -> None:
        if not (lt.is_numeric and rt.is_numeric):
            hint = "annotate the value first (`n: int = ...`) or compute it inside a task" if "opaque" in (lt.kind, rt.kind) else "compute it inside a task"
            self.src.fail(node, f"operator {what} needs int, float or bool operands here, got {lt} and {rt}; {hint}")

    def _numeric_pair(self, left: ir.Value, right: ir.Value, scope: Scope, node: ast.AST, what: str) -> tuple[ir.Value, ir.Value, ValueType]:
        lt, rt = type_of(left), type_of(right)
        self._check_numeric(lt, rt, node, what)
        result = ValueType.float() if "float" in (lt.kind, rt.kind) else ValueType.int()
        return self.cast(scope, left, result, node), self.cast(scope, right, result, node), result

    def _binop(self, node: ast.BinOp, scope: Scope) -> ir.Value:
        left = self._expr(node.left, scope)
        right = self._expr(node.right, scope)
        op = type(node.op)
        lt, rt = type_of(left), type_of(right)
        if op is ast.Add and lt.kind == "str" and rt.kind == "str":
            return self.emit1(scope, "StringConcat", [left, right], ValueType.str(), node, names=["concat"])
        return self._arith(scope, _OPERATORS[op], [left, right], node)

    def _arith(self, scope: Scope, name: str, operands: list[ir.Value], node: ast.AST) -> ir.Value:
        """Python's ``operator.<name>`` on any values, with Python's result and errors (no
        ``Cast``: an int never goes through a double). The standard op where it means
        exactly that (``Add``/``Sub``/``Mul``/``Neg`` on two ints or two floats, ``Mod`` on
        ints), else ``namu.Arith``; the type is what infer-types derives
        (``arithmetic_type`` on numbers, ``operator_type`` on the rest)."""
        types = [type_of(v) for v in operands]
        exponent = constant_int(operands[1]) if name == "pow" else None
        rtype = arithmetic_type(name, types, exponent) or operator_type(name, types)
        kind = types[0].kind if all(t.kind == types[0].kind for t in types) else None
        standard = _STANDARD_ARITH.get((name, kind))
        if standard == "Mod":
            return self.emit1(scope, "Mod", operands, rtype, node, attrs=[ir.AttrInt64("fmod", 0)])
        if standard is not None:
            return self.emit1(scope, standard, operands, rtype, node)
        return self.emit1(scope, "Arith", operands, rtype, node, domain=NAMU_DOMAIN, attrs=[ir.AttrString("op", name)], names=[name])

    def _unaryop(self, node: ast.UnaryOp, scope: Scope) -> ir.Value:
        operand = self._expr(node.operand, scope)
        if isinstance(node.op, ast.Not):
            return self.emit1(scope, "Not", [self.truth(scope, operand, node)], ValueType.bool(), node)
        literal = node.operand.value if isinstance(node.operand, ast.Constant) else None
        if type(literal) in (int, float) and isinstance(node.op, ast.USub):
            # `-1` is a literal, as Python's own compiler folds it: `2 ** -1` is typed float.
            return self.constant(scope, -literal, node)  # type: ignore[operator]
        # `+x` is an op too: it makes an int of a bool, and an int-typed value may hold one.
        name = {ast.UAdd: "pos", ast.USub: "neg", ast.Invert: "invert"}[type(node.op)]
        return self._arith(scope, name, [operand], node)

    def _boolop(self, node: ast.BoolOp, scope: Scope) -> ir.Value:
        op = "And" if isinstance(node.op, ast.And) else "Or"
        acc = self._expr(node.values[0], scope)
        for operand in node.values[1:]:
            if type_of(acc).kind != "bool" or not self._is_safe(operand, scope):
                # Short-circuit: a right side that calls tasks or may raise runs only when
                # Python would evaluate it; on values of any type, the result is an operand.
                acc = self._operand_boolop(node, op, acc, operand, scope)
            else:
                rhs = self._expr(operand, scope)
                if type_of(rhs).kind != "bool":
                    # `p and x` with a bool `p`: False, or x itself (whatever it is)
                    then_scope, else_scope = scope.child(), scope.child()
                    rhs_scope = then_scope if op == "And" else else_scope
                    picked = self.identity(rhs_scope, rhs, operand)
                    keep = self.identity(else_scope if op == "And" else then_scope, acc, operand)
                    then_val, else_val = (picked, keep) if op == "And" else (keep, picked)
                    acc = self._branches(node, acc, then_scope, [then_val], else_scope, [else_val], [op.lower()], scope=scope)[0]
                    continue
                acc = self.emit1(scope, op, [acc, rhs], ValueType.bool(), node)
        return acc

    def _operand_boolop(self, node: ast.BoolOp, op: str, acc: ir.Value, operand: ast.expr, scope: Scope) -> ir.Value:
        """``x and y`` / ``x or y`` on values of any type: an operand, as in Python (``x and
        y`` is ``y`` if ``x`` is true, else ``x``); ``y`` is evaluated only when Python
        would."""
        cond = self.truth(scope, acc, node)
        then_scope, else_scope = scope.child(), scope.child()
        rhs_scope, keep_scope = (then_scope, else_scope) if op == "And" else (else_scope, then_scope)
        rhs = self._expr(operand, rhs_scope)
        keep = self.identity(keep_scope, acc, operand)
        then_val, else_val = (rhs, keep) if op == "And" else (keep, rhs)
        return self._expression_branches(node, [operand], cond, then_scope, then_val, else_scope, else_val, op.lower(), scope)

    def _expression_branches(
        self,
        node: ast.expr,
        parts: list[ast.expr],
        cond: ir.Value,
        then_scope: Scope,
        then_val: ir.Value,
        else_scope: Scope,
        else_val: ir.Value,
        hint: str,
        scope: Scope,
    ) -> ir.Value:
        """The ``If`` choosing between two lowered sub-expressions; a name that an
        assignment expression in ``parts`` binds on one path becomes a phi: the new value
        where it ran, the old one (or None, Python's unbound) where it did not."""
        names = sorted({t.id for part in parts for t in walrus_targets(part)})

        def bound(branch: Scope, name: str) -> ir.Value:
            return branch.env[name] if name in branch.env else self.constant(branch, None, node, name)

        then_vals = [then_val, *(bound(then_scope, n) for n in names)]
        else_vals = [else_val, *(bound(else_scope, n) for n in names)]
        outs = self._branches(node, cond, then_scope, then_vals, else_scope, else_vals, [hint, *names], scope=scope)
        for name, value in zip(names, outs[1:]):
            scope.env[name] = value
        return outs[0]

    def _compare(self, node: ast.Compare, scope: Scope) -> ir.Value:
        left = self._expr(node.left, scope)
        return self._chain(node, left, list(zip(node.ops, node.comparators)), scope)

    def _chain(self, node: ast.Compare, left: ir.Value, pairs: list[tuple[ast.cmpop, ast.expr]], scope: Scope) -> ir.Value:
        """``a < b < c`` is ``a < b and b < c`` with ``b`` evaluated once and ``c`` only if needed."""
        (op, comp), rest = pairs[0], pairs[1:]
        right = self._expr(comp, scope)
        test = self._compare_one(op, left, right, scope, node)
        if not rest:
            return test
        if all(self._is_safe(c, scope) for _, c in rest):
            tail = self._chain(node, right, rest, scope)
            return self.emit1(scope, "And", [test, tail], ValueType.bool(), node)
        then_scope, else_scope = scope.child(), scope.child()
        tail = self._chain(node, right, rest, then_scope)
        false = self.identity(else_scope, test, node)
        return self._expression_branches(node, [c for _, c in rest], test, then_scope, tail, else_scope, false, "chain", scope)

    def _compare_one(self, op: ast.cmpop, left: ir.Value, right: ir.Value, scope: Scope, node: ast.AST) -> ir.Value:
        symbol = _SYMBOLS.get(type(op), type(op).__name__)
        lt, rt = type_of(left), type_of(right)
        if {lt.kind, rt.kind} == {"int", "float"} and type(op) in _COMPARE_NAMES:
            # Python compares int with float exactly; a Cast to double would round ints
            # above 2**53, so mixed comparisons use namu.Compare.
            attrs = [ir.AttrString("op", _COMPARE_NAMES[type(op)])]
            return self.emit1(scope, "Compare", [left, right], ValueType.bool(), node, domain=NAMU_DOMAIN, attrs=attrs, names=["cmp"])
        if isinstance(op, (ast.In, ast.NotIn)):
            found = self.emit1(scope, "Contains", [right, left], ValueType.bool(), node, domain=NAMU_DOMAIN, names=["contains"])
            return found if isinstance(op, ast.In) else self.emit1(scope, "Not", [found], ValueType.bool(), node, names=["not_in"])
        if isinstance(op, (ast.Is, ast.IsNot)):
            value = self._none_operand(left, right, node, symbol)
            is_none = self.emit1(scope, "IsNone", [value], ValueType.bool(), node, domain=NAMU_DOMAIN, names=["is_none"])
            return is_none if isinstance(op, ast.Is) else self.emit1(scope, "Not", [is_none], ValueType.bool(), node, names=["is_not_none"])
        numeric = lt.is_numeric and rt.is_numeric
        if isinstance(op, (ast.Eq, ast.NotEq)) and (numeric or lt.kind == rt.kind == "str"):
            if lt.kind == "str":
                eq = self.emit1(scope, "Equal", [left, right], ValueType.bool(), node, names=["eq"])
            else:
                a, b, _ = self._numeric_pair(left, right, scope, node, symbol)
                eq = self.emit1(scope, "Equal", [a, b], ValueType.bool(), node, names=["eq"])
            if isinstance(op, ast.Eq):
                return eq
            return self.emit1(scope, "Not", [eq], ValueType.bool(), node, names=["ne"])
        if type(op) in _COMPARE and numeric:
            a, b, _ = self._numeric_pair(left, right, scope, node, symbol)
            return self.emit1(scope, _COMPARE[type(op)], [a, b], ValueType.bool(), node)
        # Any other operands: Python's own comparison (`1 == "1"` is False, `"a" < 1`
        # raises TypeError when the run gets there, lists and tuples compare item by item).
        attrs = [ir.AttrString("op", _COMPARE_NAMES[type(op)])]
        return self.emit1(scope, "Compare", [left, right], _compare_result(lt, rt), node, domain=NAMU_DOMAIN, attrs=attrs, names=["cmp"])

    def _attribute(self, node: ast.Attribute, scope: Scope) -> ir.Value:
        """``x.name`` on a workflow value: ``namu.GetAttr``, read when the run gets there
        (an opaque value; annotate it to use it in arithmetic: ``n: int = rec.count``)."""
        base = node.value
        constant = self._global_constant(node, scope.env)
        if constant is not MISSING:
            # `math.pi`, `Config.RETRIES`: a literal constant of a module-level object is
            # folded in, as a module-level literal is (the read is recorded: a change makes
            # the compile stale)
            self.ctx.reads.constant(constant)
            return self.constant(scope, constant, node, node.attr)
        if isinstance(base, ast.Name) and base.id not in scope.env:
            if base.id in self.local_names:
                self._fail_unbound_local(base, base.id)
            self.src.fail(node, f"attribute reads are supported on workflow values and on literal constants of modules "
                                f"and classes; `{ast.unparse(node)}` is neither (read it inside a task)")
        if node.attr.startswith("__") and node.attr.endswith("__") and node.attr not in _READABLE_DUNDERS:
            self.src.fail(node, f"special attribute `{node.attr}` cannot be read in a workflow; do it inside a task")
        value = self._expr(base, scope)
        attrs = [ir.AttrString("name", node.attr)]
        return self.emit1(scope, "GetAttr", [value], ValueType.opaque(), node, domain=NAMU_DOMAIN, attrs=attrs, names=[node.attr])

    def _none_operand(self, left: ir.Value, right: ir.Value, node: ast.AST, symbol: str) -> ir.Value:
        """The operand of ``x is None`` / ``None is x``: identity is supported only against
        None (identity of ints, strings or containers depends on CPython's object caching,
        which compiled code cannot reproduce)."""
        for value, other in ((left, right), (right, left)):
            producer = other.producer()
            if producer is not None and producer.domain == NAMU_DOMAIN and producer.op_type == "None":
                return value
        self.src.fail(node, f"`{symbol}` is supported in a workflow only against None (`x {symbol} None`); use == to compare values")

    def _fstring(self, node: ast.JoinedStr, scope: Scope) -> ir.Value:
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
            values.append(self._expr(part.value, scope))
            if part.format_spec is not None:
                # a nested field (`f"{x:>{width}}"`) is a nested `{}` of the template, its
                # value the next input: str.format numbers them in the order f-strings
                # evaluate them
                field += ":"
                for spec_part in part.format_spec.values:  # type: ignore[attr-defined]
                    if isinstance(spec_part, ast.Constant):
                        field += str(spec_part.value)
                        continue
                    inner = "{" + ("!" + chr(spec_part.conversion) if spec_part.conversion != -1 else "")
                    if spec_part.format_spec is not None:
                        inner += ":" + "".join(str(v.value) for v in spec_part.format_spec.values)
                    field += inner + "}"
                    values.append(self._expr(spec_part.value, scope))
            template.append(field + "}")
        attrs = [ir.AttrString("template", "".join(template))]
        return self.emit1(scope, "Format", values, ValueType.str(), node, domain=NAMU_DOMAIN, attrs=attrs, names=["fstring"])

    def _ifexp(self, node: ast.IfExp, scope: Scope) -> ir.Value:
        cond = self.truth(scope, self._expr(node.test, scope), node.test)
        then_scope, else_scope = scope.child(), scope.child()
        then_val = self._expr(node.body, then_scope)
        else_val = self._expr(node.orelse, else_scope)
        return self._expression_branches(node, [node.body, node.orelse], cond, then_scope, then_val, else_scope, else_val, "choice", scope)

    def _subscript(self, node: ast.Subscript, scope: Scope) -> ir.Value:
        if isinstance(node.slice, ast.Slice):
            return self._slice(node, node.slice, scope)
        container = self._expr(node.value, scope)
        key = self._expr(node.slice, scope)
        ctype, ktype = type_of(container), type_of(key)
        if ctype.kind == "list" and ctype.is_onnx and ktype.kind == "int":
            return self.emit1(scope, "SequenceAt", [container, key], ctype.elem, node, names=["item"])  # type: ignore[arg-type]
        index = _constant_int(node.slice)
        if ctype.items is not None and index is not None and -len(ctype.items) <= index < len(ctype.items):
            out = ctype.items[index]
        elif ctype.kind == "list" and ctype.elem is not None:
            out = ctype.elem
        elif ctype.kind == "str":
            out = ValueType.str()
        else:
            out = ValueType.opaque()
        return self.emit1(scope, "GetItem", [container, key], out, node, domain=NAMU_DOMAIN, names=["item"])

    def _slice(self, node: ast.Subscript, part: ast.Slice, scope: Scope) -> ir.Value:
        """``x[a:b:c]``: ``namu.Slice`` of ``x`` by the bounds (None where omitted), any
        step, Python's ``x[slice(a, b, c)]``; a str, list or tuple slices to its own type."""
        container = self._expr(node.value, scope)
        bounds = [self._expr(b, scope) if b is not None else self.constant(scope, None, part) for b in (part.lower, part.upper, part.step)]
        ctype = type_of(container)
        out = ctype if ctype.kind in ("str", "list") else ValueType.opaque(ctype.name) if builtin_class(ctype) in (tuple, bytes) else ValueType.opaque()
        return self.emit1(scope, "Slice", [container, *bounds], out, node, domain=NAMU_DOMAIN, names=["slice"])

    def _named_expr(self, node: ast.NamedExpr, scope: Scope) -> ir.Value:
        """``(y := value)``: ``value``, bound to ``y`` from here on (the statement checked
        that the binding does not depend on a path inside the expression)."""
        value = self._expr(node.value, scope)
        scope.env[node.target.id] = value
        return value

    def _set(self, node: ast.Set, scope: Scope) -> ir.Value:
        """``{a, b}``: ``namu.Set`` of the items (``{*s, a}``: ``set(s) | {a}``)."""
        return self._display(node, "Set", "set", "or_", scope)

    def _is_safe(self, node: ast.AST, scope: Scope) -> bool:
        """True when evaluating ``node`` can neither raise nor have an effect, so it may
        be evaluated eagerly instead of short-circuited: arithmetic and comparisons (no
        calls, subscripts, divisions, ...) of literal numbers and of names bound to
        numbers (an operator on other values may raise ``TypeError``)."""
        for n in ast.walk(node):
            if not isinstance(n, (*_SAFE_NODES, ast.UnaryOp, ast.BinOp)):
                return False
            if isinstance(n, ast.Constant) and type(n.value) not in (int, float, bool):
                return False
            if isinstance(n, ast.Name) and not self._names_number(n.id, scope):
                return False
        return True

    def _names_number(self, name: str, scope: Scope) -> bool:
        """Whether ``name`` is bound to a number here: a value of the body typed int,
        float or bool, or a module-level constant that is one."""
        if name in scope.env:
            return type_of(scope.env[name]).is_numeric
        return name not in self.local_names and type(self._resolve(name)) in (int, float, bool)

    def _listcomp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp, generators: list[ast.comprehension], scope: Scope,
                  at: ast.AST | None = None) -> ir.Value:
        gen = generators[0]
        if gen.is_async:
            self.src.fail(gen, REJECTED_FORMS["[... async for ...]"])
        self._check_target(gen.target)
        seq = self._expr(gen.iter, scope)
        rest = generators[1:]

        def element(body_scope: Scope) -> ir.Value:
            if rest:
                return self._listcomp(node, rest, body_scope, at)
            return self._expr(node.elt, body_scope)

        def body(body_scope: Scope) -> ir.Value:
            if not gen.ifs:
                return element(body_scope)
            # `for x in xs if c1 if c2`: each item yields a list of 0 or 1 elements (of 0
            # or more, for nested generators), and the Map flattens them. The element is
            # computed only for items that pass every filter, and a filter only after the
            # ones before it passed, as in Python.
            return self._filtered(gen.ifs, element, body_scope, wrap=not rest)

        result = self._map(at or node, scope, seq, gen.target, body, flatten=bool(rest) or bool(gen.ifs))
        assert result is not None
        return result

    def _filtered(self, ifs: list[ast.expr], element: Callable[[Scope], ir.Value], scope: Scope, *, wrap: bool) -> ir.Value:
        """``element`` (as a one-item list when ``wrap``) if every filter of ``ifs`` holds,
        else an empty list of the same type: an ``If`` per filter."""
        test = ifs[0]
        cond = self.truth(scope, self._expr(test, scope), test)
        then_scope, else_scope = scope.child(), scope.child()
        if len(ifs) > 1:
            kept = self._filtered(ifs[1:], element, then_scope, wrap=wrap)
        else:
            kept = element(then_scope)
            if wrap:
                kept = self.container(then_scope, "List", [kept], test)
        empty = self._empty_list(else_scope, type_of(kept), test)
        return self._branches(test, cond, then_scope, [kept], else_scope, [empty], ["kept"], scope)[0]

    def _empty_list(self, scope: Scope, like: ValueType, at: ast.AST) -> ir.Value:
        """``[]`` typed like ``like`` where ONNX can hold it (``SequenceEmpty``), else opaque."""
        if like.kind == "list" and like.elem is not None and like.is_onnx:
            dtype = like.elem.onnx_type.dtype  # type: ignore[union-attr]
            return self.emit1(scope, "SequenceEmpty", [], like, at, attrs=[ir.AttrInt64("dtype", int(dtype))], names=["empty"])
        return self.container(scope, "List", [], at)


def _constant_int(node: ast.expr) -> int | None:
    """The value of an int literal, including a negated one (``-1``), else None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _constant_int(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    return None


_SAFE_NODES = (
    ast.Name, ast.Constant, ast.Load, ast.Compare, ast.BoolOp, ast.And, ast.Or, ast.Not,
    ast.USub, ast.UAdd, ast.Add, ast.Sub, ast.Mult, ast.Eq, ast.NotEq, ast.Lt, ast.LtE,
    ast.Gt, ast.GtE,
)


def _compare_result(lt: ValueType, rt: ValueType) -> ValueType:
    """The type of Python's comparison of values of types ``lt`` and ``rt``: ``bool`` for
    builtin types, else ``object`` (``__eq__`` may return anything)."""
    known = all(t.is_scalar or builtin_class(t) is not None for t in (lt, rt))
    return ValueType.bool() if known else ValueType.opaque()


#: the method lowering each supported expression, by its ``ast`` class (the rejected
#: ones are in :data:`namu.frontend.rejections.REJECTED_EXPRESSIONS`)
_LOWERINGS: dict[type[ast.expr], str] = {
    ast.Constant: "_constant_expr",
    ast.Name: "_name",
    ast.List: "_list",
    ast.Tuple: "_tuple",
    ast.Dict: "_dict",
    ast.JoinedStr: "_fstring",
    ast.Attribute: "_attribute",
    ast.BinOp: "_binop",
    ast.UnaryOp: "_unaryop",
    ast.BoolOp: "_boolop",
    ast.Compare: "_compare",
    ast.IfExp: "_ifexp",
    ast.Call: "_call",
    ast.ListComp: "_list_comprehension",
    ast.Subscript: "_subscript",
    ast.Set: "_set",
    ast.SetComp: "_set_comprehension",
    ast.NamedExpr: "_named_expr",
    ast.DictComp: "_dict_comprehension",
    ExceptionTest: "_exception_test",
    InPlace: "_in_place",
    CaughtAs: "_caught_as",
}
