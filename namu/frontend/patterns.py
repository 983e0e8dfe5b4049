"""``match`` statements as ``if``/``elif`` chains: a source-to-source rewrite the lowering
runs before it lowers a body (before :mod:`namu.frontend.catch`).

The subject is evaluated once, into ``_namu_subject_N``; each ``case`` becomes a test
built from its pattern (PEP 634's semantics, the way CPython's compiler spells them):

* a literal: ``subject == value``; ``None``, ``True``, ``False``: an identity test;
* a capture ``x`` (and ``p as x``): ``(x := subject,)``, a one-item tuple, so the binding
  is an operand of the ``and`` chain that is always true (an assignment expression on a
  path that may not run binds a phi: the lowering gives ``x`` its old value where the
  case failed before reaching it, as Python leaves it);
* ``_``: ``True``; ``p1 | p2``: ``p1 or p2`` (the alternative that matched binds the names);
* ``[a, *rest, b]`` (or a tuple): ``isinstance(subject, (list, tuple))``, the length,
  then each item's pattern; ``*rest`` binds a list;
* ``{"k": p, **rest}``: ``isinstance(subject, dict)``, each key ``in`` it, each value's
  pattern; ``**rest`` binds a dict of the other keys;
* ``int(p)``, ``str()``, ``dict(key=p)``: ``isinstance`` with a builtin class (its one
  positional sub-pattern matches the subject itself, keyword ones its attributes);
* ``case p if guard:``: ``test and guard``.

A class pattern with a class that is not builtin is refused: a workflow tests builtin
classes only.
"""

from __future__ import annotations

import ast
import copy
import itertools
from collections.abc import Callable, Iterator
from typing import NoReturn

from namu.frontend.synthetic import assign, at, const, name, nested_blocks

__all__ = ["pattern_captures", "rewrite_match"]

Fail = Callable[[ast.AST, str], NoReturn]

#: the builtin classes whose one positional sub-pattern matches the subject itself (PEP 634)
_SELF_MATCHING = frozenset({"bool", "bytearray", "bytes", "dict", "float", "frozenset", "int", "list", "set", "str", "tuple"})


def rewrite_match(stmts: list[ast.stmt], fail: Fail) -> list[ast.stmt]:
    """``stmts`` with every ``match`` statement rewritten (see the module's docstring), on
    a copy; ``stmts`` themselves when there is none."""
    if not any(isinstance(node, ast.Match) for stmt in stmts for node in ast.walk(stmt)):
        return stmts
    return _Rewrite(fail).block(copy.deepcopy(stmts))


