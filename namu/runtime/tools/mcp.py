"""The ``mcp`` tools: every tool of a Model Context Protocol server, through the official
``mcp`` SDK (version 2).

The server is started as a subprocess and spoken to over stdio (``command``), or reached
at a streamable HTTP endpoint (``url``). Its tools are listed once, when the agent
starts; each becomes a tool of the agent named ``prefix`` + the server's name for it
(characters other than letters, digits, ``_`` and ``-`` become ``_``), with the server's
description and input schema. ``include`` keeps only the tools it names, ``exclude``
drops the ones it names (names as the server gives them; a name the server does not
have is an error, so a typo cannot leave a tool exposed).

A stdio server runs in the agent file's directory (or ``cwd``) with the SDK's minimal
environment (``HOME``, ``PATH``, ...), plus ``env`` and the variables ``inherit_env``
names, whose values are read from namu's environment when the server starts: a token
passed that way is never written in the agent file or its artifact.

A call answers the text of the result's content blocks, one per line (the text of an
embedded text resource included; an image, audio or binary block is replaced by a note
of its type); a result without content answers its structured content as JSON. A result
with ``isError`` raises :class:`~namu.errors.ToolError` with its text.

The SDK's client contexts are anyio context managers that must be entered and left by
one task, while tool calls come from the agent's tasks: one background task owns the
session for its whole life and serves the calls sent to it through a queue, each in a
task of its own (so calls run concurrently, and a caller that gives up -- its timeout --
cancels its call). :meth:`McpKit.aclose` ends that task, which closes the session: the
server's stdin is closed, then the server is terminated if it lingers, and reaped.

In an agent file::

    tools:
      - mcp: {command: [python, server.py], prefix: notes_, exclude: [delete_note]}
      - mcp: {command: [npx, -y, some-mcp-server], inherit_env: [GITHUB_TOKEN]}
      - mcp: {url: "http://127.0.0.1:8000/mcp"}
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from namu.errors import ToolError
from namu.runtime.tools.base import Tool, ToolKit, ToolOptions

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult
    from mcp.types import Tool as McpTool

__all__ = ["McpKit", "McpOptions"]

logger = logging.getLogger(__name__)

#: the most pages of a server's tool list read (a server whose cursor never ends)
_MAX_PAGES = 100


class McpOptions(ToolOptions):
    """Options of an ``mcp`` entry: exactly one of ``command`` and ``url``."""

    command: list[str] | None = Field(
        None,
        min_length=1,
        description="Start the server with this command and speak to it over stdio, e.g. [python, server.py].",
    )
    env: dict[str, str] | None = Field(
        None, description="Environment variables of the command, added to a minimal inherited set (HOME, PATH, ...)."
    )
    inherit_env: list[str] = Field(
        default_factory=list,
        description="Names of environment variables the command gets from namu's own environment, read when "
        "the server starts (so a token never has to be written in the agent file or its artifact).",
    )
    cwd: str | None = Field(
        None, description="The command's working directory, relative to the agent file's directory (the default)."
    )
    url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="The server's streamable HTTP endpoint, e.g. http://127.0.0.1:8000/mcp.",
    )
    prefix: str = Field(
        "",
        pattern=r"^[a-zA-Z0-9_-]{0,40}$",
        description="Put before every tool name (notes_ gives notes_search), to keep servers' tools apart.",
    )
    include: list[str] | None = Field(None, description="Offer only these tools of the server (its names for them).")
    exclude: list[str] = Field(default_factory=list, description="Do not offer these tools of the server.")

    @model_validator(mode="after")
    def _one_transport(self) -> McpOptions:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of command (a server over stdio) and url (a streamable HTTP server)")
        if self.url is not None and (self.env is not None or self.cwd is not None or self.inherit_env):
            raise ValueError("env, inherit_env and cwd are options of a command, not of a url")
        return self


class McpKit(ToolKit):
    """Provides the tools of one MCP server, over one session held until :meth:`aclose`."""

    options: McpOptions

    def __init__(self, options: McpOptions, base_dir: str) -> None:
        super().__init__(options, base_dir)
        self._session: _Session | None = None
        self._tools: list[Tool] = []

    def _client(self) -> Client:
        from mcp import Client, StdioServerParameters
        from mcp.types import Implementation

        from namu._version import __version__

        options = self.options
        info = Implementation(name="namu", version=__version__)
        if options.url is not None:
            return Client(options.url, client_info=info)
        assert options.command is not None  # McpOptions requires one of them
        command, *args = options.command
        missing = [name for name in options.inherit_env if name not in os.environ]
        if missing:
            raise ToolError(f"MCP server {self._where()}: inherit_env names unset variables: {', '.join(missing)}")
        env = {**(options.env or {}), **{name: os.environ[name] for name in options.inherit_env}}
        cwd = os.path.join(self.base_dir, options.cwd or ".")
        return Client(StdioServerParameters(command=command, args=args, env=env, cwd=cwd), client_info=info)

    def _where(self) -> str:
        return self.options.url or " ".join(self.options.command or ())

    async def tools(self) -> list[Tool]:
        """Start the session (the first time) and the server's tools, filtered.

        Raises:
            ToolError: the server cannot be started or reached, a variable of
                ``inherit_env`` is not set, or ``include`` or ``exclude`` names a tool
                the server does not have.
        """
        if self._session is not None:
            return self._tools
        session = _Session(self._client(), self._where())
        listed = await session.start()
        self._session = session
        names = [tool.name for tool in listed]
        for key in ("include", "exclude"):
            unknown = sorted(set(getattr(self.options, key) or ()) - set(names))
            if unknown:
                await self.aclose()
                raise ToolError(
                    f"MCP server {self._where()}: {key} names tools it does not have: {', '.join(unknown)}; "
                    f"its tools: {', '.join(names)}"
                )
        include, exclude = self.options.include, set(self.options.exclude)
        self._tools = [
            _McpTool(session, tool, self.options.prefix, self.options.timeout_s)
            for tool in listed
            if (include is None or tool.name in include) and tool.name not in exclude
        ]
        return self._tools

    async def aclose(self) -> None:
        """End the session (and the server's process, which is reaped)."""
        if self._session is not None:
            session, self._session = self._session, None
            self._tools = []
            await session.close()


class _McpTool(Tool):
    """One tool of an MCP server, called through the session's owner task."""

    def __init__(self, session: _Session, tool: McpTool, prefix: str, timeout_s: float) -> None:
        self.session = session
        self.remote_name = tool.name
        self.name = re.sub(r"[^a-zA-Z0-9_-]", "_", prefix + tool.name)[:64]
        self.description = tool.description or tool.title or ""
        self.input_schema = tool.input_schema
        self.timeout_s = timeout_s

    async def call(self, arguments: dict[str, Any]) -> str:
        """Call the server's tool.

        Raises:
            ToolError: the result is an error (its text is the message), or the session
                has ended.
        """
        result = await self.session.call(self.remote_name, arguments)
        text = _text_of(result)
        if result.is_error:
            raise ToolError(text or f"the MCP tool {self.remote_name} failed without a message")
        return text


def _text_of(result: CallToolResult) -> str:
    """The content blocks of ``result`` as text, one per line."""
    parts = []
    for block in result.content:
        if block.type == "text":
            parts.append(block.text)
        elif block.type == "resource" and hasattr(block.resource, "text"):
            parts.append(block.resource.text)
        elif block.type == "resource_link":
            parts.append(f"[resource {block.uri}]")
        else:
            parts.append(f"[{block.type} content not shown]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content))
    return "\n".join(parts)


class _Session:
    """An MCP client session living in one background task (its owner).

    Args:
        client: the SDK's client, not yet entered.
        where: the server's command or URL, for messages.
    """

    def __init__(self, client: Client, where: str) -> None:
        self.client = client
        self.where = where
        self.closed = False
        self._requests: asyncio.Queue[tuple[str, dict[str, Any], asyncio.Future[Any]] | None] = asyncio.Queue()
        self._pending: set[asyncio.Future[Any]] = set()
        self._owner: asyncio.Task[None] | None = None

    async def start(self) -> list[McpTool]:
        """Start the owner task; the server's tools once the session is open.

        Raises:
            ToolError: the session could not be opened (the cause is chained).
        """
        ready: asyncio.Future[list[McpTool]] = asyncio.get_running_loop().create_future()
        self._owner = asyncio.create_task(self._own(ready), name=f"MCP session {self.where}")
        try:
            return await ready
        except asyncio.CancelledError:
            await self.close()
            raise
        except Exception as exc:
            await self.close()
            raise ToolError(f"cannot open an MCP session with {self.where}: {_describe(exc)}") from exc

    async def _own(self, ready: asyncio.Future[list[McpTool]]) -> None:
        """The owner task: enter the client, list the tools, serve calls until told to
        stop (a ``None`` request), leave the client."""
        import anyio

        try:
            async with self.client as client, anyio.create_task_group() as calls:
                ready.set_result(await _list_tools(client))
                while (request := await self._requests.get()) is not None:
                    calls.start_soon(self._serve, client, *request)
                calls.cancel_scope.cancel()
        except Exception as exc:  # noqa: BLE001 - reported to the starter, or logged
            if not ready.done():
                ready.set_exception(exc)
            else:
                logger.warning("the MCP session with %s ended with %s", self.where, _describe(exc))
        finally:
            self.closed = True
            if not ready.done():  # cancelled while opening
                ready.cancel()
            for future in self._pending:
                if not future.done():
                    future.set_exception(ToolError(f"the MCP session with {self.where} has ended"))

    async def _serve(self, client: Client, name: str, arguments: dict[str, Any], future: asyncio.Future[Any]) -> None:
        """Make one call for a caller, in a task of the owner's; a caller that gives up
        (its future cancelled) cancels the call."""
        import anyio

        if future.done():
            return
        with anyio.CancelScope() as scope:
            future.add_done_callback(lambda done: scope.cancel() if done.cancelled() else None)
            try:
                result = await client.call_tool(name, arguments)
            except Exception as exc:  # noqa: BLE001 - handed to the caller, which raises it
                if not future.done():
                    future.set_exception(exc)
                return
            if not future.done():
                future.set_result(result)

    async def call(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        """Call tool ``name`` of the server (through the owner task).

        Raises:
            ToolError: the session has ended.
            Exception: the SDK's error for a failed request.
        """
        if self.closed:
            raise ToolError(f"the MCP session with {self.where} has ended")
        future: asyncio.Future[CallToolResult] = asyncio.get_running_loop().create_future()
        self._pending.add(future)
        try:
            self._requests.put_nowait((name, arguments, future))
            return await future
        finally:
            self._pending.discard(future)

    async def close(self) -> None:
        """Stop the owner task and wait for the session (and a server process) to end."""
        if self._owner is None:
            return
        self._requests.put_nowait(None)
        await asyncio.wait({self._owner})  # not cancelled with this call: the server is still stopped


def _describe(exc: BaseException) -> str:
    """``Type: message`` of ``exc``, or of the one exception an anyio task group wrapped."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


async def _list_tools(client: Client) -> list[McpTool]:
    """Every tool the server lists, page after page."""
    tools: list[McpTool] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools
