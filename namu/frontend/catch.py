"""``try``/``except``/``else``/``finally`` as catch regions: a source-to-source rewrite
the lowering runs before it lowers a body (after :mod:`namu.frontend.mutation`, before
:mod:`namu.frontend.loop_control`).

The IR has one primitive, :class:`Catch`: ``try: <statement> except BaseException as
<flag>: pass`` around a *single* statement, which the lowering emits as one
``namu.Try`` node. A ``try`` statement becomes

* ``_namu_exc_N = None``, then each statement of its body as a catch region guarded by
  ``if _namu_exc_N is None:`` -- so after an exception, the variables the body assigned
  hold what they held when it was raised, as in Python. A compound statement whose
  assignments nothing outside it reads (a fan-out ``for``, an ``if`` around task calls)
  is one catch region, so a fan-out stays a fan-out; any other ``if``, ``for`` or
  ``while`` is protected statement by statement inside (a loop stops at the exception,
  the loop-control rewrite turns that ``break`` into flags);
* ``if _namu_exc_N is None: <else> else: <handlers>``, the handlers a chain of
  ``if <ExceptionTest>:`` tests in order, whose last ``else`` raises the exception again
  (a bare ``raise`` in a handler does the same). :class:`ExceptionTest` and
  :class:`CaughtAs` lower to ``namu.ExceptionMatches`` and ``namu.Caught``, which look
  through the ``TaskError`` a task's failure arrives as, so ``except ValueError`` matches
  what the task raised;
* with ``finally``: all of the above protected once more by ``_namu_pending_N``, then the
  ``finally`` block, then ``if _namu_pending_N is not None: raise _namu_pending_N``.

A ``return``, ``break`` or ``continue`` that leaves a ``try`` with ``finally`` runs a copy
of the ``finally`` block first, as Python does on the way out (one inside the ``finally``
block itself, which would drop the exception in flight, is refused).
"""

from __future__ import annotations

import ast
import collections
import copy
import itertools
from collections.abc import Callable, Iterator
from typing import NoReturn

from namu.frontend.liveness import assigned_names
from namu.frontend.synthetic import assign, at, const, is_none, name

__all__ = ["Catch", "CaughtAs", "ExceptionTest", "Guard", "rewrite_try"]

Fail = Callable[[ast.AST, str], NoReturn]


class Catch(ast.Try):
    """The catch-region primitive: ``try: <body> except BaseException as <flag>: pass``.
    After it, ``<flag>`` is None if the body finished, else the exception it raised."""

    @property
    def flag(self) -> str:
        """The variable that receives the exception."""
        return self.handlers[0].name  # type: ignore[return-value]


class Guard(ast.If):
    """An ``if`` the rewrite adds: a variable one of its paths leaves unassigned is unbound
    there in Python (reading it would raise), so the lowering gives it None on that path
    instead of refusing the ``if``."""

    #: read by liveness (``PHI_READS``)
    guard = True


class ExceptionTest(ast.expr):
    """Whether the exception in ``exception`` (a name) matches ``types`` (an ``except``
    clause's class expression)."""

    _fields = ("exception", "types")


class CaughtAs(ast.expr):
    """The exception ``except types as name`` binds, from the raised one in ``exception``."""

    _fields = ("exception", "types")


def rewrite_try(stmts: list[ast.stmt], fail: Fail) -> list[ast.stmt]:
    """``stmts`` with every ``try`` statement rewritten (see the module's docstring), on a
    copy; ``stmts`` themselves when there is none.

    Args:
        stmts: a function body.
        fail: raises the located error for a node (``FunctionSource.fail``).
    """
    if not any(isinstance(node, ast.Try) for stmt in stmts for node in ast.walk(stmt)):
        return stmts
    stmts = copy.deepcopy(stmts)
    loads = collections.Counter(_loads(stmts))
    return _Rewrite(loads, fail).block(stmts)


def _loads(nodes: list[ast.stmt] | ast.AST) -> Iterator[str]:
    for stmt in nodes if isinstance(nodes, list) else [nodes]:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                yield node.id


