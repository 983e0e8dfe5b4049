"""In-place changes of a workflow's own containers, as rebindings: a source-to-source
rewrite the lowering runs before it lowers a body.

``xs.append(v)`` changes the list ``xs`` refers to; a compiled workflow's values are
immutable. When nothing else can see that list, the change is the same as binding ``xs``
to a new list with the change made, so

* ``xs.append(v)`` becomes ``xs = xs + [v]``; ``xs.extend(ys)`` ``xs = xs + list(ys)``;
  ``xs.insert(i, v)`` ``xs = xs[:i] + [v] + xs[i:]``; ``xs.sort(...)`` ``xs = sorted(xs,
  ...)``; ``xs.reverse()`` ``xs = xs[::-1]``;
* ``s.add(v)`` becomes ``s = s | {v}``;
* ``d[key] = value``, for a dict (every assignment to ``d`` in the body makes one),
  becomes ``d = d | dict([(key, value)])``.

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

__all__ = ["REBOUND_METHODS", "rewrite_mutations"]

#: the changes that lower as rebindings, by method name
REBOUND_METHODS = frozenset({"append", "extend", "insert", "sort", "reverse", "add"})
#: builtins that read an argument without keeping it (the ones that make a new container
#: or a number from it); lazy ones (``enumerate``, ``zip``, ``reversed``) keep it
_READING_BUILTINS = frozenset({"len", "sum", "min", "max", "sorted", "list", "tuple", "set", "frozenset", "dict",
                               "any", "all", "str", "repr", "bool"})
_FRESH_BUILTINS = frozenset({"list", "sorted", "set", "dict"})


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
    # `d[key] = value` only for dicts: the body's every assignment to `d` makes one
    items = {_item_assigned(s) for s in _all_statements(stmts)} - {None}
    private -= {name for name in items if not _always_dict(name, stmts, is_builtin)}  # type: ignore[arg-type]
    if not private:
        return stmts
    return _rewrite_block(stmts, private)


def _blocks(stmt: ast.stmt) -> list[list[ast.stmt]]:
    """The statement lists nested in ``stmt`` (an ``if``, a loop, a ``try`` and its handlers)."""
    blocks = [getattr(stmt, field, []) for field in ("body", "orelse", "finalbody")]
    return blocks + [handler.body for handler in getattr(stmt, "handlers", [])]


def _all_statements(stmts: list[ast.stmt]) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for stmt in stmts:
        out.append(stmt)
        for block in _blocks(stmt):
            out += _all_statements(block)
    return out


def _item_assigned(stmt: ast.stmt) -> str | None:
    """``d`` for a statement ``d[key] = value`` (one target, not a slice)."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target = stmt.targets[0]
        if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and not isinstance(target.slice, ast.Slice):
            return target.value.id
    return None


def _changed_name(stmt: ast.stmt) -> str | None:
    """``xs`` for a statement ``xs.append(...)`` (a method of :data:`REBOUND_METHODS`) or
    ``xs[key] = value``."""
    item = _item_assigned(stmt)
    if item is not None:
        return item
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
        return None
    func = stmt.value.func
    if isinstance(func, ast.Attribute) and func.attr in REBOUND_METHODS and isinstance(func.value, ast.Name):
        return func.value.id
    return None


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


def _always_dict(name: str, stmts: list[ast.stmt], is_builtin: Callable[[str], bool]) -> bool:
    """Whether every assignment to ``name`` in ``stmts`` makes a dict."""
    for node in (n for stmt in stmts for n in ast.walk(stmt)):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for value in (_assigned_value(t, node.value, name) for t in targets):
                made = value is None or isinstance(value, (ast.Dict, ast.DictComp)) or (
                    isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "dict" and is_builtin("dict"))
                if not made:
                    return False
    return True


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
        for block in _blocks(stmt):
            block[:] = _rewrite_block(block, private)
        out.append(stmt)
    return out


def _rebinding(stmt: ast.stmt, name: str) -> ast.stmt:
    """``xs = <xs with the change>`` for the statement ``xs.method(...)`` or ``d[key] = value``."""
    if isinstance(stmt, ast.Assign):  # d[key] = value  ->  d = d | dict([(key, value)])
        target = stmt.targets[0]
        assert isinstance(target, ast.Subscript)
        pair = ast.Tuple(elts=[target.slice, stmt.value], ctx=ast.Load())
        made = ast.Call(func=ast.Name(id="dict", ctx=ast.Load()), args=[ast.List(elts=[pair], ctx=ast.Load())], keywords=[])
        return _located(ast.Assign(targets=[ast.Name(id=name, ctx=ast.Store())],
                                   value=ast.BinOp(left=ast.Name(id=name, ctx=ast.Load()), op=ast.BitOr(), right=made)), stmt)
    assert isinstance(stmt, ast.Expr)
    call = stmt.value
    assert isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
    method, args, keywords = call.func.attr, call.args, call.keywords

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
    else:
        return stmt  # arguments Python would refuse: left for the lowering to report
    return _located(ast.Assign(targets=[ast.Name(id=name, ctx=ast.Store())], value=value), stmt)


def _located(assign: ast.Assign, stmt: ast.stmt) -> ast.Assign:
    """``assign`` with the nodes made here pointing at ``stmt`` (for error messages)."""
    for node in ast.walk(assign):
        if not hasattr(node, "lineno"):
            ast.copy_location(node, stmt)
    return assign
