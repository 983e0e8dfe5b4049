"""Positional-only, keyword-only, ``*args`` and ``**kwargs`` parameters of workflows, as
Python binds them: from Python, from a sub-workflow call, from the CLI, and in a saved
artifact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
def variadic(first: int, *rest: int, scale: int = 1, **named: int):
    total = first
    for r in rest:
        total = total + r
    return total * scale, sorted(named.items()), len(rest)


@namu.workflow
def calls_variadic(x: int):
    return variadic(x, 1, 2, scale=2, a=5), variadic(x), variadic(x, *(3, 4), **{"b": 1})


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


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.integers(-10**20, 10**20), rest=st.lists(st.integers(-5, 5), max_size=4),
       named=st.dictionaries(st.sampled_from(["a", "b", "zz"]), st.integers(), max_size=3), scale=st.integers(-3, 3))
def test_star_args_and_double_star_kwargs_parameters_bind_as_in_python(module, first: int, rest: list[int],
                                                                         named: dict[str, int], scale: int) -> None:
    expected = module.variadic.fn(first, *rest, scale=scale, **named)
    for executor in ("kernel", "reference"):
        assert module.variadic.run(first, *rest, scale=scale, **named, executor=executor).value == expected


def test_star_args_and_double_star_kwargs_everywhere(module, tmp_path: Path) -> None:
    """From a calling workflow (spread calls too), a saved artifact and the command line."""
    assert module.calls_variadic(3) == module.calls_variadic.fn(3) == ((12, [("a", 5)], 2), (3, [], 0), (10, [("b", 1)], 2))
    loaded = namu.load(namu.compile(module.variadic).save(tmp_path / "variadic.onnx"))
    assert [p.kind for p in loaded.signature.params] == ["positional_or_keyword", "var_positional", "keyword_only", "var_keyword"]
    assert loaded(1, 2, 3, scale=2, k=9) == (12, [("k", 9)], 2)
    path = Path(module.__file__)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "namu.cli", "run", f"{path}:variadic", "-i", "first=1", "-i", "rest=[2, 3]",
                           "-i", "scale=2", "-i", 'named={"q": 4}', "--json"], capture_output=True, text=True, env=env, cwd=path.parent)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["value"] == [12, [["q", 4]], 2]


def test_star_and_double_star_spread_static_shapes_into_task_calls(module) -> None:
    for executor in ("kernel", "reference"):
        assert namu.compile(module.spread).run(5, executor=executor).value == module.spread.fn(5) == (520, 560, 127, 534)


def test_a_spread_that_does_not_fit_the_task_is_a_compile_error(tmp_path: Path) -> None:
    bad = _import(tmp_path / "namu_spread_bad.py", SOURCE + "\n\n@namu.workflow\ndef wrong(n: int):\n    return place(*(n, 1, 2))\n")
    with pytest.raises(namu.WorkflowSyntaxError, match="place\\(\\): too many positional arguments"):
        namu.compile(bad.wrong)
