"""``break``, ``continue``, ``return`` inside loops and ``for``/``while ... else``, as
loop-carried flags: a source-to-source rewrite the lowering runs before it lowers a body.

A loop whose body jumps is rewritten, innermost first, into one that does not:

* a ``break`` sets a flag ``_namu_break_N`` that the loop's condition reads (so the loop
  stops before evaluating its own condition again, as Python does); a ``continue`` sets
  ``_namu_continue_N``, cleared at the top of every iteration; the statements after a
  jump run under ``if not (flags)``;
* ``return value`` inside the loop keeps the value in ``_namu_return_N``, sets
  ``_namu_returned_N`` and breaks; right after the loop, ``if _namu_returned_N: return
  _namu_return_N`` (an early return the lowering already handles, or, in an enclosing
  loop, a ``return`` that loop's rewrite handles in turn);
* the ``else`` block runs under ``if not _namu_break_N``;
* a ``for`` loop that jumps becomes a ``while`` over ``list(xs)`` by index, so it is
  sequential (a ``for`` without jumps still fans out when nothing flows between
  iterations).

This is the classic structured lowering of early exits (the "flag" form of Böhm and
Jacopini's construction; LLVM's ``-structurizecfg`` and Numba's loop canonicalization do
the same for graph IRs with structured control flow, as ONNX's ``Loop`` is).
"""

from __future__ import annotations

import ast
import copy
import itertools
from collections.abc import Iterator

from namu.frontend.synthetic import assign as _assign
from namu.frontend.synthetic import at as _at
from namu.frontend.synthetic import const as _const
from namu.frontend.synthetic import name as _name

__all__ = ["rewrite_loop_control"]

_LOOPS = (ast.For, ast.While)


def rewrite_loop_control(stmts: list[ast.stmt]) -> list[ast.stmt]:
    """``stmts`` with every loop that breaks, continues, returns or has an ``else``
    rewritten (see the module's docstring), on a copy; ``stmts`` themselves when no loop
    needs it (the common case costs one walk over the statements, not the expressions)."""
    if not _needs_rewrite(stmts):
        return stmts
    return _rewrite_block(copy.deepcopy(stmts), itertools.count())


def _needs_rewrite(stmts: list[ast.stmt], in_loop: bool = False) -> bool:
    for stmt in stmts:
        if isinstance(stmt, _LOOPS):
            if stmt.orelse or _needs_rewrite(stmt.body, True):
                return True
        elif isinstance(stmt, (ast.Break, ast.Continue)) or (in_loop and isinstance(stmt, ast.Return)):
            return True
        elif isinstance(stmt, ast.If) and (_needs_rewrite(stmt.body, in_loop) or _needs_rewrite(stmt.orelse, in_loop)):
            return True
    return False


def _rewrite_block(stmts: list[ast.stmt], counter: Iterator[int]) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for stmt in stmts:
        if isinstance(stmt, _LOOPS):
            stmt.body = _rewrite_block(stmt.body, counter)
            stmt.orelse = _rewrite_block(stmt.orelse, counter)
            out += _rewrite_loop(stmt, next(counter)) if (_jumps(stmt.body) or stmt.orelse) else [stmt]
        elif isinstance(stmt, ast.If):
            stmt.body = _rewrite_block(stmt.body, counter)
            stmt.orelse = _rewrite_block(stmt.orelse, counter)
            out.append(stmt)
        else:
            out.append(stmt)
    return out


def _jumps(stmts: list[ast.stmt]) -> bool:
    """Whether ``stmts`` break, continue or return from the loop they are the body of
    (not counting the ``break``/``continue`` of a nested loop)."""
    for stmt in stmts:
        if isinstance(stmt, (ast.Break, ast.Continue, ast.Return)):
            return True
        if isinstance(stmt, ast.If) and (_jumps(stmt.body) or _jumps(stmt.orelse)):
            return True
        if isinstance(stmt, _LOOPS) and _returns(stmt.body):
            return True
    return False


def _returns(stmts: list[ast.stmt]) -> bool:
    return any(isinstance(node, ast.Return) for stmt in stmts for node in ast.walk(stmt))


class _Flags:
    """The names one loop's rewrite uses, and which of them it needs."""

    def __init__(self, n: int, body: list[ast.stmt]) -> None:
        self.brk = f"_namu_break_{n}"
        self.cont = f"_namu_continue_{n}"
        self.ret = f"_namu_return_{n}"
        self.returned = f"_namu_returned_{n}"
        self.index = f"_namu_index_{n}"
        self.items = f"_namu_items_{n}"
        self.continues = any(isinstance(s, ast.Continue) for s in _own_statements(body))
        self.returns = _returns(body)

    def stopped(self, at: ast.AST) -> ast.expr:
        """``_brk or _cont``: the rest of the iteration is skipped."""
        names = [self.brk, self.cont] if self.continues else [self.brk]
        test: ast.expr = _name(names[0], at)
        if len(names) > 1:
            test = _at(ast.BoolOp(op=ast.Or(), values=[_name(n, at) for n in names]), at)
        return test


