"""In-place changes of a workflow's own containers, as rebindings: a source-to-source
rewrite the lowering runs before it lowers a body.

``xs.append(v)`` changes the list ``xs`` refers to; a compiled workflow's values are
immutable. When nothing else can see that list, the change is the same as binding ``xs``
to a new list with the change made, so

* ``xs.append(v)`` becomes ``xs = xs + [v]``; ``xs.extend(ys)`` ``xs = xs + list(ys)``;
  ``xs.insert(i, v)`` ``xs = xs[:i] + [v] + xs[i:]``; ``xs.sort(...)`` ``xs = sorted(xs,
  ...)``; ``xs.reverse()`` ``xs = xs[::-1]``; ``s.add(v)`` ``s = s | {v}`` (typed
  rewrites: the result keeps a list's element type);
* every other change -- ``xs[i] = v`` (and ``xs[i] += v``), ``del xs[i]``, ``xs.pop()``,
  ``d.update(e)``, ``d.setdefault(k, [])``, ``s.discard(v)``, ... of :data:`MUTATING` --
  becomes :class:`InPlace`: ``namu.Mutated`` runs the method on a shallow copy and
  gives back the copy and the method's result, so ``v = xs.pop()`` is ``xs, v =
  <copy after pop>, <popped>`` with Python's exact meaning (``IndexError``, negative
  indices, slices).

A change lowers this way as a statement, or as the whole right side of an assignment
(``v = xs.pop()``); elsewhere in an expression it is refused with its location.

"Nothing else can see it" is checked on the source, conservatively: ``xs`` is not a
parameter (the caller holds it), every assignment to it makes a new container (a
literal, a comprehension, ``list(...)``, ``sorted(...)``, ``set(...)``, an operator), and
every read of it uses the value without keeping it (an operand, a subscript, a method
call's receiver, an argument of a builtin that copies or only reads, the iterable of a
loop that does not change it, a returned value). Otherwise the statement is left alone
and the lowering refuses it with its location.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable

from namu.frontend.synthetic import nested_blocks
from namu.ops.builtins import MUTATING

__all__ = ["REBOUND_METHODS", "InPlace", "rewrite_mutations"]

#: the changes that lower as rebindings, by method name
REBOUND_METHODS = frozenset({"append", "extend", "insert", "sort", "reverse", "add"})
#: builtins that read an argument without keeping it (the ones that make a new container
#: or a number from it); lazy ones (``enumerate``, ``zip``, ``reversed``) keep it
_READING_BUILTINS = frozenset({"len", "sum", "min", "max", "sorted", "list", "tuple", "set", "frozenset", "dict",
                               "any", "all", "str", "repr", "bool"})
_FRESH_BUILTINS = frozenset({"list", "sorted", "set", "dict"})


class InPlace(ast.expr):
    """``receiver.method(*args, **keywords)`` on a copy of ``receiver`` (``method`` one of
    :data:`MUTATING`, ``__setitem__`` or ``__delitem__``): the changed copy, or with
    ``both`` the tuple (changed copy, the method's result)."""

    _fields = ("receiver", "method", "args", "keywords", "both")


def rewrite_mutations(stmts: list[ast.stmt], params: set[str], is_builtin: Callable[[str], bool]) -> list[ast.stmt]:
    """``stmts`` with each in-place change of an unshared container rewritten as a
    rebinding (on a copy); ``stmts`` themselves when there is none.

    Args:
        stmts: the function body.
        params: the function's parameter names (never rewritten: the caller holds them).
        is_builtin: whether a name, read in this function, is Python's builtin of that name.
    """
    changed = {_changed_name(s) for s in _all_statements(stmts)} - {None} - params
    if not changed:
        return stmts
    stmts = copy.deepcopy(stmts)
    parents = {child: node for stmt in stmts for node in ast.walk(stmt) for child in ast.iter_child_nodes(node)}
    private = {name for name in changed if _unshared(name, stmts, parents, is_builtin)}  # type: ignore[arg-type]
    if not private:
        return stmts
    return _rewrite_block(stmts, private)


def _all_statements(stmts: list[ast.stmt]) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for stmt in stmts:
        out.append(stmt)
        for block in nested_blocks(stmt):
            out += _all_statements(block)
    return out


def _item_target(stmt: ast.stmt) -> ast.Subscript | None:
    """``xs[key]`` of a statement ``xs[key] = value``, ``xs[key] += value`` or ``del xs[key]``
    (one target, a name's item or slice)."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target: ast.expr = stmt.targets[0]
    elif isinstance(stmt, ast.AugAssign):
        target = stmt.target
    elif isinstance(stmt, ast.Delete) and len(stmt.targets) == 1:
        target = stmt.targets[0]
    else:
        return None
    if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
        return target
    return None


def _mutating_call(value: ast.expr | None) -> ast.Call | None:
    """``value`` if it is ``name.method(...)`` with a method of :data:`MUTATING`."""
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and isinstance(value.func.value, ast.Name):
        if value.func.attr in MUTATING:
            return value
    return None


def _changed_name(stmt: ast.stmt) -> str | None:
    """``xs`` for a statement that changes ``xs`` in place: ``xs.method(...)`` (a method of
    :data:`MUTATING`), ``v = xs.method(...)``, ``xs[key] = value``, ``xs[key] += value``
    or ``del xs[key]``."""
    item = _item_target(stmt)
    if item is not None:
        return item.value.id  # type: ignore[attr-defined]
    call = None
    if isinstance(stmt, ast.Expr):
        call = _mutating_call(stmt.value)
    elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        call = _mutating_call(stmt.value)
    return call.func.value.id if call is not None else None  # type: ignore[attr-defined]


def _fresh(value: ast.expr, is_builtin: Callable[[str], bool]) -> bool:
    """Whether evaluating ``value`` makes a new container no other name refers to."""
    if isinstance(value, (ast.List, ast.ListComp, ast.Set, ast.SetComp, ast.Dict, ast.DictComp, ast.BinOp)):
        return True
    if isinstance(value, ast.Subscript) and isinstance(value.slice, ast.Slice):
        return True
    return (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in _FRESH_BUILTINS
            and is_builtin(value.func.id))


def _item_of(target: ast.expr, name: str) -> bool:
    """Whether ``target`` is ``name[key]`` (an item assignment, rewritten itself)."""
    return isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and target.value.id == name


def _assigned_value(target: ast.expr, value: ast.expr | None, name: str) -> ast.expr | None:
    """The expression ``target = value`` binds ``name`` to: ``value`` itself, or its item
    in a parallel assignment of literals (``a, b = {}, []``); None if it binds no such
    expression (``name`` not plainly assigned, or unpacked from a value)."""
    if isinstance(target, ast.Name):
        return value if target.id == name else None
    if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) and len(target.elts) == len(value.elts):
        if not any(isinstance(e, ast.Starred) for e in (*target.elts, *value.elts)):
            for t, v in zip(target.elts, value.elts):
                found = _assigned_value(t, v, name)
                if found is not None:
                    return found
    return None


def _unshared(name: str, stmts: list[ast.stmt], parents: dict[ast.AST, ast.AST], is_builtin: Callable[[str], bool]) -> bool:
    for node in (n for stmt in stmts for n in ast.walk(stmt)):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            values = [_assigned_value(t, node.value, name) for t in targets]
            if any(v is not None for v in values):
                if len(targets) != 1 or not _fresh(values[0], is_builtin) or isinstance(node, ast.AugAssign):  # type: ignore[arg-type]
                    return False
            elif any(name in {n.id for n in ast.walk(t) if isinstance(n, ast.Name)} for t in targets if not _item_of(t, name)):
                return False  # bound by unpacking, or as a loop target: not known to be fresh
        if isinstance(node, (ast.For, ast.comprehension)) and name in {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}:
            return False
        if isinstance(node, ast.NamedExpr) and node.target.id == name:
            return False
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load) and not _reads_only(node, parents, is_builtin):
            return False
        if isinstance(node, ast.For) and isinstance(node.iter, ast.Name) and node.iter.id == name:
            if any(_changed_name(s) == name for s in _all_statements(node.body)):
                return False  # Python would see the items it adds while it iterates
    return True


def _reads_only(node: ast.Name, parents: dict[ast.AST, ast.AST], is_builtin: Callable[[str], bool]) -> bool:
    """Whether this read of the container uses it without keeping a reference to it."""
    parent = parents.get(node)
    if isinstance(parent, (ast.BinOp, ast.Compare, ast.UnaryOp, ast.FormattedValue, ast.Return)):
        return True
    if isinstance(parent, (ast.Tuple, ast.List, ast.Dict)) and isinstance(parents.get(parent), ast.Return):
        return True  # returned: nothing runs after it
    if isinstance(parent, ast.Subscript) and parent.value is node:
        return True
    if isinstance(parent, ast.Attribute) and parent.value is node:
        return isinstance(parents.get(parent), ast.Call)  # a method call on it
    if isinstance(parent, (ast.For, ast.comprehension)) and parent.iter is node:
        return True
    if isinstance(parent, ast.Call) and node in parent.args and isinstance(parent.func, ast.Name):
        return parent.func.id in _READING_BUILTINS and is_builtin(parent.func.id)
    return False


def _rewrite_block(stmts: list[ast.stmt], private: set[str]) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for stmt in stmts:
        name = _changed_name(stmt)
        if name in private:
            out.append(_rebinding(stmt, name))  # type: ignore[arg-type]
            continue
        for block in nested_blocks(stmt):
            block[:] = _rewrite_block(block, private)
        out.append(stmt)
    return out


def _rebinding(stmt: ast.stmt, name: str) -> ast.stmt:
    """The rebinding of ``name`` that a statement changing it in place stands for (see the
    module's docstring)."""
    item = _item_target(stmt)
    if item is not None:
        key = item.slice
        if isinstance(key, ast.Slice):  # xs[a:b] = ys: the key is slice(a, b, None)
            bounds = [b if b is not None else ast.Constant(value=None) for b in (key.lower, key.upper, key.step)]
            key = ast.Call(func=ast.Name(id="slice", ctx=ast.Load()), args=bounds, keywords=[])
        if isinstance(stmt, ast.Delete):
            return _in_place(name, "__delitem__", [key], [], stmt)
        value = stmt.value  # type: ignore[attr-defined]
        if isinstance(stmt, ast.AugAssign):  # xs[k] += v  ->  xs[k] = xs[k] + v, xs[k] read once
            read = ast.Subscript(value=ast.Name(id=name, ctx=ast.Load()), slice=copy.deepcopy(key), ctx=ast.Load())
            value = ast.BinOp(left=read, op=stmt.op, right=value)
        return _in_place(name, "__setitem__", [key, value], [], stmt)
    if isinstance(stmt, ast.Assign):  # v = xs.pop()  ->  xs, v = <both>
        call = _mutating_call(stmt.value)
        assert call is not None and isinstance(call.func, ast.Attribute)
        both = InPlace(receiver=ast.Name(id=name, ctx=ast.Load()), method=call.func.attr, args=call.args,
                       keywords=call.keywords, both=True)
        targets = ast.Tuple(elts=[ast.Name(id=name, ctx=ast.Store()), stmt.targets[0]], ctx=ast.Store())
        return _located(ast.Assign(targets=[targets], value=both), stmt)
    assert isinstance(stmt, ast.Expr)
    call = stmt.value
    assert isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
    method, args, keywords = call.func.attr, call.args, call.keywords
    if method not in REBOUND_METHODS:
        return _in_place(name, method, args, keywords, stmt)

    def load() -> ast.Name:
        return ast.Name(id=name, ctx=ast.Load())

    def add(left: ast.expr, right: ast.expr) -> ast.expr:
        return ast.BinOp(left=left, op=ast.Add(), right=right)

    def part(lower: ast.expr | None, upper: ast.expr | None, step: ast.expr | None = None) -> ast.expr:
        return ast.Subscript(value=load(), slice=ast.Slice(lower=lower, upper=upper, step=step), ctx=ast.Load())

    value: ast.expr
    if method == "append" and len(args) == 1 and not keywords:
        value = add(load(), ast.List(elts=[args[0]], ctx=ast.Load()))
    elif method == "extend" and len(args) == 1 and not keywords:
        value = add(load(), ast.Call(func=ast.Name(id="list", ctx=ast.Load()), args=[args[0]], keywords=[]))
    elif method == "insert" and len(args) == 2 and not keywords:
        index, item = args
        value = add(add(part(None, index), ast.List(elts=[item], ctx=ast.Load())), part(copy.deepcopy(index), None))
    elif method == "sort" and not args:
        value = ast.Call(func=ast.Name(id="sorted", ctx=ast.Load()), args=[load()], keywords=keywords)
    elif method == "reverse" and not args and not keywords:
        value = part(None, None, ast.Constant(value=-1))
    elif method == "add" and len(args) == 1 and not keywords:
        value = ast.BinOp(left=load(), op=ast.BitOr(), right=ast.Set(elts=[args[0]]))
    else:  # arguments Python would refuse: Python's own error, when the run gets there
        return _in_place(name, method, args, keywords, stmt)
    return _located(ast.Assign(targets=[ast.Name(id=name, ctx=ast.Store())], value=value), stmt)


def _in_place(name: str, method: str, args: list[ast.expr], keywords: list[ast.keyword], stmt: ast.stmt) -> ast.Assign:
    """``name = InPlace(name.method(*args, **keywords))``."""
    change = InPlace(receiver=ast.Name(id=name, ctx=ast.Load()), method=method, args=args, keywords=keywords, both=False)
    return _located(ast.Assign(targets=[ast.Name(id=name, ctx=ast.Store())], value=change), stmt)


def _located(assign: ast.Assign, stmt: ast.stmt) -> ast.Assign:
    """``assign`` with the nodes made here pointing at ``stmt`` (for error messages)."""
    for node in ast.walk(assign):
        if not hasattr(node, "lineno"):
            ast.copy_location(node, stmt)
    return assign
