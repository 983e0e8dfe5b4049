"""MCP tools: a server written with the ``mcp`` SDK (``mcp_server.py``), over stdio and
over streamable HTTP on loopback."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from namu.errors import ToolError
from namu.runtime.tools.base import Tool, ToolKit, tool_kit_class, tool_options_class

SERVER = Path(__file__).with_name("mcp_server.py")


def make_kit(**options: Any) -> ToolKit:
    return tool_kit_class("mcp")(tool_options_class("mcp")(**options), str(SERVER.parent))


def test_stdio_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """One session: listing, calls (concurrent, failing, abandoned), then aclose reaping
    the server's process."""
    monkeypatch.setenv("NAMU_TEST_TOKEN", "from namu's environment")
    monkeypatch.setenv("NAMU_TEST_OTHER", "not passed on")

    async def main() -> None:
        kit = make_kit(
            command=[sys.executable, SERVER.name],
            env={"NAMU_TEST_GIVEN": "given"},
            inherit_env=["NAMU_TEST_TOKEN"],
            prefix="t_",
            exclude=["echo"],
            timeout_s=7,
        )
        tools: dict[str, Tool] = {tool.name: tool for tool in await kit.tools()}
        assert await kit.tools() == list(tools.values())  # listed once
        assert sorted(tools) == ["t_add", "t_fail", "t_getenv", "t_math_mul", "t_pid", "t_sleep"]
        getenv = tools["t_getenv"]
        assert await getenv.call({"name": "NAMU_TEST_GIVEN"}) == "given"
        assert await getenv.call({"name": "NAMU_TEST_TOKEN"}) == "from namu's environment"
        assert await getenv.call({"name": "NAMU_TEST_OTHER"}) == "(unset)"
        add = tools["t_add"]
        assert add.description == "Add two integers."
        assert add.input_schema["required"] == ["a", "b"]
        assert add.timeout_s == 7
        assert await add.call({"a": 2, "b": 3}) == "5"
        assert await tools["t_math_mul"].call({"a": 2, "b": 3}) == "6"  # the server's name is math.mul

        with pytest.raises(ToolError, match="boom"):  # a result with isError
            await tools["t_fail"].call({"message": "boom"})
        with pytest.raises(ToolError, match="add"):  # the server refused the arguments
            await add.call({"a": "x"})

        started = time.monotonic()
        answers = await asyncio.gather(*(tools["t_sleep"].call({"seconds": 0.3}) for _ in range(5)))
        assert answers == ["slept"] * 5
        assert time.monotonic() - started < 1.2  # concurrently, not one after the other

        with pytest.raises(asyncio.TimeoutError):  # a caller giving up cancels its call...
            await asyncio.wait_for(tools["t_sleep"].call({"seconds": 30}), 0.2)
        assert await add.call({"a": 1, "b": 1}) == "2"  # ...and the session goes on

        pid = int(await tools["t_pid"].call({}))
        await kit.aclose()
        with pytest.raises(ProcessLookupError):  # gone and reaped (a zombie would still answer)
            os.kill(pid, 0)
        with pytest.raises(ToolError, match="session with .* has ended"):
            await add.call({"a": 1, "b": 1})
        await kit.aclose()  # twice is fine

    asyncio.run(main())


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["no-such-mcp-server-command"], "FileNotFoundError"),
        ([sys.executable, "-c", "pass"], "Connection closed"),
    ],
)
def test_a_server_that_does_not_start(command: list[str], message: str) -> None:
    kit = make_kit(command=command)
    with pytest.raises(ToolError, match=f"cannot open an MCP session with .*{message}"):
        asyncio.run(kit.tools())


def test_inherit_env_names_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NAMU_TEST_UNSET", raising=False)
    kit = make_kit(command=[sys.executable, SERVER.name], inherit_env=["PATH", "NAMU_TEST_UNSET"])
    with pytest.raises(ToolError, match="inherit_env names unset variables: NAMU_TEST_UNSET$"):
        asyncio.run(kit.tools())


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    """The test server over streamable HTTP on a free loopback port; its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, str(SERVER), "http", str(port)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "the MCP test server did not start"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_streamable_http_server(http_server: str) -> None:
    async def main() -> None:
        kit = make_kit(url=http_server, include=["add", "fail", "math.mul"])
        try:
            tools = {tool.name: tool for tool in await kit.tools()}
            assert sorted(tools) == ["add", "fail", "math_mul"]
            assert await tools["add"].call({"a": 20, "b": 22}) == "42"
            with pytest.raises(ToolError, match="no good"):
                await tools["fail"].call({"message": "no good"})
        finally:
            await kit.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("key", ["include", "exclude"])
def test_unknown_tool_names_are_errors(http_server: str, key: str) -> None:
    kit = make_kit(url=http_server, **{key: ["add", "ad"]})
    tools = "add, echo, fail, sleep, getenv, pid, math.mul"
    with pytest.raises(ToolError, match=rf"{key} names tools it does not have: ad; its tools: {tools}$"):
        asyncio.run(kit.tools())


def test_options_are_validated() -> None:
    options = tool_options_class("mcp")
    with pytest.raises(ValidationError, match="exactly one of command"):
        options()
    with pytest.raises(ValidationError, match="exactly one of command"):
        options(command=["x"], url="http://127.0.0.1:1/mcp")
    for key, value in [("env", {"A": "1"}), ("inherit_env", ["A"]), ("cwd", ".")]:
        with pytest.raises(ValidationError, match="env, inherit_env and cwd are options of a command"):
            options(url="http://127.0.0.1:1/mcp", **{key: value})
    with pytest.raises(ValidationError, match="url"):
        options(url="ws://127.0.0.1:1/mcp")
    with pytest.raises(ValidationError, match="command"):
        options(command=[])
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        options(command=["x"], args=["y"])
    assert options(command=["python", "server.py"], env={"A": "1"}, cwd="srv").cwd == "srv"