class _Rewrite:
    def __init__(self, fail: Fail) -> None:
        self.fail = fail
        self.counter = itertools.count()

    def block(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for stmt in stmts:
            for block in nested_blocks(stmt):  # a match's case bodies too
                block[:] = self.block(block)
            if isinstance(stmt, ast.Match):
                out += self.match(stmt)
            else:
                out.append(stmt)
        return out

    def match(self, stmt: ast.Match) -> list[ast.stmt]:
        subject = f"_namu_subject_{next(self.counter)}"
        chain: list[ast.stmt] = []
        for case in reversed(stmt.cases):
            test = self.test(case.pattern, name(subject, case.pattern))
            if case.guard is not None:
                test = at(ast.BoolOp(op=ast.And(), values=[test, case.guard]), case.guard)
            chain = [at(ast.If(test=test, body=case.body, orelse=chain), case.pattern)]
        return [assign(subject, stmt.subject, stmt), *chain]

    def test(self, pattern: ast.pattern, subject: ast.expr) -> ast.expr:
        """An expression true when ``subject`` matches ``pattern``, binding its captures."""
        where = pattern
        if isinstance(pattern, ast.MatchValue):
            return at(ast.Compare(left=subject, ops=[ast.Eq()], comparators=[pattern.value]), where)
        if isinstance(pattern, ast.MatchSingleton):
            if pattern.value is None:
                return at(ast.Compare(left=subject, ops=[ast.Is()], comparators=[const(None, where)]), where)
            truth: ast.expr = copy.deepcopy(subject) if pattern.value else at(ast.UnaryOp(op=ast.Not(), operand=copy.deepcopy(subject)), where)
            return _all([_isinstance(subject, ["bool"], where), truth], where)
        if isinstance(pattern, ast.MatchAs):
            parts = [] if pattern.pattern is None else [self.test(pattern.pattern, subject)]
            if pattern.name is not None:
                parts.append(_capture(pattern.name, subject, where))
            return _all(parts, where)
        if isinstance(pattern, ast.MatchOr):  # every alternative binds the same names (Python checks)
            return at(ast.BoolOp(op=ast.Or(), values=[self.test(p, subject) for p in pattern.patterns]), where)
        if isinstance(pattern, ast.MatchSequence):
            return self.sequence(pattern, subject)
        if isinstance(pattern, ast.MatchMapping):
            return self.mapping(pattern, subject)
        if isinstance(pattern, ast.MatchClass):
            return self.class_(pattern, subject)
        self.fail(pattern, f"{type(pattern).__name__} patterns are not supported in a workflow")

    def sequence(self, pattern: ast.MatchSequence, subject: ast.expr) -> ast.expr:
        where = pattern
        stars = [i for i, p in enumerate(pattern.patterns) if isinstance(p, ast.MatchStar)]
        n = len(pattern.patterns)
        length = at(ast.Call(func=name("len", where), args=[copy.deepcopy(subject)], keywords=[]), where)
        if stars:
            size: ast.expr = at(ast.Compare(left=length, ops=[ast.GtE()], comparators=[const(n - 1, where)]), where)
        else:
            size = at(ast.Compare(left=length, ops=[ast.Eq()], comparators=[const(n, where)]), where)
        parts = [_isinstance(subject, ["list", "tuple"], where), size]
        star = stars[0] if stars else n
        for i, sub in enumerate(pattern.patterns):
            if isinstance(sub, ast.MatchStar):
                if sub.name is not None:
                    after = n - 1 - i
                    upper = None if after == 0 else const(-after, sub)
                    part = at(ast.Subscript(value=copy.deepcopy(subject), slice=ast.Slice(lower=const(i, sub), upper=upper), ctx=ast.Load()), sub)
                    items = at(ast.Call(func=name("list", sub), args=[part], keywords=[]), sub)
                    parts.append(_capture(sub.name, items, sub))
                continue
            index = i if i < star else i - n
            item = at(ast.Subscript(value=copy.deepcopy(subject), slice=const(index, sub), ctx=ast.Load()), sub)
            parts.append(self.test(sub, item))
        return _all(parts, where)

    def mapping(self, pattern: ast.MatchMapping, subject: ast.expr) -> ast.expr:
        where = pattern
        parts = [_isinstance(subject, ["dict"], where)]
        for key in pattern.keys:
            parts.append(at(ast.Compare(left=copy.deepcopy(key), ops=[ast.In()], comparators=[copy.deepcopy(subject)]), key))
        for key, sub in zip(pattern.keys, pattern.patterns):
            parts.append(self.test(sub, at(ast.Subscript(value=copy.deepcopy(subject), slice=copy.deepcopy(key), ctx=ast.Load()), sub)))
        if pattern.rest is not None:
            k, v = "_namu_key", "_namu_value"
            taken = at(ast.Tuple(elts=[copy.deepcopy(key) for key in pattern.keys], ctx=ast.Load()), where)
            keep = at(ast.Compare(left=name(k, where), ops=[ast.NotIn()], comparators=[taken]), where)
            pairs = at(ast.Call(func=at(ast.Attribute(value=copy.deepcopy(subject), attr="items", ctx=ast.Load()), where), args=[], keywords=[]), where)
            target = at(ast.Tuple(elts=[at(ast.Name(id=k, ctx=ast.Store()), where), at(ast.Name(id=v, ctx=ast.Store()), where)], ctx=ast.Store()), where)
            generator = ast.comprehension(target=target, iter=pairs, ifs=[keep], is_async=0)
            rest = at(ast.DictComp(key=name(k, where), value=name(v, where), generators=[generator]), where)
            parts.append(_capture(pattern.rest, rest, where))
        return _all(parts, where)

    def class_(self, pattern: ast.MatchClass, subject: ast.expr) -> ast.expr:
        where = pattern
        cls = pattern.cls
        if not (isinstance(cls, ast.Name) and cls.id in _SELF_MATCHING):
            self.fail(cls, f"a class pattern in a workflow tests builtin classes only ({', '.join(sorted(_SELF_MATCHING))}); "
                           "match other classes inside a task")
        if len(pattern.patterns) > 1:
            self.fail(pattern, f"{cls.id}() accepts 1 positional sub-pattern ({len(pattern.patterns)} given)")
        parts = [_isinstance(subject, [cls.id], where)]
        parts += [self.test(sub, subject) for sub in pattern.patterns]
        for attr, sub in zip(pattern.kwd_attrs, pattern.kwd_patterns):
            parts.append(self.test(sub, at(ast.Attribute(value=copy.deepcopy(subject), attr=attr, ctx=ast.Load()), sub)))
        return _all(parts, where)


def _all(parts: list[ast.expr], where: ast.AST) -> ast.expr:
    if not parts:
        return const(True, where)
    return parts[0] if len(parts) == 1 else at(ast.BoolOp(op=ast.And(), values=parts), where)


def _capture(identifier: str, value: ast.expr, where: ast.AST) -> ast.expr:
    """``(identifier := value,)``: binds, and is true."""
    bind = at(ast.NamedExpr(target=at(ast.Name(id=identifier, ctx=ast.Store()), where), value=copy.deepcopy(value)), where)
    return at(ast.Tuple(elts=[bind], ctx=ast.Load()), where)


def _isinstance(subject: ast.expr, classes: list[str], where: ast.AST) -> ast.expr:
    names = [name(c, where) for c in classes]
    spec: ast.expr = names[0] if len(names) == 1 else at(ast.Tuple(elts=names, ctx=ast.Load()), where)
    return at(ast.Call(func=name("isinstance", where), args=[copy.deepcopy(subject), spec], keywords=[]), where)


def pattern_captures(pattern: ast.pattern) -> Iterator[ast.Name]:
    """The names ``pattern`` binds, as assignment targets at their patterns' positions."""
    for node in ast.walk(pattern):
        bound = node.rest if isinstance(node, ast.MatchMapping) else getattr(node, "name", None)
        if isinstance(node, (ast.MatchAs, ast.MatchStar, ast.MatchMapping)) and bound is not None:
            yield ast.copy_location(ast.Name(id=bound, ctx=ast.Store()), node)
