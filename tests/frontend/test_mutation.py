"""``xs.append(v)``, ``xs[i] = v``, ``v = xs.pop()`` and the other in-place changes of a
list, set or dict the workflow made itself lower as rebindings (``xs = xs + [v]``, or a
changed copy) and mean what Python says; a change of a value something else can see is
refused with its location."""

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


@namu.task
def double(x: int) -> int:
    return x * 2


@namu.workflow
def dedupe(items: list[int]):
    out = []
    seen = set()
    for x in items:
        if x in seen:
            continue
        seen.add(x)
        out.append(double(x))
    out.extend([0, 0])
    out.insert(1, -1)
    out.sort(reverse=True)
    tail = sorted(out)
    tail.reverse()
    return out, len(seen), tail


@namu.workflow
def grow(n: int):
    xs: list[int] = []
    i = 0
    while len(xs) < n % 7:
        xs.append(i * i)
        i = i + 1
    xs.insert(-1, 99)
    return xs, f"{xs}"


@namu.workflow
def count(words: list[str]):
    counts = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    counts["total"] = len(words)
    return counts


@namu.workflow
def items(n: int, k: int, keys: list[str]):
    """Item assignment, deletion and the mutating methods that return a value."""
    xs = [0] * (n % 6)
    for i in range(n % 6):
        xs[i] = double(i)
    xs[-1] += 100
    del xs[0]
    counts = {}
    for w in keys:
        counts[w] = counts.get(w, 0) + 1
    counts[keys[0] if keys else "none"] += 5
    ys = list(range(5))
    last = ys.pop()
    first = ys.pop(k % 4)
    ys[1:3] = ["x"]
    d = {"a": 1}
    d.update({"b": n})
    got = d.setdefault("c", [])
    popped = d.pop(keys[-1] if keys else "a", None)
    s = {1, 2}
    s.discard(k)
    zs = [3, 1]
    zs.remove(k)
    return xs, counts, ys, last, first, d, got, popped, s, zs


@namu.workflow
def changes_a_list_item_in_an_expression(n: int):
    ys = [1, 2]
    total = n + ys.pop()
    return total


@namu.workflow
def changes_a_parameter(items: list[int]):
    items.append(1)
    return items


@namu.workflow
def changes_an_alias(n: int):
    xs = []
    ys = xs
    xs.append(n)
    return ys


@namu.workflow
def changes_what_a_task_saw(n: int):
    xs = [n]
    y = double(xs)
    xs.append(n)
    return xs, y
'''

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return compiled_samples(tmp_path_factory.mktemp("mutation"), "namu_mutation_samples", SOURCE, ("dedupe", "grow", "count", "items"))


@SETTINGS
@given(items=st.lists(st.integers(-3, 5), max_size=7), n=st.integers(-20, 40))
def test_changes_of_the_workflows_own_containers_mean_python(module: Any, items: list[int], n: int) -> None:
    assert_python_meaning(module.artifacts["dedupe"], module.dedupe, items)
    assert_python_meaning(module.artifacts["grow"], module.grow, n)
    assert_python_meaning(module.artifacts["count"], module.count, [str(i % 3) for i in items])


@SETTINGS
@given(n=st.integers(-3, 12), k=st.integers(-1, 4), keys=st.lists(st.sampled_from(["a", "b", "c"]), max_size=4))
def test_item_changes_and_mutating_methods_mean_python(module: Any, n: int, k: int, keys: list[str]) -> None:
    """Python's values and Python's errors (IndexError from ``xs[-1]`` on an empty list,
    ValueError from ``remove``, KeyError from ``counts[k] += 5``)."""
    assert_python_meaning(module.artifacts["items"], module.items, n, k, keys)


def test_the_changes_are_rebindings_in_the_ir(module: Any) -> None:
    ops = {n.op_type for n in module.artifacts["dedupe"][0].model.graph}
    assert "CallMethod" not in ops  # append, add, sort, ... became operators and builtins


@pytest.mark.parametrize(
    ("name", "line"),
    [("changes_a_parameter", "items.append(1)"), ("changes_an_alias", "xs.append(n)"), ("changes_what_a_task_saw", "xs.append(n)")],
)
def test_a_change_something_else_can_see_is_refused(module: Any, name: str, line: str) -> None:
    with pytest.raises(namu.WorkflowSyntaxError, match="never handed elsewhere") as info:
        namu.compile(getattr(module, name))
    assert line in info.value.source_line


def test_a_change_inside_an_expression_is_refused(module: Any) -> None:
    with pytest.raises(namu.WorkflowSyntaxError, match="as a statement") as info:
        namu.compile(module.changes_a_list_item_in_an_expression)
    assert "ys.pop()" in info.value.source_line
