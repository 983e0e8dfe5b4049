"""What a tool is, its options in an agent file, and the registry of tool kinds.

A tool kind (``calculator``, ``filesystem``, ``http``, ``python``, ``mcp``) is a
:class:`ToolOptions` model (what an agent file may say about it, validated strictly) and
a :class:`ToolKit` class that, given validated options, provides one or more
:class:`Tool` objects (an MCP server provides every tool it lists). In an agent file::

    tools:
      - calculator                         # a kind with its default options
      - filesystem: {root: ./data, read_only: true}
      - python: my_pkg.tools:lookup        # a kind whose options are one string
      - mcp: {command: [python, server.py]}

A new kind is one registration::

    register_tool_kind("search", "my_pkg.search:SearchOptions", "my_pkg.search:SearchKit")

Option models live in light modules (no heavy imports at their top level): the agent
file's validation and JSON Schema import them; the kit, which may import httpx or mcp,
is imported only when the agent runs.
"""

from __future__ import annotations

import abc
import importlib
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from namu.errors import AgentSpecError
from namu.runtime.llm.messages import ToolSpec

__all__ = [
    "Tool",
    "ToolKit",
    "ToolOptions",
    "register_tool_kind",
    "tool_kind_names",
    "tool_kit_class",
    "tool_options_class",
]


class ToolOptions(BaseModel):
    """Options every tool kind takes; a kind's model adds its own (strict: unknown keys
    are errors).

    Attributes:
        timeout_s: the limit of one call of the tool, in seconds; past it the model gets
            an error result and the loop goes on.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(30.0, gt=0, description="Limit of one call of the tool, in seconds.")

    #: the key of a kind whose options may be written as one string (``python: mod:fn``):
    #: the string becomes this field
    shorthand: ClassVar[str | None] = None


class Tool(abc.ABC):
    """One tool the model can call.

    Attributes:
        name: the name the model calls it by (``^[a-zA-Z0-9_-]{1,64}$``).
        description: what it does, for the model.
        input_schema: the JSON Schema of its input (an ``object`` schema).
        timeout_s: the limit of one call, in seconds.
    """

    name: str
    description: str
    input_schema: dict[str, Any]
    timeout_s: float = 30.0

    @abc.abstractmethod
    async def call(self, arguments: dict[str, Any]) -> str:
        """Run the tool on ``arguments`` (a JSON object, as the model sent it).

        Returns:
            The result as text for the model.

        Raises:
            ToolError: the input is refused (its message goes to the model); any other
                exception is a failure of the tool, reported to the model the same way.
        """

    def spec(self) -> ToolSpec:
        """The tool as the model sees it."""
        return ToolSpec(self.name, self.description, self.input_schema)


class ToolKit(abc.ABC):
    """Makes the tools of one entry of an agent's ``tools`` list.

    Args:
        options: the entry's validated options.
        base_dir: the directory relative paths of the options are read from (the agent
            file's directory).
    """

    def __init__(self, options: ToolOptions, base_dir: str) -> None:
        self.options = options
        self.base_dir = base_dir

    @abc.abstractmethod
    async def tools(self) -> list[Tool]:
        """The tools of this entry (an MCP server is asked for its list here)."""

    async def aclose(self) -> None:
        """Release what :meth:`tools` opened (an MCP session); nothing by default."""


#: kind -> ("module:OptionsModel", "module:Kit"), imported on first use
_KINDS: dict[str, tuple[str, str]] = {
    "calculator": ("namu.runtime.tools.calculator:CalculatorOptions", "namu.runtime.tools.calculator:CalculatorKit"),
    "filesystem": ("namu.runtime.tools.filesystem:FilesystemOptions", "namu.runtime.tools.filesystem:FilesystemKit"),
    "http": ("namu.runtime.tools.http:HttpOptions", "namu.runtime.tools.http:HttpKit"),
    "python": ("namu.runtime.tools.python:PythonOptions", "namu.runtime.tools.python:PythonKit"),
    "mcp": ("namu.runtime.tools.mcp:McpOptions", "namu.runtime.tools.mcp:McpKit"),
}


def register_tool_kind(kind: str, options: str, kit: str) -> None:
    """Register tool kind ``kind``: its :class:`ToolOptions` model and :class:`ToolKit`
    class, each as ``"module:attr"``."""
    _KINDS[kind] = (options, kit)


def tool_kind_names() -> list[str]:
    """The registered tool kinds, sorted (nothing is imported)."""
    return sorted(_KINDS)


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as exc:
        raise AgentSpecError(f"{target} needs the package {exc.name!r}: pip install 'namu[agents]'") from None


def tool_options_class(kind: str) -> type[ToolOptions]:
    """The options model of tool kind ``kind``.

    Raises:
        AgentSpecError: ``kind`` is not registered.
    """
    if kind not in _KINDS:
        raise AgentSpecError(f"unknown tool {kind!r}; known: {', '.join(tool_kind_names())}")
    return _load(_KINDS[kind][0])


def tool_kit_class(kind: str) -> type[ToolKit]:
    """The :class:`ToolKit` class of tool kind ``kind`` (imports it).

    Raises:
        AgentSpecError: ``kind`` is not registered.
    """
    if kind not in _KINDS:
        raise AgentSpecError(f"unknown tool {kind!r}; known: {', '.join(tool_kind_names())}")
    return _load(_KINDS[kind][1])
