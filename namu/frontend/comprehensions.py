"""Comprehensions that must run in order, as loops: a source-to-source rewrite the
lowering runs first on a body. A comprehension is otherwise a fan-out.

* One whose assignment expression binds in the function:
  ``results = [y for x in xs if (y := f(x)) > 0]`` binds ``y`` (PEP 572) to the value the
  last item evaluated, so it becomes the loop Python runs::

      _namu_comp_0 = []
      for _namu_comp_0_x in xs:
          if (y := f(_namu_comp_0_x)) > 0:
              _namu_comp_0 = _namu_comp_0 + [y]
      results = _namu_comp_0

  (a set comprehension adds with ``|``, a dict comprehension with ``| {key: value}``).
* ``any(...)`` and ``all(...)`` of a generator expression with one ``for`` clause: Python
  stops at the first decisive item, so the items after it never run (their tasks are not
  called, their exceptions not raised)::

      _namu_comp_1 = False
      for _namu_comp_1_x in xs:
          if f(_namu_comp_1_x):
              _namu_comp_1 = True
              break

The comprehension's own variables get fresh names, so they stay local to it as in Python.
It is rewritten where it is the whole value of an assignment, a ``return`` or an
expression statement, or the whole test of an ``if`` (evaluated first there); elsewhere,
moving it before the statement could reorder the statement's other calls, so a binding
comprehension is refused, located, and ``any``/``all`` there run every item (a fan-out).
An assignment expression in a generator expression is refused (its consumer may stop
early).
"""

from __future__ import annotations

import ast
import copy
import itertools
from collections.abc import Callable, Iterator

from namu.frontend.synthetic import assign, at, const, name, nested_blocks

__all__ = ["rewrite_ordered_comprehensions"]

_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp)


def rewrite_ordered_comprehensions(stmts: list[ast.stmt], is_builtin: Callable[[str], bool]) -> list[ast.stmt]:
    """``stmts`` with each comprehension that must run in order rewritten as a loop (see
    the module's docstring), on a copy; ``stmts`` themselves when there is none.

    Args:
        stmts: a function body.
        is_builtin: whether a name, read in this function, is Python's builtin of that name.
    """
    rewrite = _Rewrite(is_builtin)
    if not any(rewrite.ordered(node) for stmt in stmts for node in ast.walk(stmt) if isinstance(node, ast.expr)):
        return stmts
    return rewrite.block(copy.deepcopy(stmts))


def _binds(comprehension: ast.AST) -> bool:
    return any(isinstance(node, ast.NamedExpr) for node in ast.walk(comprehension))


