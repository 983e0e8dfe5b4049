"""Positional-only and keyword-only parameters of workflows, as Python binds them: from
Python, from a sub-workflow call, from the CLI, and in a saved artifact."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import namu
from tests.frontend.wf_samples import import_source as _import

SOURCE = '''
import namu


@namu.task
def scale(x: int, *, by: int = 2) -> int:
    return x * by


@namu.workflow
def wf(a: int, /, b: int = 1, *, c: int, d: str = "x"):
    return scale(a, by=c) + b, d * b


@namu.workflow
def outer(n: int):
    return wf(n, c=3), wf(n, 2, c=1, d="y")


@namu.task
def place(a: int, b: int, *, c: int = 0) -> int:
    return a * 100 + b * 10 + c


@namu.task
def pair(x: int) -> tuple[int, int]:
    return x, x + 1


@namu.workflow
def spread(x: int):
    t = (x, 2)
    opts = {"c": 7}
    return place(*t), place(*pair(x)), place(*[1, 2], **opts), place(x, **{"b": 3, "c": 4})
'''


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory):
    return _import(tmp_path_factory.mktemp("params") / "namu_parameter_samples.py", SOURCE)


def test_keyword_only_and_positional_only_parameters_bind_as_in_python(module) -> None:
    assert module.wf(2, c=5) == module.wf.fn(2, c=5) == (11, "x")
    assert module.wf(2, 3, c=1, d="z") == module.wf.fn(2, 3, c=1, d="z") == (5, "zzz")
    assert module.outer(4) == ((13, "x"), (6, "yy"))
    with pytest.raises(namu.InputError, match="too many positional arguments"):
        module.wf(2, 1, 3)
    with pytest.raises(namu.InputError, match="missing a required argument: 'c'"):
        module.wf(2)
    with pytest.raises(namu.InputError, match="'a' parameter is positional only"):
        module.wf(a=2, c=1)


def test_a_sub_workflow_call_is_checked_at_compile_time(tmp_path: Path) -> None:
    bad = _import(tmp_path / "namu_parameter_bad.py", SOURCE + "\n\n@namu.workflow\ndef wrong(n: int):\n    return wf(n, 1, 2)\n")
    with pytest.raises(namu.WorkflowSyntaxError, match="too many positional arguments"):
        namu.compile(bad.wrong)


def test_a_saved_artifact_keeps_the_parameter_kinds(module, tmp_path: Path) -> None:
    path = namu.compile(module.wf).save(tmp_path / "wf.onnx")
    loaded = namu.load(path)
    assert [p.kind for p in loaded.signature.params] == ["positional_only", "positional_or_keyword", "keyword_only", "keyword_only"]
    assert loaded(2, c=5) == (11, "x")
    with pytest.raises(namu.InputError, match="positional only"):
        loaded(a=2, c=1)


def test_the_cli_passes_keyword_only_inputs_by_name(module, tmp_path: Path) -> None:
    path = Path(module.__file__)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "namu.cli", "run", f"{path}:wf", "-i", "a=2", "-i", "c=5", "--json"],
                          capture_output=True, text=True, env=env, cwd=path.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith('[11, "x"]') or '"value": [11, "x"]' in proc.stdout


def test_star_and_double_star_spread_static_shapes_into_task_calls(module) -> None:
    for executor in ("kernel", "reference"):
        assert namu.compile(module.spread).run(5, executor=executor).value == module.spread.fn(5) == (520, 560, 127, 534)


def test_a_spread_that_does_not_fit_the_task_is_a_compile_error(tmp_path: Path) -> None:
    bad = _import(tmp_path / "namu_spread_bad.py", SOURCE + "\n\n@namu.workflow\ndef wrong(n: int):\n    return place(*(n, 1, 2))\n")
    with pytest.raises(namu.WorkflowSyntaxError, match="place\\(\\): too many positional arguments"):
        namu.compile(bad.wrong)
