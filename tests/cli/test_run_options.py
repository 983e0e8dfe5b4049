"""``namu run``'s run-option flags come from ``RunOptions``, and ``--executor`` takes any
registered executor: one registered in process, or by an installed package's entry point."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from namu.cli import run
from namu.cli.execute import run_command
from namu.runtime.executor_registry import ENTRY_POINT_GROUP
from namu.runtime.options import Flag, RunOptions
from tests.cli.test_cli import assert_error, namu_cli, write
from tests.runtime.counting_executor import CountingExecutor

WORKFLOW = """
import namu

@namu.task
def upto(n: int) -> list[int]:
    return list(range(n))

@namu.task
def square(x: int) -> int:
    return x * x

@namu.workflow
def squares(n: int = 3) -> list[int]:
    return [square(i) for i in upto(n)]
"""


def test_the_run_flags_are_the_run_options_with_a_flag() -> None:
    flags = {p.name: p for p in run_command.params if p.name in RunOptions.model_fields}
    expected = [name for name, f in RunOptions.model_fields.items() if any(isinstance(m, Flag) for m in f.metadata)]
    assert list(flags) == expected and "hooks" not in flags
    for name, param in flags.items():
        field = RunOptions.model_fields[name]
        assert param.opts == [f"--{name.replace('_', '-')}"]
        assert param.help == field.description and param.default == field.default


def test_run_with_an_executor_registered_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "namu_cli_squares.py", WORKFLOW)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = CountingExecutor.nodes_run
    assert run(["run", "namu_cli_squares.py", "-i", "n=4", "--executor", "counting", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["value"] == [0, 1, 4, 9]
    assert CountingExecutor.nodes_run > before
    assert run(["run", "namu_cli_squares.py", "--executor", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Invalid value for '--executor': 'nope' is not one of 'counting', 'kernel'"), err


def test_run_with_an_executor_from_an_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = tmp_path / "site"
    dist = plugins / "namu_toy_executors-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: namu-toy-executors\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(f"""
        [{ENTRY_POINT_GROUP}]
        counting = tests.runtime.counting_executor:CountingExecutor
        """)
    )
    monkeypatch.setenv("PYTHONPATH", str(plugins))
    write(tmp_path, "namu_cli_squares.py", WORKFLOW)
    assert "[counting|kernel|reference" in namu_cli("run", "--help", cwd=tmp_path).stdout
    proc = namu_cli("run", "namu_cli_squares.py", "--executor", "counting", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["value"] == [0, 1, 4]
    assert_error(namu_cli("run", "namu_cli_squares.py", "--executor", "nope", cwd=tmp_path), 2, "'nope' is not one of 'counting', 'kernel'")
