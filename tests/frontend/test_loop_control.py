"""``break``, ``continue``, ``return`` inside loops and ``for``/``while ... else`` mean what
Python says: plain call against compiled runs, -O0 and -O2, both executors, on values
hypothesis draws; in sub-workflows too."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import namu
from tests.frontend.wf_samples import (
    assert_python_meaning,
    compiled_samples,
)

SOURCE = '''
import namu

CALLS = []


@namu.task
def weigh(x: int) -> int:
    CALLS.append(x)
    return x * 3


@namu.workflow
def first_over(xs: list[int], limit: int):
    for x in xs:
        if weigh(x) > limit:
            return x
    return -1


@namu.workflow
def skip_and_stop(xs: list[int], stop: int):
    total = 0
    for x in xs:
        if x < 0:
            continue
        if x > stop:
            break
        total = total + x
    else:
        total = total + 1000
    return total


@namu.workflow
def search(n: int):
    i = 0
    found = None
    while True:
        i = i + 1
        if i % 7 == n % 7:
            found = i
            break
        if i > 20:
            break
    k = 0
    evens = 0
    while k < n % 12:
        k = k + 1
        if k % 2:
            continue
        evens = evens + k
    else:
        evens = -evens
    return found, i, evens


@namu.workflow
def nested(rows: list[list[int]]):
    seen = 0
    for r in rows:
        for v in r:
            if v == 0:
                return "zero", seen
            if v < 0:
                break
            seen = seen + 1
        else:
            seen = seen + 100
    return "none", seen


@namu.workflow
def early(xs: list[int], limit: int):
    """A sub-workflow whose loop returns, called from a loop that breaks on its answer."""
    hits = 0
    for x in xs:
        if first_over(xs[hits:], limit + x) == -1:
            break
        hits = hits + 1
    return hits, first_over(xs, limit)


@namu.workflow
def strings(words: list[str]):
    out = ""
    for w in words:
        if not w:
            continue
        if w == "stop":
            break
        out = out + w[0]
    return out
'''

NAMES = ("first_over", "skip_and_stop", "search", "nested", "early", "strings")
small = st.integers(-5, 40)


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return compiled_samples(tmp_path_factory.mktemp("loops"), "namu_loop_control_samples", SOURCE, NAMES)


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@SETTINGS
@given(xs=st.lists(small, max_size=6), n=small)
def test_for_loops_that_return_continue_break(module: Any, xs: list[int], n: int) -> None:
    for name in ("first_over", "skip_and_stop", "early"):
        assert_python_meaning(module.artifacts[name], getattr(module, name), xs, n)


@SETTINGS
@given(n=st.integers(-50, 50))
def test_while_loops_that_break_and_continue_with_else(module: Any, n: int) -> None:
    assert_python_meaning(module.artifacts["search"], module.search, n)


@SETTINGS
@given(rows=st.lists(st.lists(st.integers(-2, 3), max_size=4), max_size=4), words=st.lists(st.sampled_from(["", "ab", "stop", "cd"]), max_size=5))
def test_nested_loops_and_strings(module: Any, rows: list[list[int]], words: list[str]) -> None:
    assert_python_meaning(module.artifacts["nested"], module.nested, rows)
    assert_python_meaning(module.artifacts["strings"], module.strings, words)


def test_a_return_stops_the_loop_before_more_calls(module: Any) -> None:
    """The calls after the one that returns are not made (the loop is sequential)."""
    for executor in ("kernel", "reference"):
        module.CALLS.clear()
        assert module.artifacts["first_over"][1].run([1, 5, 9, 12], 10, executor=executor).value == 5
        assert module.CALLS == [1, 5]


def test_a_loop_without_jumps_still_fans_out(module: Any) -> None:
    @namu.workflow
    def fan(xs: list[int]) -> list[int]:
        return [x + 1 for x in xs]

    assert "Map" in [n.op_type for n in namu.compile(fan).model.graph]
    ops = [n.op_type for n in module.artifacts["first_over"][0].model.graph]
    assert "Loop" in ops and "Map" not in ops  # a for loop that returns runs in order
