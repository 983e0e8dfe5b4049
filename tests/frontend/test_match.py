"""``match`` statements and ``del`` mean what Python says: plain call against compiled
runs, -O0 and -O2, both executors, on values hypothesis draws (nested lists, dicts,
strings, numbers, None and bools)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.frontend.wf_samples import (
    assert_python_meaning,
    compiled_samples,
)

SOURCE = '''
import namu


@namu.task
def double(x):
    return x * 2


@namu.workflow
def describe(v):
    match v:
        case None:
            return "none"
        case True | False:
            return "bool " + str(v)
        case 0 | 1:
            return "small"
        case int(n) if n > 100:
            return "big " + str(double(n))
        case int() | float():
            return "number"
        case str() as s if s:
            return "str " + s
        case [x]:
            return "one " + repr(x)
        case [x, *middle, [y, z]]:
            return f"nested {x} {middle} {y} {z}"
        case (first, *rest):
            return f"many {first} {rest}"
        case {"kind": "point", "x": px, **others}:
            return f"point {px} {sorted(others)}"
        case {"kind": str(kind)}:
            return "kind " + kind
        case []:
            return "empty"
        case _:
            return "other"


@namu.workflow
def counts(values: list):
    """A match in a loop that carries values, with a capture used after its case."""
    ints, strs, other = 0, "", []
    for v in values:
        match v:
            case int(i) | float(i) if not isinstance(v, bool):
                ints = ints + 1
            case str(t):
                strs = strs + t[:1]
            case _:
                other = other + [v]
    return ints, strs, other


@namu.workflow
def deletes(n: int):
    big = double(n)
    half = big // 2
    del big
    return half
'''

NAMES = ("describe", "counts", "deletes")
leaves = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=False, width=16), st.sampled_from(["", "a", "point", "kind"]))
values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(["kind", "x", "y"]), st.one_of(children, st.sampled_from(["point", "k"])), max_size=3),
    ),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return compiled_samples(tmp_path_factory.mktemp("match"), "namu_match_samples", SOURCE, NAMES)


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@SETTINGS
@given(v=values)
def test_match_patterns_mean_python(module: Any, v: Any) -> None:
    assert_python_meaning(module.artifacts["describe"], module.describe, v)


@SETTINGS
@given(vs=st.lists(values, max_size=5), n=st.integers(-50, 50))
def test_match_in_a_loop_and_del(module: Any, vs: list[Any], n: int) -> None:
    assert_python_meaning(module.artifacts["counts"], module.counts, vs)
    assert_python_meaning(module.artifacts["deletes"], module.deletes, n)


def test_a_match_is_if_elif_in_the_ir(module: Any) -> None:
    ops = {node.op_type for node in module.artifacts["describe"][0].model.graph.all_nodes()}
    assert {"If", "IsInstance"} <= ops
