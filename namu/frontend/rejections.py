"""The Python a workflow body cannot use, and what the user is told instead.

Data, not code: the lowering looks each construct up here and raises
:class:`~namu.errors.WorkflowSyntaxError` with the message at the construct's line, and
the same tables can list what a workflow cannot say. A construct is rejected when the IR
cannot express it with its Python meaning; the message names the way out where there is
one. (Rejections that depend on types or names found while lowering, such as an
operator on a string, are raised where they are found.)
"""

from __future__ import annotations

import ast

__all__ = ["REJECTED_EXPRESSIONS", "REJECTED_FORMS", "REJECTED_STATEMENTS"]

#: Statements with no lowering, by their ``ast`` class.
REJECTED_STATEMENTS: dict[type[ast.stmt], str] = {
    ast.TryStar: "`try ... except*` (exception groups) is not supported in a workflow; use `except`",
    ast.With: "`with` is not supported in a workflow; open resources inside a task",
    ast.AsyncWith: "`async with` is not supported in a workflow",
    ast.AsyncFor: "`async for` is not supported in a workflow",
    ast.Global: "`global` is not supported in a workflow",
    ast.Nonlocal: "`nonlocal` is not supported in a workflow",
    ast.Import: "imports are not supported in a workflow; import at module level",
    ast.ImportFrom: "imports are not supported in a workflow; import at module level",
    ast.FunctionDef: "nested function definitions are not supported in a workflow; "
    "define a @namu.task at module level",
    ast.AsyncFunctionDef: "nested function definitions are not supported in a workflow",
    ast.ClassDef: "class definitions are not supported in a workflow",
}

#: Expressions with no lowering, by their ``ast`` class.
REJECTED_EXPRESSIONS: dict[type[ast.expr], str] = {
    ast.Lambda: "lambda is not supported in a workflow; define a @namu.task",
    ast.Await: "`await` is not supported in a workflow: call async tasks directly, namu awaits them",
    ast.Yield: "`yield` is not supported in a workflow",
    ast.YieldFrom: "`yield from` is not supported in a workflow",
    ast.GeneratorExp: "a generator expression is supported as the argument of a builtin or a "
    "method (`sum(f(x) for x in xs)`, `\", \".join(...)`); elsewhere use a list comprehension",
    ast.Starred: "a starred expression is supported in a list, tuple or set display, a task call and an "
    "assignment target",
}

#: Forms of supported constructs that have no lowering, by how they are written.
REJECTED_FORMS: dict[str, str] = {
    "x.name = ...": "attribute assignment is not supported in a workflow; values are immutable",
    "x[i] = ...": "subscript assignment is supported on a list or dict the body made and never handed elsewhere "
    "(not a parameter, not passed to a task, not bound to another name); other values are immutable in a "
    "workflow: build a new one",
    "del x[i]": "`del` of an item is supported on a list or dict the body made and never handed elsewhere; "
    "other values are immutable in a workflow: build a new one",
    "f(*args)": "*args in a call is supported in task calls, with an operand of a length known when "
    "compiling (a tuple of known items, or a literal)",
    "f(**kwargs)": "**kwargs in a call is supported in task calls, with an operand of keys known when "
    "compiling (a dict literal with string keys, or a name bound to one)",
    "[... async for ...]": "async comprehensions are not supported in a workflow",
}
