"""Python functions as tools: ``@namu.tool``, and ``python: module:function`` in an agent file.

::

    @namu.tool
    def lookup(city: str, units: Literal["C", "F"] = "C") -> dict:
        \"\"\"The current weather in a city.

        Args:
            city: the city's name, e.g. "Lisbon".
            units: the temperature scale.
        \"\"\"

The tool's name is the function's, its description the docstring's first paragraph, and
its input schema comes from the type hints (through pydantic), each parameter described
by the docstring's Google-style ``Args:`` section. A function without ``@namu.tool``
works as well, the same way. Arguments are validated (and converted: ``"3"`` for an
``int``) by pydantic before the call; a plain function runs in a worker thread so it
does not block the event loop, an ``async def`` one on the loop. The answer is the
return value: a ``str`` as it is, anything else as JSON. A call past its ``timeout_s``
is abandoned by the agent; an ``async def`` function is cancelled, while a plain one
runs on in its thread until it returns (Python cannot stop a thread).

In an agent file (a module importable by name, or a file relative to the agent file's
directory; a module not importable by name is also looked for there)::

    tools:
      - python: my_pkg.tools:lookup
      - python: {target: tools.py:lookup, timeout_s: 5}
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import os
import re
import typing
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, overload

from pydantic import Field, PydanticUserError, create_model

from namu.errors import TaskDefinitionError, ToolError, first_line
from namu.runtime.tools._typed import ToolInput, TypedTool
from namu.runtime.tools.base import Tool, ToolKit, ToolOptions

__all__ = ["PythonKit", "PythonOptions", "ToolInfo", "function_tool", "parse_docstring", "resolve_target", "tool"]

F = TypeVar("F", bound=Callable[..., Any])

#: the names both providers accept for a tool
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
#: the attribute ``@namu.tool`` sets on a function
_MARK = "__namu_tool__"
#: a Google-style section header (``Args:``, ``Returns:`` ...)
_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters|Returns?|Yields?|Raises|"
    r"Examples?|Notes?|Attributes|See Also|Warnings?|Todo|References)\s*:\s*$"
)
_ARG_SECTIONS = frozenset(
    {"Args", "Arguments", "Parameters", "Params", "Keyword Args", "Keyword Arguments", "Other Parameters"}
)
#: ``name (type): text`` or ``name: text`` opening one parameter's entry
_ARG_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
#: the limit of one call when neither the decorator nor the agent file gives one
_DEFAULT_TIMEOUT_S: float = ToolOptions.model_fields["timeout_s"].default


@dataclasses.dataclass(frozen=True, slots=True)
class ToolInfo:
    """What ``@namu.tool`` recorded about a function (None: derive it from the function).

    Attributes:
        name: the tool's name.
        description: what the tool does, for the model.
        timeout_s: the limit of one call, in seconds.
    """

    name: str | None = None
    description: str | None = None
    timeout_s: float | None = None


@overload
def tool(fn: F, /) -> F: ...
@overload
def tool(
    *, name: str | None = ..., description: str | None = ..., timeout_s: float | None = ...
) -> Callable[[F], F]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
) -> Any:
    """Mark a function (plain or ``async def``) as a tool an agent can call; usable bare
    (``@namu.tool``) or with options. The function is returned as it is, still callable
    as before; its schema is made when an agent first loads it.

    Args:
        fn: the function (when used without parentheses).
        name: the tool's name (``^[a-zA-Z0-9_-]{1,64}$``); default the function's name.
        description: what the tool does, for the model; default the docstring's first
            paragraph.
        timeout_s: the limit of one call, in seconds; default 30, and an agent file's
            ``timeout_s`` for the entry overrides it.

    Returns:
        ``fn``, or a decorator returning the function it is given.

    Raises:
        TaskDefinitionError: ``name`` is not a valid tool name, ``timeout_s`` is not
            positive, or what is decorated is not a function.
    """
    if name is not None and not _TOOL_NAME.match(name):
        raise TaskDefinitionError(f"invalid @namu.tool name {name!r}: use 1 to 64 letters, digits, '_' or '-'")
    if timeout_s is not None and not timeout_s > 0:
        raise TaskDefinitionError(f"invalid @namu.tool timeout_s {timeout_s!r}: it must be positive")
    info = ToolInfo(name, description, timeout_s)

    def decorate(f: F) -> F:
        if not inspect.isfunction(f):
            raise TaskDefinitionError(f"@namu.tool decorates a function, not {f!r}")
        setattr(f, _MARK, info)
        return f

    return decorate(fn) if fn is not None else decorate


def function_tool(fn: Callable[..., Any], *, timeout_s: float | None = None) -> Tool:
    """The :class:`Tool` calling ``fn``, described by its ``@namu.tool`` options, type
    hints and docstring.

    Args:
        fn: a function, decorated with :func:`tool` or not.
        timeout_s: the limit of one call, in seconds; default the decorator's, else 30.

    Raises:
        TaskDefinitionError: ``fn`` takes ``*args`` or ``**kwargs``, its hints cannot
            be resolved or described as JSON Schema, or its name is not a valid tool name.
    """
    info: ToolInfo = getattr(fn, _MARK, None) or ToolInfo()
    name = info.name or getattr(fn, "__name__", "")
    if not _TOOL_NAME.match(name):
        raise TaskDefinitionError(
            f"{fn!r} cannot be a tool: {name!r} is not a valid tool name (give @namu.tool(name=...))"
        )
    summary, described = parse_docstring(inspect.getdoc(fn) or "")
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
        parameters = list(inspect.signature(fn).parameters.values())
    except (NameError, TypeError, ValueError) as exc:
        raise TaskDefinitionError(f"tool {name}: cannot read its signature: {exc}") from exc
    fields: dict[str, Any] = {}
    for index, parameter in enumerate(parameters):
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TaskDefinitionError(
                f"tool {name}: *args and **kwargs cannot be described to a model; name each parameter"
            )
        default = ... if parameter.default is parameter.empty else parameter.default
        # fields are named p0, p1 ... with the parameter's name as alias, so a parameter
        # may be called `schema` or `model_config` without shadowing pydantic's names
        fields[f"p{index}"] = (
            hints.get(parameter.name, Any),
            Field(default, alias=parameter.name, title=parameter.name, description=described.get(parameter.name)),
        )
    try:
        model = create_model(f"{name}_input", __base__=ToolInput, **fields)
        limit = timeout_s or info.timeout_s or _DEFAULT_TIMEOUT_S
        return _FunctionTool(name, info.description or summary, model, limit, fn, parameters)
    except (PydanticUserError, TypeError) as exc:  # a hint pydantic cannot validate or describe
        raise TaskDefinitionError(f"tool {name}: {first_line(exc)}") from exc


class _FunctionTool(TypedTool):
    """Calls a Python function with the validated arguments."""

    def __init__(
        self,
        name: str,
        description: str,
        input_model: type[ToolInput],
        timeout_s: float,
        fn: Callable[..., Any],
        parameters: list[inspect.Parameter],
    ) -> None:
        super().__init__(name, description, input_model, timeout_s)
        self.fn = fn
        self.parameters = parameters
        self.is_async = inspect.iscoroutinefunction(fn)

    async def run(self, arguments: ToolInput) -> str:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for index, parameter in enumerate(self.parameters):
            value = getattr(arguments, f"p{index}")
            if parameter.kind is parameter.POSITIONAL_ONLY:
                args.append(value)
            else:
                kwargs[parameter.name] = value
        if self.is_async:
            result = await self.fn(*args, **kwargs)
        else:
            result = await asyncio.to_thread(self.fn, *args, **kwargs)
        return _as_text(result)


def _as_text(value: Any) -> str:
    """A return value as the model reads it: a ``str`` as it is, anything else as JSON
    (pydantic models, dataclasses, dates ... included; other objects as ``str(obj)``)."""
    if isinstance(value, str):
        return value
    import pydantic_core

    return pydantic_core.to_json(value, fallback=str).decode()


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary and the parameter descriptions of a Google-style docstring.

    Args:
        doc: the docstring, its indentation cleaned (:func:`inspect.getdoc`).

    Returns:
        ``(summary, {parameter: description})``: the first paragraph as one line, and
        each ``Args:`` entry (``name: text`` or ``name (type): text``, continued on more
        indented lines) as one line.
    """
    lines = doc.splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line):
            break
        summary.append(line.strip())
    described: dict[str, str] = {}
    in_args = False
    indent: int | None = None
    current: str | None = None
    for line in lines:
        header = _SECTION.match(line)
        if header:
            in_args, indent, current = header[1] in _ARG_SECTIONS, None, None
            continue
        if not in_args or not line.strip():
            continue
        level = len(line) - len(line.lstrip())
        if level == 0:  # text after the section, back at the margin, ends it
            in_args = False
            continue
        indent = level if indent is None else indent
        entry = _ARG_ENTRY.match(line.strip()) if level == indent else None
        if entry:
            current = entry[1]
            described[current] = entry[2].strip()
        elif level > indent and current is not None:
            described[current] = f"{described[current]} {line.strip()}".strip()
    return " ".join(summary), described