class _Rewrite:
    def __init__(self, is_builtin: Callable[[str], bool]) -> None:
        self.counter = itertools.count()
        self.is_builtin = is_builtin

    def ordered(self, value: ast.expr | None) -> bool:
        """Whether ``value`` is a comprehension that must run in order."""
        if isinstance(value, _COMPREHENSIONS):
            return _binds(value)
        return self.short_circuit(value) is not None

    def short_circuit(self, value: ast.expr | None) -> str | None:
        """``"any"`` or ``"all"`` for ``any(<genexp>)`` / ``all(<genexp>)`` of the builtin,
        with one ``for`` clause; else None."""
        if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in ("any", "all")):
            return None
        if value.keywords or len(value.args) != 1 or not isinstance(value.args[0], ast.GeneratorExp):
            return None
        generators = value.args[0].generators
        if len(generators) != 1 or generators[0].is_async or not self.is_builtin(value.func.id):
            return None
        return value.func.id

    def lowered(self, value: ast.expr) -> tuple[ast.Name, list[ast.stmt]]:
        kind = self.short_circuit(value)
        if kind is not None:
            return self.decided(kind, value.args[0])  # type: ignore[attr-defined]
        return self.loop(value)  # type: ignore[arg-type]

    def block(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for stmt in stmts:
            for block in nested_blocks(stmt):
                block[:] = self.block(block)
            field = "value" if isinstance(stmt, (ast.Assign, ast.Return, ast.Expr)) else "test" if isinstance(stmt, ast.If) else None
            value = getattr(stmt, field) if field is not None else None
            if self.ordered(value):
                result, loop = self.lowered(value)
                setattr(stmt, field, result)  # type: ignore[arg-type]
                out += [*loop, stmt]
            else:
                out.append(stmt)
        return out

    def decided(self, kind: str, generator: ast.GeneratorExp) -> tuple[ast.Name, list[ast.stmt]]:
        """``any``/``all`` of ``generator`` as a loop that stops at the first decisive item."""
        n = next(self.counter)
        acc = f"_namu_comp_{n}"
        gen = copy.deepcopy(generator.generators[0])
        renamed: dict[str, str] = {}
        for target in _target_names(gen.target):
            renamed[target.id] = target.id = f"_namu_comp_{n}_{target.id}"
        item = _renamed(copy.deepcopy(generator.elt), renamed)
        where = generator
        test = item if kind == "any" else at(ast.UnaryOp(op=ast.Not(), operand=item), item)
        decide = [assign(acc, const(kind == "any", where), where), at(ast.Break(), where)]
        body: list[ast.stmt] = [at(ast.If(test=test, body=decide, orelse=[]), item)]
        for condition in reversed([_renamed(c, renamed) for c in gen.ifs]):
            body = [at(ast.If(test=condition, body=body, orelse=[]), condition)]
        loop = at(ast.For(target=gen.target, iter=gen.iter, body=body, orelse=[], type_comment=None), gen.iter)
        return name(acc, where), [assign(acc, const(kind != "any", where), where), loop]

    def loop(self, comp: ast.ListComp | ast.SetComp | ast.DictComp) -> tuple[ast.Name, list[ast.stmt]]:
        """The name holding ``comp``'s value, and the statements computing it."""
        n = next(self.counter)
        acc = f"_namu_comp_{n}"
        renamed: dict[str, str] = {}
        generators = copy.deepcopy(comp.generators)
        parts: list[ast.expr] = [comp.key, comp.value] if isinstance(comp, ast.DictComp) else [comp.elt]
        parts = [copy.deepcopy(p) for p in parts]
        for gen in generators:
            gen.iter = _renamed(gen.iter, renamed)
            for target in _target_names(gen.target):
                renamed[target.id] = target.id = f"_namu_comp_{n}_{target.id}"
            gen.ifs = [_renamed(test, renamed) for test in gen.ifs]
        parts = [_renamed(p, renamed) for p in parts]
        where = comp
        if isinstance(comp, ast.ListComp):
            empty: ast.expr = at(ast.List(elts=[], ctx=ast.Load()), where)
            added: ast.expr = at(ast.BinOp(left=name(acc, where), op=ast.Add(), right=at(ast.List(elts=parts, ctx=ast.Load()), where)), where)
        elif isinstance(comp, ast.SetComp):
            empty = at(ast.Call(func=name("set", where), args=[], keywords=[]), where)
            added = at(ast.BinOp(left=name(acc, where), op=ast.BitOr(), right=at(ast.Set(elts=parts), where)), where)
        else:
            empty = at(ast.Dict(keys=[], values=[]), where)
            item = at(ast.Dict(keys=[parts[0]], values=[parts[1]]), where)
            added = at(ast.BinOp(left=name(acc, where), op=ast.BitOr(), right=item), where)
        body: list[ast.stmt] = [assign(acc, added, where)]
        for gen in reversed(generators):
            for test in reversed(gen.ifs):  # each filter only when the ones before it passed
                body = [at(ast.If(test=test, body=body, orelse=[]), test)]
            body = [at(ast.For(target=gen.target, iter=gen.iter, body=body, orelse=[], type_comment=None), gen.iter)]
        return name(acc, where), [assign(acc, empty, where), *body]


def _target_names(target: ast.expr) -> Iterator[ast.Name]:
    for node in ast.walk(target):
        if isinstance(node, ast.Name):
            yield node


def _renamed(expr: ast.expr, renamed: dict[str, str]) -> ast.expr:
    """``expr`` with the loads of renamed comprehension variables renamed, except inside a
    nested comprehension that binds the same name again."""
    if not renamed:
        return expr

    class Renamer(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.Name:
            if isinstance(node.ctx, ast.Load) and node.id in renamed:
                node.id = renamed[node.id]
            return node

        def visit_nested(self, node: ast.AST) -> ast.AST:
            rebound = {t.id for gen in node.generators for t in _target_names(gen.target)}  # type: ignore[attr-defined]
            inner = {k: v for k, v in renamed.items() if k not in rebound}
            for gen in node.generators:  # type: ignore[attr-defined]
                gen.iter = _renamed(gen.iter, inner) if gen is not node.generators[0] else _renamed(gen.iter, renamed)  # type: ignore[attr-defined]
                gen.ifs = [_renamed(test, inner) for test in gen.ifs]
            for field in ("elt", "key", "value"):
                if hasattr(node, field):
                    setattr(node, field, _renamed(getattr(node, field), inner))
            return node

        visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_nested

    return Renamer().visit(expr)
