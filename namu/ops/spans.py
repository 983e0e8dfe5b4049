"""Source lines on the errors of builtin ops.

A builtin op that raises keeps Python's exception type (``ZeroDivisionError`` stays
``ZeroDivisionError``, so a workflow's ``except`` and a user's reading match Python's);
the workflow line it ran for is added as a note.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from namu.ir.metadata import SPAN_KEY

if TYPE_CHECKING:
    import onnx_ir as ir

__all__ = ["span_note", "with_span"]


def span_note(node: ir.Node) -> Callable[[Exception], BaseException]:
    """An error handler adding ``node``'s workflow line to the exception (type unchanged)."""
    note = f"while evaluating {node.op_type} at {node.metadata_props.get(SPAN_KEY, '?')}"

    def add_note(exc: Exception) -> BaseException:
        exc.add_note(note)
        return exc

    return add_note


def with_span(fn: Callable[..., Any], node: ir.Node) -> Callable[..., Any]:
    """``fn`` adding ``node``'s workflow line to its errors, keeping the exception type."""
    add_note = span_note(node)

    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            add_note(exc)
            raise

    return call
