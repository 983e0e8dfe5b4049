"""A small MCP server for the tests, written with the official ``mcp`` SDK.

``python mcp_server.py`` serves over stdio; ``python mcp_server.py http PORT`` serves
streamable HTTP on ``127.0.0.1:PORT`` at ``/mcp``.
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("namu-test", log_level="WARNING")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Return the text as it is."""
    return text


@server.tool()
def fail(message: str) -> str:
    """Always fail with the message (the result has isError set)."""
    raise ToolError(message)


@server.tool()
async def sleep(seconds: float) -> str:
    """Wait, then answer 'slept'."""
    await asyncio.sleep(seconds)
    return "slept"


@server.tool()
def getenv(name: str) -> str:
    """The value of an environment variable of the server, or '(unset)'."""
    return os.environ.get(name, "(unset)")


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool(name="math.mul")
def mul(a: int, b: int) -> int:
    """Multiply two integers (a name a model provider would not accept as is)."""
    return a * b


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
