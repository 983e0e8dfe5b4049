"""Python tools: ``@namu.tool``, schemas from hints and docstrings, validation, sync and
async functions, and ``python: module:function`` targets."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import namu
from namu.errors import TaskDefinitionError, ToolError
from namu.runtime.tools.base import Tool, tool_kit_class, tool_options_class
from namu.runtime.tools.python import function_tool, parse_docstring
from tests.agents import python_tools

HERE = Path(__file__).parent


def load(target: str, base_dir: str | Path = HERE, **options: Any) -> Tool:
    """The tool of a ``python`` entry, as an agent loads it."""
    kit = tool_kit_class("python")(tool_options_class("python")(target=target, **options), str(base_dir))
    (tool,) = asyncio.run(kit.tools())
    return tool


def call(tool: Tool, **arguments: Any) -> str:
    return asyncio.run(tool.call(arguments))


def test_namu_tool_is_the_decorator() -> None:
    from namu.runtime.tools.python import tool

    assert namu.tool is tool


def test_decorated_functions_stay_plain_functions() -> None:
    assert python_tools.weather("Lisbon") == python_tools.Forecast("Lisbon", 21.5)
    assert asyncio.run(python_tools.distance_between(python_tools.Point(x=0, y=0), python_tools.Point(x=3, y=4))) == 5

    @namu.tool
    def f(x: int) -> int:
        return x + 1

    assert f(1) == 2
    assert f.__name__ == "f"


def test_schema_from_hints_and_docstring() -> None:
    tool = function_tool(python_tools.weather)
    assert tool.name == "weather"
    assert tool.description == "The weather forecast for a city."
    assert tool.timeout_s == 30
    assert tool.input_schema == {
        "additionalProperties": False,
        "properties": {
            "city": {"description": 'the city\'s name, e.g. "Lisbon".', "title": "city", "type": "string"},
            "units": {
                "default": "C",
                "description": "the temperature scale.",
                "enum": ["C", "F"],
                "title": "units",
                "type": "string",
            },
            "days": {"default": 1, "description": "how many days ahead.", "title": "days", "type": "integer"},
        },
        "required": ["city"],
        "type": "object",
    }


def test_decorator_options_and_nested_models() -> None:
    tool = function_tool(python_tools.distance_between)
    assert (tool.name, tool.description, tool.timeout_s) == ("distance", "Distance between two points.", 5)
    assert tool.input_schema["required"] == ["a", "b"]
    assert tool.input_schema["properties"]["a"] == {"$ref": "#/$defs/Point", "title": "a"}
    assert set(tool.input_schema["$defs"]["Point"]["properties"]) == {"x", "y"}
    assert call(tool, a={"x": 0, "y": 0}, b={"x": 3, "y": 4}) == "5.0"  # positional-only parameters


def test_undecorated_function() -> None:
    tool = function_tool(python_tools.plain)
    assert tool.name == "plain"
    assert tool.description == "Join words (a function without @namu.tool)."
    assert tool.input_schema["properties"]["separator"]["default"] is None
    assert call(tool, words=["a", "b"]) == "a b"
    assert call(tool, words=["a", "b"], separator="-") == "a-b"


def test_parameter_names_that_pydantic_uses() -> None:
    def f(schema: str, model_config: int = 0, copy: bool = False) -> str:
        return f"{schema} {model_config} {copy}"

    tool = function_tool(f)
    assert list(tool.input_schema["properties"]) == ["schema", "model_config", "copy"]
    assert call(tool, schema="s", model_config=2, copy=True) == "s 2 True"


def test_arguments_are_validated() -> None:
    tool = function_tool(python_tools.weather)
    assert call(tool, city="Lisbon", days="3") == '{"city":"Lisbon","degrees":21.5}'  # "3" -> 3
    with pytest.raises(ToolError, match="invalid input for weather: city: Field required"):
        call(tool)
    with pytest.raises(ToolError, match=r"units: Input should be 'C' or 'F'; days: Input should be a valid integer"):
        call(tool, city="x", units="K", days="many")
    with pytest.raises(ToolError, match="country: Extra inputs are not permitted"):
        call(tool, city="x", country="PT")
    with pytest.raises(ToolError, match="b.y: Field required"):
        call(function_tool(python_tools.distance_between), a={"x": 0, "y": 0}, b={"x": 1})


def test_results_as_text() -> None:
    assert call(function_tool(python_tools.weather), city="Oslo", units="F") == '{"city":"Oslo","degrees":70.7}'
    assert call(function_tool(python_tools.nothing)) == "null"
    assert call(function_tool(python_tools.plain), words=["x"]) == "x"  # a str as it is, not JSON


def test_failures_propagate() -> None:
    with pytest.raises(RuntimeError, match="broken with 2"):
        call(function_tool(python_tools.broken), n=2)


def test_sync_functions_run_in_a_thread_and_do_not_block_the_loop() -> None:
    assert call(function_tool(python_tools.thread_name)) != threading.current_thread().name

    def slow() -> str:
        time.sleep(0.3)
        return "done"

    async def main() -> tuple[str, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        answer = await function_tool(slow).call({})
        task.cancel()
        return answer, ticks

    answer, ticks = asyncio.run(main())
    assert answer == "done"
    assert ticks >= 10


def test_async_functions_run_on_the_loop() -> None:
    async def where() -> str:
        return threading.current_thread().name

    assert call(function_tool(where)) == threading.current_thread().name


def test_decorator_errors() -> None:
    with pytest.raises(TaskDefinitionError, match="invalid @namu.tool name 'has space'"):
        namu.tool(name="has space")
    with pytest.raises(TaskDefinitionError, match="timeout_s 0"):
        namu.tool(timeout_s=0)
    with pytest.raises(TaskDefinitionError, match="decorates a function"):
        namu.tool(print)


def test_functions_that_cannot_be_tools() -> None:
    def variadic(*args: int) -> int:
        return sum(args)

    with pytest.raises(TaskDefinitionError, match=r"\*args and \*\*kwargs"):
        function_tool(variadic)
    with pytest.raises(TaskDefinitionError, match="not a valid tool name"):
        function_tool(lambda x: x)

    def unresolvable(x: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(TaskDefinitionError, match="cannot read its signature"):
        function_tool(unresolvable)

    def undescribable(sock: socket.socket) -> None:
        pass

    with pytest.raises(TaskDefinitionError, match="tool undescribable: Unable to generate pydantic-core schema"):
        function_tool(undescribable)


def test_parse_docstring() -> None:
    doc = """Summary line
    continued.

    Details.

    Arguments:
        a (int): first
            and more.
        *rest: ignored later

    Raises:
        ValueError: not a parameter.
    Not indented: ends nothing here.
    """
    import inspect

    summary, described = parse_docstring(inspect.cleandoc(doc))
    assert summary == "Summary line continued."
    assert described == {"a": "first and more.", "rest": "ignored later"}
    assert parse_docstring("") == ("", {})
    assert parse_docstring("Args:\n    x: only args") == ("", {"x": "only args"})


# -- python: module:function ---------------------------------------------------------------


def test_targets_by_module_and_by_file() -> None:
    by_module = load("tests.agents.python_tools:weather")
    by_file = load("python_tools.py:weather")
    assert by_module.spec() == by_file.spec()
    assert call(by_file, city="Rome") == '{"city":"Rome","degrees":21.5}'


def test_a_module_beside_the_agent_file(tmp_path: Path) -> None:
    (tmp_path / "agent_local_tools.py").write_text("def shout(text: str) -> str:\n    return text.upper()\n")
    assert call(load("agent_local_tools:shout", tmp_path), text="hi") == "HI"
    (tmp_path / "pkg_dir").mkdir()
    (tmp_path / "pkg_dir" / "helpers.py").write_text("def twice(n: int) -> int:\n    return 2 * n\n")
    assert call(load("pkg_dir/helpers.py:twice", tmp_path), n=4) == "8"


def test_timeout_precedence() -> None:
    assert load("tests.agents.python_tools:distance_between").timeout_s == 5  # the decorator's
    assert load("tests.agents.python_tools:distance_between", timeout_s=1).timeout_s == 1  # the file's
    assert load("tests.agents.python_tools:plain").timeout_s == 30


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_anywhere:f", "cannot import no_such_module_anywhere: ModuleNotFoundError"),
        ("missing_file.py:f", "cannot import missing_file.py: FileNotFoundError"),
        ("tests.agents.python_tools:nope", "tests.agents.python_tools has no 'nope'"),
        ("tests.agents.python_tools:NOT_A_FUNCTION", "NOT_A_FUNCTION is not a function"),
        ("failing_import.py:f", "cannot import failing_import.py: ZeroDivisionError"),
    ],
)
def test_bad_targets(tmp_path: Path, target: str, message: str) -> None:
    (tmp_path / "failing_import.py").write_text("1 / 0\n")
    with pytest.raises(ToolError, match=message):
        load(target, tmp_path)


def test_options() -> None:
    options = tool_options_class("python")
    assert options.shorthand == "target"
    assert options(target="pkg.mod:fn").target == "pkg.mod:fn"
    for bad in ["pkg.mod", "pkg.mod:", ":fn", "pkg mod:fn", "pkg:1fn"]:
        with pytest.raises(ValidationError, match="target"):
            options(target=bad)
    assert "module:function" in options.model_json_schema()["properties"]["target"]["description"]
