"""Source text of a decorated function, and errors that point at the user's line.

The onnxscript ``SourceInfo`` habit: every diagnostic carries the absolute file path, the
line and column, the source line and a caret; every IR node keeps its span.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import linecache
import os
import textwrap
from collections.abc import Callable
from typing import Any, NoReturn

from namu.errors import TaskDefinitionError, WorkflowSyntaxError

__all__ = ["FunctionSource", "source_digest"]


class FunctionSource:
    """The parsed source of one function, with offsets back to the original file.

    Args:
        fn: a Python function defined in a file (not in a REPL or ``exec``).

    Raises:
        TaskDefinitionError: the function's source cannot be found.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.col_shift = 0
        self.line_shift = 0
        found = _from_module_tree(fn)
        if found is not None:
            # Fast path: the function's node in its module's (cached) syntax tree. Positions
            # are the file's own; no tokenizing, so a 100,000-line workflow costs one parse.
            self.filename, self.lines, self.first_lineno, self.tree = found
            self.text = "".join(self.lines)
            return
        try:
            lines, first_lineno = inspect.getsourcelines(fn)
            filename = inspect.getsourcefile(fn) or inspect.getfile(fn)
        except (OSError, TypeError) as exc:
            raise TaskDefinitionError(
                f"cannot read the source of {getattr(fn, '__qualname__', fn)!r}: a workflow "
                "must be defined in a file"
            ) from exc
        self.filename = os.path.abspath(filename)
        self.text = "".join(lines)
        self.lines = lines
        self.first_lineno = first_lineno
        if self.text[:1].isspace():
            # A nested def: parse it as the body of `if 1:` so that columns stay those of
            # the file (dedenting would break on a docstring line at column 0).
            self.line_shift = first_lineno - 2
            module = ast.parse("if 1:\n" + self.text, filename=self.filename)
            body = module.body[0].body  # type: ignore[attr-defined]
        else:
            self.line_shift = first_lineno - 1
            body = ast.parse(self.text, filename=self.filename).body
        defs = [n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        if not defs:  # pragma: no cover - getsourcelines always returns a def for functions
            raise TaskDefinitionError(f"no function definition found in {self.filename}")
        self.tree: ast.FunctionDef | ast.AsyncFunctionDef = defs[0]

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the source text; equal to :func:`source_digest` of the function."""
        return _text_digest(self.text)

    def position(self, node: ast.AST) -> tuple[int, int]:
        """(line, column) of ``node`` in the original file: line 1-based, column 0-based."""
        lineno = getattr(node, "lineno", 1) + self.line_shift
        col = getattr(node, "col_offset", 0) + self.col_shift
        return lineno, col

    def span(self, node: ast.AST) -> str:
        """``"file:line:col"`` of ``node`` (column 1-based, as editors show it)."""
        lineno, col = self.position(node)
        return f"{self.filename}:{lineno}:{col + 1}"

    def fail(self, node: ast.AST, message: str) -> NoReturn:
        """Raise :class:`WorkflowSyntaxError` pointing at ``node``."""
        lineno, col = self.position(node)
        index = lineno - self.first_lineno
        line = self.lines[index].rstrip("\n") if 0 <= index < len(self.lines) else ""
        raise WorkflowSyntaxError(
            message, filename=self.filename, lineno=lineno, col_offset=col, source_line=line
        )


_FunctionDef = ast.FunctionDef | ast.AsyncFunctionDef


@functools.lru_cache(maxsize=16)
def _parse_module(filename: str, text: str) -> ast.Module | None:
    try:
        return ast.parse(text, filename=filename)
    except SyntaxError:
        return None


def _from_module_tree(fn: Callable[..., Any]) -> tuple[str, list[str], int, _FunctionDef] | None:
    """``(filename, source lines, first line, def node)`` of ``fn`` found in the syntax tree
    of its file, or None (no file, the file changed since import, or no unique match)."""
    code = getattr(fn, "__code__", None)
    try:
        filename = os.path.abspath(inspect.getsourcefile(fn) or "")
    except TypeError:
        return None
    if code is None or not os.path.isfile(filename):
        return None
    lines = linecache.getlines(filename)
    tree = _parse_module(filename, "".join(lines))
    if tree is None:
        return None
    # Breadth-first over statements only (the def is usually at module level): the start
    # line (first decorator, as co_firstlineno counts it) and the name must both match.
    pending: list[list[ast.stmt]] = [tree.body]
    while pending:
        for stmt in pending.pop(0):
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == fn.__name__:
                start = min([d.lineno for d in stmt.decorator_list] + [stmt.lineno])
                if start == code.co_firstlineno and stmt.end_lineno is not None:
                    return filename, lines[start - 1 : stmt.end_lineno], start, stmt
            for field in ("body", "orelse", "finalbody"):
                block = getattr(stmt, field, None)
                if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                    pending.append(block)
            for handler in getattr(stmt, "handlers", ()):
                pending.append(handler.body)
    return None


def source_digest(fn: Callable[..., Any]) -> str:
    """``sha256:<hex>`` of a function's source text (of its bytecode when no source exists)."""
    try:
        return _text_digest(inspect.getsource(fn))
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        payload = code.co_code if code is not None else repr(fn).encode()
        return "sha256:" + hashlib.sha256(payload).hexdigest()


def _text_digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(textwrap.dedent(text).encode()).hexdigest()
