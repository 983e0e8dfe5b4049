"""Every registered tool kind: its options documented and light to import, its kit a ToolKit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from namu.runtime.tools.base import (
    ToolKit,
    ToolOptions,
    tool_kind_names,
    tool_kit_class,
    tool_options_class,
)

KINDS = tool_kind_names()


def test_the_built_in_kinds() -> None:
    assert KINDS == ["calculator", "filesystem", "http", "mcp", "python"]


@pytest.mark.parametrize("kind", KINDS)
def test_options_and_kit(kind: str) -> None:
    options = tool_options_class(kind)
    assert issubclass(options, ToolOptions)
    assert options.model_config["extra"] == "forbid"
    schema = options.model_json_schema()
    undocumented = [name for name, field in schema["properties"].items() if not field.get("description")]
    assert undocumented == []
    assert options.shorthand is None or options.shorthand in options.model_fields
    assert issubclass(tool_kit_class(kind), ToolKit)


def test_options_are_light_to_import() -> None:
    """Validating an agent file imports every kind's options, never httpx or the mcp SDK."""
    code = (
        "import json, sys\n"
        "from namu.runtime.tools.base import tool_kind_names, tool_options_class\n"
        "for kind in tool_kind_names(): tool_options_class(kind).model_json_schema()\n"
        "print(json.dumps(sorted(m for m in ('httpx', 'mcp', 'anyio') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60).stdout
    assert json.loads(out) == []
