"""Recursive workflows (self and mutual recursion) are kept as function calls and mean what
Python says: plain call against compiled runs, -O0 and -O2, both executors, on values
hypothesis draws; past the run's ``recursion_limit`` a run raises ``RecursionError``."""

from __future__ import annotations

from typing import Any

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import namu
from tests.cli.test_cli import namu_cli
from tests.frontend.wf_samples import (
    assert_python_meaning,
    compiled_samples,
)

SOURCE = '''
import namu


@namu.task
def mul(a: int, b: int) -> int:
    return a * b


@namu.task
def parse(s: str) -> int:
    return int(s)


@namu.workflow
def fact(n: int):
    if n <= 1:
        return 1
    return mul(n, fact(n - 1))


@namu.workflow
def fib(n: int) -> int:
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


@namu.workflow
def is_even(n: int):
    if n <= 0:
        return n == 0
    return is_odd(n - 1)


@namu.workflow
def is_odd(n: int):
    if n <= 0:
        return n != 0
    return is_even(n - 1)


@namu.workflow
def pair(n: int):
    """A recursive workflow returning a tuple."""
    if n <= 0:
        return 0, ""
    total, path = pair(n - 1)
    return total + n, path + str(n % 10)


@namu.workflow
def total(tree):
    """A walk over nested lists: recursion inside a generator passed to sum."""
    if isinstance(tree, list):
        return sum(total(t) for t in tree)
    return tree


@namu.workflow
def parse_all(items):
    """Recursion with a try in its body: bad leaves count as zero."""
    if isinstance(items, list):
        return [parse_all(i) for i in items]
    try:
        return parse(items)
    except ValueError:
        return 0


@namu.workflow
def facts(ns: list[int]):
    """Calls of a recursive workflow from a fan-out of a non-recursive one."""
    return [fact(n) for n in ns], is_even(len(ns))
'''

NAMES = ("fact", "fib", "is_even", "pair", "total", "parse_all", "facts")


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return compiled_samples(tmp_path_factory.mktemp("recursion"), "namu_recursion_samples", SOURCE, NAMES)


SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
trees = st.recursive(st.integers(-100, 100), lambda children: st.lists(children, max_size=4), max_leaves=12)
text_trees = st.recursive(st.sampled_from(["1", "42", "x", "-7", ""]), lambda children: st.lists(children, max_size=3), max_leaves=8)


@SETTINGS
@given(n=st.integers(-3, 40))
def test_self_and_mutual_recursion(module: Any, n: int) -> None:
    for name in ("fact", "is_even", "pair"):
        assert_python_meaning(module.artifacts[name], getattr(module, name), n)
    assert_python_meaning(module.artifacts["fib"], module.fib, n % 12)


@SETTINGS
@given(tree=trees, texts=text_trees, ns=st.lists(st.integers(0, 12), max_size=5))
def test_recursion_over_nested_values_with_fan_outs_and_try(module: Any, tree: Any, texts: Any, ns: list[int]) -> None:
    assert_python_meaning(module.artifacts["total"], module.total, tree)
    assert_python_meaning(module.artifacts["parse_all"], module.parse_all, texts)
    assert_python_meaning(module.artifacts["facts"], module.facts, ns)


def test_recursive_calls_stay_calls_and_the_artifact_is_valid_onnx(module: Any, tmp_path: Any) -> None:
    art = module.artifacts["is_even"][1]
    onnx.checker.check_model(art.to_proto(), full_check=True)  # no function references itself
    assert {f.name for f in art.model.functions.values()} >= {"is_even", "is_odd"}
    path = tmp_path / "even.onnx"
    art.save(path)
    assert namu.load(path).run(9).value is False


def test_past_the_recursion_limit_a_run_raises_recursion_error(module: Any) -> None:
    art = module.artifacts["fact"][0]
    with pytest.raises(RecursionError, match="more than 1000 sub-workflow calls"):
        art.run(1500)
    for executor in ("kernel", "reference"):
        with pytest.raises(RecursionError, match="more than 5 sub-workflow calls"):
            art.run(9, recursion_limit=5, executor=executor)
        assert art.run(6, recursion_limit=6, executor=executor).value == 720


def test_the_kernel_recurses_on_heap_frames_past_pythons_own_stack(module: Any) -> None:
    """Deeper than Python's own limit (1000 frames) would allow a Python recursion."""
    art = module.artifacts["is_even"][0]
    assert art.run(5001, recursion_limit=6000).value is False


def test_namu_run_takes_the_recursion_limit(module: Any, tmp_path: Any) -> None:
    path = tmp_path / "fact_cli.py"
    path.write_text(SOURCE)
    ok = namu_cli("run", f"{path}:fact", "-i", "n=5", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "120"
    deep = namu_cli("run", f"{path}:fact", "-i", "n=50", "--recursion-limit", "10", cwd=tmp_path)
    assert deep.returncode != 0 and "RecursionError" in deep.stderr and "more than 10" in deep.stderr
