"""Starred targets (``a, *rest, b = xs``), starred items in list, tuple and set displays,
``**m`` and any keys in dict displays, and nested fields in f-string format specs mean
what Python says: plain call against compiled runs, -O0 and -O2, both executors, on
values hypothesis draws."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.frontend.wf_samples import assert_python_meaning, compiled_samples

SOURCE = '''
import namu


@namu.task
def double(x):
    return x * 2


@namu.workflow
def unpacking(xs: list, d: dict, width: int):
    first, *middle, last = xs
    head, *tail = xs
    *init, end = xs
    for a, *bs in [xs, xs[::-1]]:
        head = head if bs else a
    return first, middle, last, head, tail, init, end


@namu.workflow
def displays(xs: list, d: dict, width: int):
    a = [*xs, double(1), *xs[1:]]
    t = (*xs, 5)
    s = {*xs, 99}
    m = {1: "one", **d, "k": double(2), (1, 2): None}
    n = {**d}
    text = f"[{len(xs):>{width}}] [{xs!r:^{width}.{width}}] [{width:{'<' if width % 2 else '>'}{width + 1}}]"
    return a, t, s, m, n, text, *xs
'''

NAMES = ("unpacking", "displays")
items = st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=2)), max_size=5)
mappings = st.dictionaries(st.one_of(st.integers(0, 3), st.sampled_from(["a", "k"])), st.integers(), max_size=3)


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return compiled_samples(tmp_path_factory.mktemp("unpacking"), "namu_unpacking_samples", SOURCE, NAMES)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(xs=items, d=mappings, width=st.integers(0, 6))
def test_starred_targets_displays_and_nested_format_fields(module: Any, xs: list[Any], d: dict[Any, int], width: int) -> None:
    """Python's values, and Python's ValueError for too few items to unpack."""
    for name in NAMES:
        assert_python_meaning(module.artifacts[name], getattr(module, name), xs, d, width)
