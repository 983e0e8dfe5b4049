"""Generate the agent file reference of ``docs/agents.md`` from the pydantic models, so it
cannot go stale (a test compares)::

    python -m namu.frontend.agents.docs --write docs/agents.md

The reference sits between the ``<!-- reference:start -->`` and ``<!-- reference:end -->``
markers of the page; ``--write`` replaces it there, without an argument the reference is
printed.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from namu.frontend.generated import command, splice

__all__ = ["MARKERS", "reference", "with_reference"]

MARKERS = ("<!-- reference:start -->", "<!-- reference:end -->")


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None)) + (" or null" if type(None) in args else "")
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"mapping of {_type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return "(its defaults)"
    return f"`{json.dumps(value)}`" if value not in ({}, []) else "empty"


def _prose(text: str) -> str:
    """A docstring as one markdown paragraph."""
    return " ".join(text.replace("``", "`").split())


def _table(model: type[BaseModel], title: str, note: str = "") -> tuple[list[str], list[type[BaseModel]]]:
    lines = [f"### {title}", "", _prose(f"{model.__doc__ or ''} {note}"), "",
             "| key | type | default | description |", "|---|---|---|---|"]
    nested: list[type[BaseModel]] = []
    for name, field in model.model_fields.items():
        lines.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {field.description or ''} |")
        for arg in (field.annotation, *typing.get_args(field.annotation)):
            for inner in (arg, *typing.get_args(arg)):
                if isinstance(inner, type) and issubclass(inner, BaseModel) and inner not in nested:
                    nested.append(inner)
    return [*lines, ""], nested


def reference() -> str:
    """The reference: every model of the agent file, then every tool kind's options."""
    from namu.frontend.agents.spec import AgentSpec
    from namu.runtime.tools.base import tool_kind_names, tool_options_class

    out: list[str] = []
    pending: list[tuple[type[BaseModel], str]] = [(AgentSpec, "AgentSpec")]
    seen: set[type[BaseModel]] = set()
    while pending:
        model, title = pending.pop(0)
        if model in seen:
            continue
        seen.add(model)
        lines, nested = _table(model, title)
        out += lines
        pending += [(m, m.__name__) for m in nested]
    out += ["### Tools", "", "Each entry of `tools` is a kind's name (its defaults), or `{kind: options}`.", ""]
    for kind in tool_kind_names():
        options = tool_options_class(kind)
        note = f"Shorthand: `- {kind}: VALUE` is `- {kind}: {{{options.shorthand}: VALUE}}`." if options.shorthand else ""
        out += _table(options, f"tools: `{kind}`", note)[0]
    return "\n".join(out).rstrip() + "\n"


def with_reference(page: str) -> str:
    """``page`` with the text between :data:`MARKERS` replaced by :func:`reference`."""
    return splice(page, MARKERS, reference())


if __name__ == "__main__":  # pragma: no cover - a command
    command(MARKERS, reference)
