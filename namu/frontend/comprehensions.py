"""Comprehensions whose assignment expressions bind in the function, as loops: a
source-to-source rewrite the lowering runs first on a body.

``results = [y for x in xs if (y := f(x)) > 0]`` binds ``y`` in the enclosing function
(PEP 572), to the value the last item evaluated. A comprehension is otherwise a fan-out,
whose items have no order to take "the last" from; this one becomes the loop Python runs:

    _namu_comp_0 = []
    for _namu_comp_0_x in xs:
        if (y := f(_namu_comp_0_x)) > 0:
            _namu_comp_0 = _namu_comp_0 + [y]
    results = _namu_comp_0

(a set comprehension adds with ``|``, a dict comprehension with ``| {key: value}``). The
comprehension's own variables get fresh names, so they stay local to it as in Python.
It is rewritten where it is the whole value of an assignment, a ``return`` or an
expression statement (elsewhere, moving it before the statement could reorder the
statement's other calls: refused, located, as is ``:=`` in a generator expression, whose
consumer may stop early).
"""

from __future__ import annotations

import ast
import copy
import itertools
from collections.abc import Iterator

from namu.frontend.synthetic import assign, at, name

__all__ = ["rewrite_binding_comprehensions"]

_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp)


def rewrite_binding_comprehensions(stmts: list[ast.stmt]) -> list[ast.stmt]:
    """``stmts`` with each comprehension that holds an assignment expression, and is the
    whole value of its statement, rewritten as a loop (see the module's docstring), on a
    copy; ``stmts`` themselves when there is none."""
    if not any(_binds(node) for stmt in stmts for node in ast.walk(stmt) if isinstance(node, _COMPREHENSIONS)):
        return stmts
    return _Rewrite().block(copy.deepcopy(stmts))


def _binds(comprehension: ast.AST) -> bool:
    return any(isinstance(node, ast.NamedExpr) for node in ast.walk(comprehension))


class _Rewrite:
    def __init__(self) -> None:
        self.counter = itertools.count()

    def block(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for stmt in stmts:
            for field in ("body", "orelse", "finalbody"):
                if isinstance(getattr(stmt, field, None), list):
                    setattr(stmt, field, self.block(getattr(stmt, field)))
            for part in (*getattr(stmt, "handlers", []), *getattr(stmt, "cases", [])):
                part.body = self.block(part.body)
            value = stmt.value if isinstance(stmt, (ast.Assign, ast.Return, ast.Expr)) else None
            if isinstance(value, _COMPREHENSIONS) and _binds(value):
                result, loop = self.loop(value)
                stmt.value = result  # type: ignore[union-attr]
                out += [*loop, stmt]
            else:
                out.append(stmt)
        return out

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
