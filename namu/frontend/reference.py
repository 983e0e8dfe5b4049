"""Generate the "what a workflow can call, and what it cannot say" reference of
``docs/workflows.md`` from the frontend's own tables, so it cannot go stale (a test
compares)::

    python -m namu.frontend.reference --write docs/workflows.md

The builtins and methods come from :mod:`namu.ops.builtins`, the rejected constructs
from :mod:`namu.frontend.rejections`; the text sits between the
``<!-- workflow-reference:start -->`` and ``<!-- workflow-reference:end -->`` markers.
"""

from __future__ import annotations

import ast

from namu.frontend.generated import command, splice

__all__ = ["MARKERS", "reference", "with_reference"]

MARKERS = ("<!-- workflow-reference:start -->", "<!-- workflow-reference:end -->")

#: how each rejected ``ast`` class is written in source, for the table
_WRITTEN: dict[type[ast.AST], str] = {
    ast.TryStar: "try: ... except* ...", ast.With: "with ...:", ast.AsyncWith: "async with ...:",
    ast.AsyncFor: "async for ...:",
    ast.Global: "global x", ast.Nonlocal: "nonlocal x", ast.Import: "import m", ast.ImportFrom: "from m import x",
    ast.FunctionDef: "def f(): ...", ast.AsyncFunctionDef: "async def f(): ...", ast.ClassDef: "class C: ...",
    ast.Break: "break", ast.Continue: "continue", ast.Lambda: "lambda x: ...",
    ast.Await: "await x", ast.Yield: "yield x", ast.YieldFrom: "yield from x", ast.NamedExpr: "(y := x)",
    ast.SetComp: "{x for x in xs}", ast.DictComp: "{k: v for ...}", ast.GeneratorExp: "(x for x in xs)",
    ast.Starred: "*xs",
}


def _names(names: object) -> str:
    return ", ".join(f"`{name}`" for name in sorted(names))  # type: ignore[call-overload]


def reference() -> str:
    """The builtins and methods a workflow may call, then every rejected construct with
    its message."""
    from namu.frontend.mutation import REBOUND_METHODS
    from namu.frontend.rejections import (
        REJECTED_EXPRESSIONS,
        REJECTED_FORMS,
        REJECTED_STATEMENTS,
    )
    from namu.ops.builtins import BUILTINS, INSTANCE_TYPES, METHODS, MUTATING

    out = [
        "### Builtins and methods",
        "",
        f"Builtins (each one Python's own, called when the run gets there): {_names(BUILTINS)}, and `isinstance` "
        f"with the classes {_names(INSTANCE_TYPES)} (or a tuple of them).",
        "",
        f"Methods that change nothing, on any workflow value: {_names(METHODS)}.",
        "",
        f"Methods that change their receiver: {_names(MUTATING)}. On a list, set or dict the body made and never "
        "handed elsewhere (not a parameter, not passed to a task, not bound to another name), each lowers as a "
        "rebinding, as a statement or as the whole right side of an assignment (`v = xs.pop()`): "
        f"{_names(REBOUND_METHODS)} as operators (`xs.append(v)` is `xs = xs + [v]`), the others, and `xs[k] = v`, "
        "`xs[k] += v`, `del xs[k]`, as `namu.Mutated` on a copy; anything else is refused, with a way out "
        "(`xs = xs + [v]`, or a task).",
        "",
        "### Rejected constructs",
        "",
        "Each is a `namu.WorkflowSyntaxError` at the construct's line and column, with this message.",
        "",
        "| construct | message |",
        "|---|---|",
    ]
    rows = [(_WRITTEN.get(cls, cls.__name__), message) for cls, message in (*REJECTED_STATEMENTS.items(), *REJECTED_EXPRESSIONS.items())]
    rows += list(REJECTED_FORMS.items())
    for written, message in rows:
        escaped = message.replace("|", "\\|")
        out.append(f"| `{written}` | {escaped} |")
    return "\n".join(out) + "\n"


def with_reference(page: str) -> str:
    """``page`` with the text between :data:`MARKERS` replaced by :func:`reference`."""
    return splice(page, MARKERS, reference())


if __name__ == "__main__":  # pragma: no cover - a command
    command(MARKERS, reference)
