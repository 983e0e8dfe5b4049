"""A registered frontend works through the command line with no CLI change: ``namu
compile``, ``namu run`` and ``namu inspect`` on a ``.chain`` file (the test frontend of
tests/frontend/chain_frontend.py). Run in process through ``namu.cli.run``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from namu.cli import run
from namu.frontend.registry import register_frontend, unregister_frontend
from tests.frontend.chain_frontend import Chain

PIPELINE = """\
# double, then add one
tests.frontend.chain_frontend:double

tests.frontend.chain_frontend:increment
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``tmp_path`` as the current directory, holding ``pipeline.chain``, with the
    ``.chain`` frontend registered for the test only."""
    register_frontend("chain", "tests.frontend.chain_frontend:FRONTEND", suffixes=[".chain"], types=[Chain])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipeline.chain").write_text(PIPELINE)
    yield tmp_path
    unregister_frontend("chain")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def error_line(result: tuple[int, str, str]) -> str:
    """The one ``error:`` line of a command that exited with 2."""
    code, out, err = result
    assert (code, out) == (2, ""), (code, out, err)
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err.strip()


def test_a_chain_file_compiles_runs_and_inspects(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "compile", "pipeline.chain")
    assert (code, err) == (0, "")
    assert out.startswith("compiled pipeline: ") and out.endswith(f" ops, 2 tasks -> {workdir / 'pipeline.onnx'}\n")

    for target, executor in (("pipeline.chain", "kernel"), ("pipeline.onnx", "reference")):
        code, out, err = cli(capsys, "run", target, "-i", "x=5", "--json", "--executor", executor)
        assert (code, err) == (0, "") and json.loads(out)["value"] == 11

    code, out, err = cli(capsys, "inspect", "pipeline.onnx")
    assert (code, err) == (0, "")
    assert f"workflow  pipeline  ({workdir / 'pipeline.chain'})" in out
    assert "pipeline(x: int) -> int" in out
    assert "tests.frontend.chain_frontend.double" in out and "tests.frontend.chain_frontend.increment" in out
    assert "# pipeline.chain:2:1" in out and "# pipeline.chain:4:1" in out  # each node at its line


def test_chain_errors_are_one_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "broken.chain").write_text("tests.frontend.chain_frontend:double\ntests.frontend.chain_frontend:Chain\n")
    line = error_line(cli(capsys, "run", "broken.chain", "-i", "x=1"))
    assert line == f"error: {workdir / 'broken.chain'}:2:1: tests.frontend.chain_frontend:Chain is not a @namu.task"
    assert not list(workdir.glob("*.onnx"))
    assert error_line(cli(capsys, "compile", "pipeline.chain:main")) == "error: pipeline.chain holds one pipeline; name none"
    assert error_line(cli(capsys, "compile", "missing.chain")) == "error: no such file: missing.chain"
    # a bare --slot task is looked up in a Python workflow's module; a chain has none
    assert error_line(cli(capsys, "compile", "pipeline.chain", "--slot", "llm=shout")) == (
        "error: --slot llm: the workflow has no Python module to find 'shout' in; use llm=FILE.py:shout"
    )


def test_a_target_no_frontend_reads_lists_the_registered_suffixes(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "data.txt").write_text("hello")
    assert error_line(cli(capsys, "compile", "data.txt")) == (
        "error: data.txt is not a workflow file; expected FILE.py[:WORKFLOW], FILE.yaml, FILE.yml, FILE.chain[:WORKFLOW]"
    )
    assert error_line(cli(capsys, "run", "data.txt")) == (
        "error: data.txt: expected a workflow file (FILE.py[:WORKFLOW], FILE.yaml, FILE.yml, FILE.chain[:WORKFLOW]) or an artifact (FILE.onnx)"
    )