def _own_statements(stmts: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement of ``stmts`` and of their ``if`` blocks (not nested loops)."""
    for stmt in stmts:
        yield stmt
        if isinstance(stmt, ast.If):
            yield from _own_statements(stmt.body)
            yield from _own_statements(stmt.orelse)


def _rewrite_loop(loop: ast.For | ast.While, n: int) -> list[ast.stmt]:
    flags = _Flags(n, loop.body)
    before: list[ast.stmt] = [_assign(flags.brk, _const(False, loop), loop)]
    if flags.returns:
        before += [_assign(flags.ret, _const(None, loop), loop), _assign(flags.returned, _const(False, loop), loop)]
    head: list[ast.stmt] = []
    if isinstance(loop, ast.For):
        # for x in xs  ->  items = list(xs); index = 0; while not brk and index < len(items): x = items[index]; ...
        before += [
            _assign(flags.items, _at(ast.Call(func=_name("list", loop), args=[loop.iter], keywords=[]), loop.iter), loop),
            _assign(flags.index, _const(0, loop), loop),
        ]
        length = _at(ast.Call(func=_name("len", loop), args=[_name(flags.items, loop)], keywords=[]), loop)
        test: ast.expr = _at(ast.Compare(left=_name(flags.index, loop), ops=[ast.Lt()], comparators=[length]), loop)
        item = _at(ast.Subscript(value=_name(flags.items, loop), slice=_name(flags.index, loop), ctx=ast.Load()), loop.target)
        head += [
            _at(ast.Assign(targets=[loop.target], value=item), loop.target),
            _assign(flags.index, _at(ast.BinOp(left=_name(flags.index, loop), op=ast.Add(), right=_const(1, loop)), loop), loop),
        ]
    else:
        test = loop.test
    if flags.continues:
        head.append(_assign(flags.cont, _const(False, loop), loop))
    not_broken = _at(ast.UnaryOp(op=ast.Not(), operand=_name(flags.brk, loop)), loop)
    condition = _at(ast.BoolOp(op=ast.And(), values=[not_broken, test]), loop)
    body = head + _guarded(loop.body, flags)
    rewritten = _at(ast.While(test=condition, body=body, orelse=[]), loop)
    after: list[ast.stmt] = []
    if flags.returns:
        give = _at(ast.Return(value=_name(flags.ret, loop)), loop)
        after.append(_at(ast.If(test=_name(flags.returned, loop), body=[give], orelse=[]), loop))
    if loop.orelse:
        after.append(_at(ast.If(test=_at(ast.UnaryOp(op=ast.Not(), operand=_name(flags.brk, loop)), loop), body=loop.orelse, orelse=[]), loop))
    return [*before, rewritten, *after]


def _guarded(stmts: list[ast.stmt], flags: _Flags) -> list[ast.stmt]:
    """``stmts`` with their jumps replaced by flag assignments, and everything after a
    statement that may jump run only when it did not."""
    out: list[ast.stmt] = []
    for i, stmt in enumerate(stmts):
        replaced, jumps = _replace_jumps(stmt, flags)
        out += replaced
        rest = stmts[i + 1 :]
        if jumps and rest:
            skip = _at(ast.UnaryOp(op=ast.Not(), operand=flags.stopped(stmt)), stmt)
            out.append(_at(ast.If(test=skip, body=_guarded(rest, flags), orelse=[]), rest[0]))
            break
    return out  # never empty for a non-empty block: each statement gives at least one


def _replace_jumps(stmt: ast.stmt, flags: _Flags) -> tuple[list[ast.stmt], bool]:
    """``stmt`` with this loop's jumps replaced, and whether it may jump."""
    if isinstance(stmt, ast.Break):
        return [_assign(flags.brk, _const(True, stmt), stmt)], True
    if isinstance(stmt, ast.Continue):
        return [_assign(flags.cont, _const(True, stmt), stmt)], True
    if isinstance(stmt, ast.Return):
        value = stmt.value if stmt.value is not None else _const(None, stmt)
        return [
            _assign(flags.ret, value, stmt),
            _assign(flags.returned, _const(True, stmt), stmt),
            _assign(flags.brk, _const(True, stmt), stmt),
        ], True
    if isinstance(stmt, ast.If) and (_jumps(stmt.body) or _jumps(stmt.orelse)):
        stmt.body = _guarded(stmt.body, flags)
        stmt.orelse = _guarded(stmt.orelse, flags)
        return [stmt], True
    return [stmt], False