class PythonOptions(ToolOptions):
    """Options of a ``python`` tool; ``python: module:function`` is short for
    ``python: {target: module:function}``."""

    shorthand: ClassVar[str | None] = "target"

    target: str = Field(
        pattern=r"^[^:\s]+:[A-Za-z_][\w.]*$",
        description="The function: 'package.module:function', or a Python file relative to the agent "
        "file's directory, 'tools.py:function'.",
    )


def resolve_target(target: str, base_dir: str) -> Callable[..., Any]:
    """The function ``target`` (``module:function`` or ``file.py:function``) names.

    A module name is imported; if no module of that name is importable, the file it
    would be (``pkg/mod.py`` for ``pkg.mod``) is looked for in ``base_dir``. A path (it
    ends in ``.py`` or has a ``/``) is relative to ``base_dir``.

    Raises:
        ToolError: the module or file cannot be imported, has no such attribute, or the
            attribute is not callable (the cause is chained).
    """
    from namu.runtime.user_code import import_path, lookup_qualname

    source, _, qualname = target.rpartition(":")
    try:
        if source.endswith(".py") or "/" in source:
            module = import_path(os.path.join(base_dir, source))
        else:
            try:
                module = importlib.import_module(source)
            except ModuleNotFoundError as exc:
                # the target's own module (or its package) is missing, not one it imports
                candidate = os.path.join(base_dir, *source.split(".")) + ".py"
                if not (exc.name == source or source.startswith(f"{exc.name}.")) or not os.path.isfile(candidate):
                    raise
                module = import_path(candidate, module_name=source)
    except Exception as exc:  # noqa: BLE001 - the user's module failed to import
        raise ToolError(f"python tool {target}: cannot import {source}: {type(exc).__name__}: {exc}") from exc
    try:
        fn = lookup_qualname(module, qualname)
    except AttributeError as exc:
        raise ToolError(f"python tool {target}: {source} has no {qualname!r}") from exc
    if not callable(fn):
        raise ToolError(f"python tool {target}: {qualname} is not a function")
    return fn


class PythonKit(ToolKit):
    """Provides the tool calling the entry's ``target`` function."""

    options: PythonOptions

    async def tools(self) -> list[Tool]:
        """The tool (the target is imported here, at the agent's start).

        Raises:
            ToolError: the target cannot be imported.
            TaskDefinitionError: the function cannot be described as a tool.
        """
        fn = resolve_target(self.options.target, self.base_dir)
        explicit = "timeout_s" in self.options.model_fields_set  # the agent file's word beats the decorator's
        return [function_tool(fn, timeout_s=self.options.timeout_s if explicit else None)]
