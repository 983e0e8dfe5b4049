"""``import namu`` and ``namu --help`` stay light (STYLE.md: "Light at import"): they do
not import onnx, onnx_ir, numpy or rich, which the compiler, the runtime and the CLI's
commands import when they run. Each check runs in a fresh interpreter and reads its
``sys.modules``; no timings (the machine running the tests may be busy).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import namu
from namu.cli import COMMANDS

#: imported by compiling, running or printing, never by importing namu
HEAVY = ("onnx", "onnx_ir", "numpy", "rich")
#: the modules of namu's commands, imported when one runs or shows its help
COMMAND_MODULES = tuple(sorted({command.target.partition(":")[0] for command in COMMANDS.values()}))

#: runs ``namu`` with ``sys.argv[1:]`` as its arguments, as the console script does
NAMU_MAIN = """
    import runpy, sys
    sys.argv[0] = "namu"
    try:
        runpy.run_module("namu", run_name="__main__")
    except SystemExit as exc:
        assert exc.code == 0, exc.code
    """


def heavy_modules_after(code: str, *args: str, watched: tuple[str, ...] = (*HEAVY, "pydantic")) -> list[str]:
    """The modules of ``watched`` (default ``HEAVY`` and pydantic) loaded when a fresh
    interpreter has run ``code`` (with ``args`` as ``sys.argv[1:]``), read at exit."""
    report = textwrap.dedent(
        f"""
        import atexit, json, sys
        atexit.register(lambda: print(json.dumps(sorted(m for m in {watched!r} if m in sys.modules)), file=sys.stderr))
        """
    )
    command = [sys.executable, "-c", report + textwrap.dedent(code), *args]
    proc = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stderr.strip().splitlines()[-1])


def test_import_namu_is_light() -> None:
    assert heavy_modules_after("import namu") == []


@pytest.mark.parametrize(
    "args", [("--help",), ("--version",), (), ("run", "--help"), ("compile", "--help"), ("runs", "--help"), ("runs", "list", "--help")]
)
def test_namu_help_is_light(args: tuple[str, ...]) -> None:
    loaded = heavy_modules_after(NAMU_MAIN, *args)
    # pydantic is allowed: `namu run`'s flags are made from RunOptions' fields.
    assert [m for m in loaded if m in HEAVY] == []


@pytest.mark.parametrize("args", [("--help",), ("--version",), ()])
def test_namu_help_imports_no_command(args: tuple[str, ...]) -> None:
    """``namu --help`` lists the commands from ``namu.cli.COMMANDS``: no command module,
    and so no pydantic, is imported."""
    assert heavy_modules_after(NAMU_MAIN, *args, watched=(*HEAVY, "pydantic", *COMMAND_MODULES)) == []


def test_a_command_imports_only_its_own_module() -> None:
    assert heavy_modules_after(NAMU_MAIN, "inspect", "--help", watched=COMMAND_MODULES) == ["namu.cli.inspect"]


def test_defining_tasks_and_workflows_is_light() -> None:
    """A module of tasks and workflows (as a process-mode worker imports it) compiles nothing."""
    code = """
        import namu

        @namu.task(retries=1)
        def add(a: int, b: int) -> int:
            return a + b

        @namu.workflow
        def twice(x: int) -> int:
            return add(add(x, 1), 1)

        llm = namu.slot("llm", returns=str)
        assert add(1, 2) == 3
        """
    assert [m for m in heavy_modules_after(code) if m in HEAVY] == []


def test_every_public_name_is_importable() -> None:
    for name in namu.__all__:
        assert name in dir(namu)
        exec(f"from namu import {name}", {})  # noqa: S102 - the statement under test
    assert namu.compile.__module__ == "namu.compiler"
    assert namu.Artifact.__module__ == "namu.runtime.artifact"
    assert namu.load.__module__ == "namu.runtime.loader"
    assert namu.CompileConfig.__module__ == "namu.passes.config"
    assert namu.RunOptions.__module__ == "namu.runtime.options"
    assert namu.tool.__module__ == "namu.runtime.tools.python"


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'compiles'"):
        namu.compiles  # noqa: B018
    assert not hasattr(namu, "_not_a_name")