class _Rewrite:
    def __init__(self, loads: collections.Counter[str], fail: Fail) -> None:
        self.loads = loads
        self.fail = fail
        self.counter = itertools.count()

    def block(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        """``stmts`` with their ``try`` statements (nested ones first) rewritten."""
        out: list[ast.stmt] = []
        for stmt in stmts:
            if isinstance(stmt, ast.Try) and not isinstance(stmt, Catch):
                out += self.try_(stmt)
                continue
            if isinstance(stmt, (ast.If, ast.For, ast.While)):
                stmt.body = self.block(stmt.body)
                stmt.orelse = self.block(stmt.orelse)
            out.append(stmt)
        return out

    def try_(self, stmt: ast.Try) -> list[ast.stmt]:
        n = next(self.counter)
        body = self.block(stmt.body)
        handlers = [(h, self.block(h.body)) for h in stmt.handlers]
        orelse = self.block(stmt.orelse)
        finalbody = self.block(stmt.finalbody)
        if stmt.finalbody:
            self._refuse_jumps(finalbody)
            body, orelse = self._through_finally(body, finalbody), self._through_finally(orelse, finalbody)
            handlers = [(h, self._through_finally(b, finalbody)) for h, b in handlers]
        flag = f"_namu_exc_{n}"
        out: list[ast.stmt] = [assign(flag, const(None, stmt), stmt), *self.protect(body, flag, guard_first=False)]
        if handlers:
            out.append(self._dispatch(stmt, flag, handlers, orelse))
        if not stmt.finalbody:
            return out
        pending = flag
        if handlers:
            pending = f"_namu_pending_{n}"
            out = [assign(pending, const(None, stmt), stmt), *self.protect(out, pending, guard_first=False)]
        reraise = at(ast.Raise(exc=name(pending, stmt), cause=None), stmt)
        return [*out, *finalbody, at(ast.If(test=is_none(pending, stmt, negate=True), body=[reraise], orelse=[]), stmt)]

    def _dispatch(self, stmt: ast.Try, flag: str, handlers: list[tuple[ast.ExceptHandler, list[ast.stmt]]], orelse: list[ast.stmt]) -> ast.If:
        """``if flag is None: <else> else: <the handlers, in order>``."""
        chain: list[ast.stmt] = [at(ast.Raise(exc=name(flag, stmt), cause=None), stmt)]
        for index, (handler, body) in reversed(list(enumerate(handlers))):
            if handler.type is None and index != len(handlers) - 1:
                self.fail(handler, "default 'except:' must be last")
            body = _reraise(body, flag) or [at(ast.Pass(), handler)]
            if handler.name is not None:
                value: ast.expr = name(flag, handler)
                if handler.type is not None:
                    value = at(CaughtAs(exception=name(flag, handler), types=handler.type), handler)
                body = [assign(handler.name, value, handler), *body]
            if handler.type is None:
                chain = body
            else:
                test = at(ExceptionTest(exception=name(flag, handler), types=handler.type), handler)
                chain = [at(Guard(test=test, body=body, orelse=chain), handler)]
        return at(Guard(test=is_none(flag, stmt), body=orelse or [at(ast.Pass(), stmt)], orelse=chain), stmt)

    def protect(self, stmts: list[ast.stmt], flag: str, *, guard_first: bool = True) -> list[ast.stmt]:
        """``stmts`` run while ``flag`` is None, each protected: an exception goes to ``flag``."""
        out: list[ast.stmt] = []
        for index, stmt in enumerate(stmts):
            pieces = self._protect_one(stmt, flag)
            if index == 0 and not guard_first:
                out += pieces
            else:
                out.append(at(Guard(test=is_none(flag, stmt), body=pieces, orelse=[]), stmt))
        return out

    def _protect_one(self, stmt: ast.stmt, flag: str) -> list[ast.stmt]:
        if isinstance(stmt, (ast.Pass, ast.Break, ast.Continue, Catch)):
            return [stmt]  # cannot raise (a catch region keeps its own exception)
        if isinstance(stmt, ast.Return):
            if stmt.value is None or isinstance(stmt.value, (ast.Name, ast.Constant)):
                return [stmt]
            value = f"_namu_value_{next(self.counter)}"
            give = at(ast.Return(value=name(value, stmt)), stmt)
            guarded = at(Guard(test=is_none(flag, stmt), body=[give], orelse=[]), stmt)
            return [_catch([assign(value, stmt.value, stmt)], flag), guarded]
        if not isinstance(stmt, (ast.If, ast.For, ast.While)) or self._whole(stmt):
            return [_catch([stmt], flag)]
        if isinstance(stmt, ast.If):
            test, before = self._evaluated(stmt.test, flag, stmt)
            inner = at(type(stmt)(test=test, body=self.protect(stmt.body, flag), orelse=self.protect(stmt.orelse, flag)), stmt)
            inner.body = inner.body or [at(ast.Pass(), stmt)]
            return [*before, at(Guard(test=is_none(flag, stmt), body=[inner], orelse=[]), stmt)]
        stop = at(ast.If(test=is_none(flag, stmt, negate=True), body=[at(ast.Break(), stmt)], orelse=[]), stmt)
        if isinstance(stmt, ast.For):
            items, before = self._evaluated(stmt.iter, flag, stmt)
            loop = at(ast.For(target=stmt.target, iter=items, body=[stop, *self.protect(stmt.body, flag)],
                              orelse=self.protect(stmt.orelse, flag), type_comment=None), stmt)
            return [*before, at(Guard(test=is_none(flag, stmt), body=[loop], orelse=[]), stmt)]
        # while: the test is evaluated (and protected) at the top of every iteration, where
        # a `continue` leads too; a false test runs the `else` block and leaves
        test, evaluate = self._evaluated(stmt.test, flag, stmt)
        done = [*self.protect(stmt.orelse, flag), at(ast.Break(), stmt)]
        exhausted = at(ast.If(test=at(ast.UnaryOp(op=ast.Not(), operand=test), stmt), body=done, orelse=[]), stmt)
        checks = [stop, *evaluate, copy.deepcopy(stop)] if evaluate else [stop]
        body = [*checks, exhausted, *self.protect(stmt.body, flag)]
        return [at(ast.While(test=const(True, stmt), body=body, orelse=[]), stmt)]

    def _evaluated(self, expr: ast.expr, flag: str, where: ast.stmt) -> tuple[ast.expr, list[ast.stmt]]:
        """``expr`` as something that cannot raise, and the protected statements that
        evaluate it first (none for a name or a literal)."""
        if isinstance(expr, (ast.Name, ast.Constant)):
            return expr, []
        value = f"_namu_value_{next(self.counter)}"
        return name(value, expr), [_catch([assign(value, expr, where)], flag)]

    def _whole(self, stmt: ast.If | ast.For | ast.While) -> bool:
        """Whether ``stmt`` can be one catch region: nothing outside it reads what it
        assigns (so where an exception stopped it is unobservable), and it has no jump."""
        if any(isinstance(node, (ast.Return, ast.Break, ast.Continue, ast.Try)) for node in ast.walk(stmt)):
            return False
        inside = collections.Counter(_loads(stmt))
        return all(self.loads[n] == inside[n] for n in assigned_names([stmt]))

    def _through_finally(self, stmts: list[ast.stmt], finalbody: list[ast.stmt], in_loop: bool = False) -> list[ast.stmt]:
        """``stmts`` with a copy of ``finalbody`` run before each ``return``, and each
        ``break``/``continue`` of a loop around the ``try`` (not one of a loop inside it):
        Python runs the ``finally`` block on the way out. A returned value is evaluated
        first (its exception goes to the handlers, as in Python)."""
        out: list[ast.stmt] = []
        for stmt in stmts:
            if isinstance(stmt, ast.Return):
                if stmt.value is None or isinstance(stmt.value, (ast.Name, ast.Constant)):
                    out += [*copy.deepcopy(finalbody), stmt]
                else:
                    value = f"_namu_value_{next(self.counter)}"
                    give = at(ast.Return(value=name(value, stmt)), stmt)
                    out += [assign(value, stmt.value, stmt), *copy.deepcopy(finalbody), give]
                continue
            if isinstance(stmt, (ast.Break, ast.Continue)) and not in_loop:
                out += [*copy.deepcopy(finalbody), stmt]
                continue
            loop = isinstance(stmt, (ast.For, ast.While))
            for field in ("body", "orelse", "finalbody"):
                block = getattr(stmt, field, None)
                if isinstance(block, list) and block:
                    setattr(stmt, field, self._through_finally(block, finalbody, in_loop or (loop and field == "body")))
            for handler in getattr(stmt, "handlers", []):
                handler.body = self._through_finally(handler.body, finalbody, in_loop)
            out.append(stmt)
        return out

    def _refuse_jumps(self, finalbody: list[ast.stmt]) -> None:
        """A ``return``, ``break`` or ``continue`` leaving a ``finally`` block (it would
        drop the exception in flight)."""
        for stmt in finalbody:
            for node in _own_nodes(stmt):
                word = "return" if isinstance(node, ast.Return) else "break" if isinstance(node, ast.Break) else "continue"
                self.fail(node, f"`{word}` inside a `finally` block is not supported in a workflow (it would drop the "
                                "exception in flight); set a variable and act on it after the try statement")


def _own_nodes(stmt: ast.AST, in_loop: bool = False) -> Iterator[ast.AST]:
    """The nodes under ``stmt`` that leave it: returns, and jumps not inside a loop of their own."""
    if isinstance(stmt, ast.Return) or (not in_loop and isinstance(stmt, (ast.Break, ast.Continue))):
        yield stmt
    for child in ast.iter_child_nodes(stmt):
        yield from _own_nodes(child, in_loop or isinstance(stmt, (ast.For, ast.While)))


def _catch(body: list[ast.stmt], flag: str) -> Catch:
    where = body[0]
    handler = at(ast.ExceptHandler(type=None, name=flag, body=[at(ast.Pass(), where)]), where)
    return at(Catch(body=body, handlers=[handler], orelse=[], finalbody=[]), where)


def _reraise(stmts: list[ast.stmt], flag: str) -> list[ast.stmt]:
    """A handler's statements with a bare ``raise`` raising ``flag`` (the exception being
    handled); the bare raises of nested handlers were rewritten with their own try."""
    for stmt in stmts:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Raise) and node.exc is None:
                node.exc = name(flag, node)
    return stmts
