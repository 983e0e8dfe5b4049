"""Control flow: if/elif/else, while, for (sequential and fan-out), comprehensions, errors.

Every execution runs on both executors through ``run_both`` (the reference executor
alone until the native kernel is built), and is compared with the plain Python meaning.
"""

import os
import re
from pathlib import Path

import onnx_ir as ir
import pytest

import namu
from namu.ir.opsets import NAMU_DOMAIN
from tests.frontend.wf_samples import (
    AVAILABLE_EXECUTORS,
    EXECUTOR_PARAMS,
    add,
    differential,
    numbers,
    plain,
    plus,
    run_both,
    same,
    split,
)

HERE = os.path.abspath(__file__)
_LINES = Path(HERE).read_text(encoding="utf-8").splitlines()


def marker_line(tag: str) -> int:
    """The 1-based line number of the unique line carrying the comment ``# <tag>``."""
    pattern = re.compile(rf"#\s<{re.escape(tag)}>(\s|$)")
    hits = [i + 1 for i, line in enumerate(_LINES) if pattern.search(line)]
    assert len(hits) == 1, f"marker <{tag}> found {len(hits)} times"
    return hits[0]


def span_of(tag: str, construct: str) -> str:
    """``"file:line:col"`` (col 1-based) of ``construct`` on the line marked ``tag``."""
    line = marker_line(tag)
    return f"{HERE}:{line}:{_LINES[line - 1].index(construct) + 1}"


def op_types(art: namu.Artifact) -> list[tuple[str, str]]:
    """(domain, op_type) of every node of the main graph and all its subgraphs."""
    return [(n.domain, n.op_type) for n in ir.traversal.RecursiveGraphIterator(art.model.graph)]


def top_level_ops(art: namu.Artifact) -> list[tuple[str, str]]:
    return [(n.domain, n.op_type) for n in art.model.graph]


CALLS: list[tuple[str, int]] = []


def record(name: str, x: int) -> None:
    CALLS.append((name, x))


def calls_of(fn, *args, **kwargs) -> list[tuple[str, int]]:
    """The task calls (in order) made by ``fn(*args, **kwargs)``."""
    CALLS.clear()
    try:
        fn(*args, **kwargs)
    finally:
        got = list(CALLS)
        CALLS.clear()
    return got


# ------------------------------------------------------------------ tasks
@namu.task
def logged_plus(a: int, b: int) -> int:
    record("logged_plus", b)
    return a + b


@namu.task
def below(i: int, n: int) -> bool:
    record("below", i)
    return i < n


@namu.task
def visit(x: int) -> None:
    record("visit", x)


@namu.task
def double(x: int) -> int:
    return 2 * x


@namu.task
def total(xs: list[int]) -> int:
    return sum(xs)


@namu.task(on_error="skip")
def split_skipping(x: int) -> list[int]:
    if x == 2:
        raise ValueError("cannot split 2")
    return [10 * x, 10 * x + 1, 10 * x + 2]


@namu.task(on_error="skip")
def maybe_square(x: int) -> int:
    if x % 2:
        raise RuntimeError(f"odd {x}")
    return x * x


@namu.task
def fragile(x: int) -> int:
    record("fragile", x)
    if x == 3:
        raise KeyError("three is unlucky")
    return x


# ------------------------------------------------------------------ required scenarios
@namu.workflow
def fib(n: int) -> int:
    a, b = 0, 1
    i = 0
    while i < n:
        a, b = b, a + b
        i = i + 1
    return a


def test_fibonacci_while_loop_returns_21():
    assert run_both(fib, 8).value == 21
    for n in (0, 1, 2, 8, 20):
        differential(fib, n)
    assert ("", "Loop") in top_level_ops(fib.compile())


@namu.workflow
def collatz_steps(n: int) -> int:
    steps = 0
    while n != 1:
        if n % 2 == 0:
            n = n // 2
        else:
            n = 3 * n + 1
        steps = steps + 1
    return steps


def test_collatz_if_inside_while_returns_8():
    assert run_both(collatz_steps, 6).value == 8
    for n in (1, 6, 7, 27):
        differential(collatz_steps, n)


@namu.workflow
def classify(x: int) -> str:
    if x > 0:
        kind = "positive"
    elif x < 0:
        kind = "negative"
    else:
        kind = "zero"
    return kind


def test_elif_chain_classifies_sign():
    assert run_both(classify, 5).value == "positive"
    assert run_both(classify, -5).value == "negative"
    assert run_both(classify, 0).value == "zero"
    for x in (1, -1, 0):
        differential(classify, x)


@namu.workflow
def chained_fan_outs(n: int) -> list[int]:
    return [y for x in numbers(n) for y in split(x)]


@namu.workflow
def chained_fan_outs_skipping(n: int) -> list[int]:
    return [y for x in numbers(n) for y in split_skipping(x)]  # <skip-call>


def test_chained_fan_outs():
    assert numbers(4) == [1, 2, 3] and split(2) == [20, 21, 22]
    result = run_both(chained_fan_outs, 4)
    assert result.value == [10, 11, 12, 20, 21, 22, 30, 31, 32]
    assert result.skipped == []
    assert plain(chained_fan_outs, 4) == result.value
    ops = top_level_ops(chained_fan_outs.compile())
    assert (NAMU_DOMAIN, "Map") in ops


def test_chained_fan_outs_with_skip():
    result = run_both(chained_fan_outs_skipping, 4)
    assert result.value == [10, 11, 12, 30, 31, 32]
    assert len(result.skipped) == 1
    item = result.skipped[0]
    assert isinstance(item, namu.SkippedItem)
    assert item.task == "split_skipping"
    assert item.index == 1  # x == 2 is the second item of numbers(4)
    assert item.span == span_of("skip-call", "split_skipping(x)")
    assert HERE in item.span and f":{marker_line('skip-call')}:" in item.span
    assert "ValueError" in item.error and "cannot split 2" in item.error


# ------------------------------------------------------------------ for loops
@namu.workflow
def running_sum(xs: list[int]) -> int:
    acc = 0
    for x in xs:
        acc = logged_plus(acc, x)
    return acc


def test_for_loop_with_carried_accumulator_is_sequential():
    xs = [3, 1, 4, 1, 5]
    assert run_both(running_sum, xs).value == 14
    differential(running_sum, [])
    art = running_sum.compile()
    assert any(op == "Loop" for _, op in top_level_ops(art))
    assert (NAMU_DOMAIN, "Map") not in op_types(art)
    # calls happen one after the other, in order, exactly as in Python
    expected = calls_of(plain, running_sum, xs)
    for executor in AVAILABLE_EXECUTORS:
        assert calls_of(art.run, xs, executor=executor) == expected


def test_for_loop_without_carried_variables_fans_out():
    @namu.workflow
    def wf(xs: list[int]) -> int:
        for x in xs:
            visit(double(x))
        return len(xs)

    art = wf.compile()
    maps = [n for n in art.model.graph if n.op_type == "Map"]
    assert [n.domain for n in maps] == [NAMU_DOMAIN]
    assert not any(op == "Loop" for _, op in op_types(art))
    xs = [1, 2, 3]
    expected = calls_of(plain, wf, xs)
    assert run_both(wf, xs).value == 3
    for executor in AVAILABLE_EXECUTORS:
        assert sorted(calls_of(art.run, xs, executor=executor)) == sorted(expected)


def test_for_loop_assigning_a_variable_read_after_it_is_sequential():
    """`last = f(x)` read after the loop carries `last`: the result is the last item's."""

    @namu.workflow
    def wf(xs: list[int]) -> int:
        last = -1
        for x in xs:
            last = double(x)
        return last

    for xs in ([], [4], [1, 2, 3]):
        differential(wf, xs)
    assert any(op == "Loop" for _, op in top_level_ops(wf.compile()))


def test_for_loop_over_tuples_with_unpacking():
    @namu.workflow
    def wf(pairs: list[tuple[int, int]]) -> int:
        acc = 0
        for a, b in pairs:
            acc = acc + a * b
        return acc

    differential(wf, [(1, 2), (3, 4), (5, 6)])
    differential(wf, [])


def test_for_loop_over_a_list_literal():
    @namu.workflow
    def wf(s: str) -> str:
        n = 0
        for k in [5, 6, 7]:
            n = n * 10 + k
        return s + str_of(n)

    differential(wf, "abc")


def test_sequential_for_loop_over_a_string():
    @namu.workflow
    def wf(s: str) -> str:
        out = ""
        for ch in s:
            out = ch + out
        return out

    differential(wf, "abc")
    differential(wf, "")


@namu.task
def str_of(x: int) -> str:
    return str(x)


def test_for_loop_over_a_tuple_literal_with_a_variable():
    @namu.workflow
    def wf(x: int) -> int:
        acc = 0
        for k in (1, 2, x):
            acc = plus(acc, k)
        return acc

    differential(wf, 5)


def test_sequential_for_loop_over_a_dict():
    @namu.workflow
    def wf(d: dict) -> int:
        acc = 0
        for k in d:
            acc = plus(acc, d[k])
        return acc

    differential(wf, {"a": 1, "b": 2})


def test_fan_out_over_a_dict_iterates_keys():
    @namu.workflow
    def wf(d: dict) -> list:
        return [k for k in d]

    differential(wf, {"a": 1, "b": 2})


def test_fan_out_loop_with_tuple_target():
    @namu.workflow
    def wf(pairs: list[tuple[int, int]]) -> int:
        for a, b in pairs:
            visit(plus(a, b))
        return len(pairs)

    pairs = [(1, 2), (3, 4)]
    differential(wf, pairs)
    expected = calls_of(plain, wf, pairs)
    art = wf.compile()
    for executor in AVAILABLE_EXECUTORS:
        assert sorted(calls_of(art.run, pairs, executor=executor)) == sorted(expected)


def test_loop_carried_list_and_tuple_values():
    @namu.workflow
    def wf(n: int):
        xs = numbers(n)
        t = (0, "zero")
        i = 0
        while i < 3:
            xs = numbers(len(xs) + 2)
            t = (i, "i")
            i = i + 1
        return xs, t

    for n in (1, 4):
        differential(wf, n)


def test_for_loop_reading_previous_iteration():
    @namu.workflow
    def wf(xs: list[int]) -> list[int]:
        prev = 0
        diffs = [0]  # an empty `[]` has no element type: see the report
        for x in xs:
            diffs = append(diffs, x - prev)
            prev = x
        return diffs

    differential(wf, [1, 4, 9, 16])


@namu.task
def append(xs: list[int], x: int) -> list[int]:
    return [*xs, x]


def test_nested_for_loops_with_carried_accumulator():
    @namu.workflow
    def wf(xs: list[int], ys: list[int]) -> int:
        acc = 0
        for x in xs:
            for y in ys:
                acc = plus(acc, x * y)
            acc = acc + 1
        return acc

    differential(wf, [1, 2, 3], [10, 20])
    differential(wf, [], [10])
    differential(wf, [1, 2], [])


def test_while_inside_for_and_for_inside_while():
    @namu.workflow
    def wf(xs: list[int], n: int) -> int:
        acc = 0
        for x in xs:
            i = 0
            while i < x:
                acc = acc + i
                i = i + 1
        j = 0
        while j < n:
            for x in xs:
                acc = plus(acc, x)
            j = j + 1
        return acc

    differential(wf, [3, 0, 2], 2)


def test_nested_while_loops():
    @namu.workflow
    def wf(n: int) -> int:
        count = 0
        i = 0
        while i < n:
            j = 0
            while j < i:
                count = count + j
                j = j + 1
            i = i + 1
        return count

    for n in (0, 1, 5):
        differential(wf, n)


def test_loop_whose_body_contains_a_comprehension():
    @namu.workflow
    def wf(xs: list[int], ys: list[int]) -> int:
        acc = 0
        for x in xs:
            acc = plus(acc, total([double(x * y) for y in ys]))
        i = 0
        while i < 2:
            acc = acc + len([y for y in ys])
            i = i + 1
        return acc

    differential(wf, [1, 2], [3, 4, 5])


# ------------------------------------------------------------------ while
@namu.workflow
def count_up(n: int) -> int:
    i = 0
    while below(i, n):
        i = add(i, 1)
    return i


@pytest.mark.parametrize("n", [0, 1, 4])
def test_while_condition_task_is_called_n_plus_one_times(n):
    differential(count_up, n)
    expected = calls_of(plain, count_up, n)
    assert len(expected) == n + 1
    art = count_up.compile()
    for executor in AVAILABLE_EXECUTORS:
        assert calls_of(art.run, n, executor=executor) == expected


def test_while_loop_that_never_runs():
    differential(fib, 0)
    differential(collatz_steps, 1)


def test_while_with_non_bool_condition():
    @namu.workflow
    def wf(n: int) -> int:
        acc = 0
        while n:
            acc = acc + n
            n = n - 1
        return acc

    differential(wf, 4)
    differential(wf, 0)


def test_while_loop_with_float_accumulator():
    @namu.workflow
    def wf(n: int) -> float:
        x = 0.0
        while x < n:
            x = x + 0.5
        return x

    differential(wf, 3)


# ------------------------------------------------------------------ if / return
def test_early_return_inside_if_followed_by_more_code():
    @namu.workflow
    def wf(x: int) -> int:
        if x < 0:
            return -1
        y = double(x)
        if y > 10:
            return y
        z = add(y, 1)
        return z

    for x in (-3, 0, 2, 6):
        differential(wf, x)


def test_early_return_in_else_followed_by_more_code():
    @namu.workflow
    def wf(x: int) -> int:
        if x > 0:
            y = double(x)
        else:
            return 0
        return add(y, 1)

    for x in (-1, 0, 5):
        differential(wf, x)


def test_if_returning_without_else_at_the_end_returns_none_otherwise():
    @namu.workflow
    def wf(x: int):
        if x > 0:
            return double(x)

    for x in (-1, 3):
        differential(wf, x)


def test_if_else_both_returning():
    @namu.workflow
    def wf(x: int):
        if x > 0:
            return double(x)
        else:
            return add(x, 100)

    for x in (-1, 0, 5):
        differential(wf, x)


def test_if_elif_else_all_returning_different_shapes():
    @namu.workflow
    def wf(x: int):
        if x > 0:
            return x, "positive"
        elif x < 0:
            return {"neg": x}
        else:
            return "zero"

    for x in (-2, 0, 2):
        differential(wf, x)


def test_branches_returning_tuples_of_the_same_shape():
    @namu.workflow
    def wf(x: int):
        if x > 0:
            return x, double(x)
        return -x, 0

    for x in (-2, 3):
        differential(wf, x)


def test_early_return_nested_in_two_ifs():
    @namu.workflow
    def wf(a: int, b: int) -> int:
        if a > 0:
            if b > 0:
                return 1
        return 2

    for a, b in [(1, 1), (1, 0), (0, 1)]:
        differential(wf, a, b)


def test_early_return_in_elif():
    @namu.workflow
    def wf(x: int) -> str:
        if x > 10:
            kind = "big"
        elif x > 0:
            return "small"
        else:
            kind = "non-positive"
        return kind + "!"

    for x in (20, 5, -5):
        differential(wf, x)


def test_if_without_else_keeps_the_previous_value():
    @namu.workflow
    def wf(x: int) -> int:
        y = 1
        if x > 3:
            y = double(x)
        return y + x

    for x in (0, 5):
        differential(wf, x)


def test_if_with_effect_only_branch():
    @namu.workflow
    def wf(x: int) -> int:
        if x > 0:
            visit(x)
        else:
            visit(-x)
            visit(0)
        return x

    art = wf.compile()
    for x in (-2, 2):
        differential(wf, x)
        expected = calls_of(plain, wf, x)
        for executor in AVAILABLE_EXECUTORS:
            # independent calls in one branch may be scheduled in any order
            assert sorted(calls_of(art.run, x, executor=executor)) == sorted(expected)


@pytest.mark.parametrize(
    "value",
    [[], [0], [1, 2], "", "a", 0, 7, -1],
    ids=repr,
)
def test_if_on_non_bool_values(value):
    @namu.workflow
    def on_list(v: list[int]) -> str:
        if v:
            return "truthy"
        return "falsy"

    @namu.workflow
    def on_str(v: str) -> str:
        if v:
            return "truthy"
        return "falsy"

    @namu.workflow
    def on_int(v: int) -> str:
        if v:
            return "truthy"
        return "falsy"

    wf = {list: on_list, str: on_str, int: on_int}[type(value)]
    differential(wf, value)
    assert run_both(wf, value).value == ("truthy" if value else "falsy")


def test_if_on_a_task_result_and_not():
    @namu.workflow
    def wf(n: int) -> int:
        xs = numbers(n)
        if not xs:
            return -1
        if total(xs) > 5:
            return 1
        return 0

    for n in (0, 1, 3, 5):
        differential(wf, n)


# ------------------------------------------------------------------ comprehensions
def test_comprehension_over_a_workflow_parameter():
    @namu.workflow
    def wf(xs: list[int]) -> list[int]:
        return [double(x) for x in xs]

    differential(wf, [1, 2, 3])
    differential(wf, [])
    assert (NAMU_DOMAIN, "Map") in top_level_ops(wf.compile())


def test_comprehension_over_a_list_literal():
    @namu.workflow
    def wf(k: int) -> list[int]:
        return [add(x, k) for x in [1, 2, 3]]

    differential(wf, 10)


def test_comprehension_without_task_calls_and_with_captures():
    @namu.workflow
    def wf(xs: list[int], k: int):
        return [x * k + 1 for x in xs], [x > k for x in xs]

    differential(wf, [1, 5, 9], 4)


def test_comprehension_with_tuple_target():
    @namu.workflow
    def wf(pairs: list[tuple[int, int]]) -> list[int]:
        return [add(a, b) for a, b in pairs]

    differential(wf, [(1, 2), (3, 4)])


def test_nested_comprehension_producing_lists_of_lists():
    @namu.workflow
    def wf(xs: list[int], ys: list[int]) -> list[list[int]]:
        return [[x * y for y in ys] for x in xs]

    differential(wf, [1, 2], [3, 4, 5])


def test_triple_nested_generators():
    @namu.workflow
    def wf(n: int) -> list[int]:
        return [z for x in numbers(n) for y in split(x) for z in [y, -y]]

    differential(wf, 3)


def test_comprehension_variable_does_not_leak():
    @namu.workflow
    def wf(xs: list[int]) -> int:
        x = 100
        ys = [double(x) for x in xs]
        return x + len(ys)

    differential(wf, [1, 2, 3])


def test_comprehension_over_a_string():
    @namu.workflow
    def wf(s: str) -> list[str]:
        return [c + c for c in s]

    differential(wf, "abc")


# ------------------------------------------------------------------ skip / errors
def test_skip_in_a_plain_comprehension_reports_each_index():
    @namu.workflow
    def wf(xs: list[int]) -> list[int]:
        return [maybe_square(x) for x in xs]  # <skip-square>

    result = run_both(wf, [1, 2, 3, 4])
    assert result.value == [4, 16]
    assert [s.index for s in result.skipped] == [0, 2]
    assert all(s.task == "maybe_square" for s in result.skipped)
    assert all(s.span == span_of("skip-square", "maybe_square(x)") for s in result.skipped)
    assert [s.error for s in result.skipped] == ["RuntimeError: odd 1", "RuntimeError: odd 3"]


@pytest.mark.parametrize("executor", EXECUTOR_PARAMS)
def test_skip_task_failing_outside_a_fan_out_raises_task_error(executor):
    @namu.workflow
    def wf(x: int) -> int:
        return maybe_square(x)  # <skip-outside>

    assert wf.run(2, executor=executor).value == 4
    with pytest.raises(namu.TaskError) as info:
        wf.run(3, executor=executor)
    err = info.value
    assert err.task == "maybe_square"
    assert err.span == span_of("skip-outside", "maybe_square(x)")
    assert isinstance(err.__cause__, RuntimeError)


@namu.workflow
def fragile_sum(xs: list[int]) -> int:
    acc = 0
    for x in xs:
        acc = plus(acc, fragile(x))  # <fragile-call>
    return acc


@pytest.mark.parametrize("executor", EXECUTOR_PARAMS)
def test_task_raising_inside_a_loop(executor):
    xs = [1, 2, 3, 4, 5]
    art = fragile_sum.compile()
    CALLS.clear()
    result = None
    with pytest.raises(namu.TaskError) as info:
        result = art.run(xs, executor=executor)
    assert result is None  # no partial result
    # the loop stopped at the failing item, exactly as plain Python does
    compiled_calls = list(CALLS)
    CALLS.clear()
    with pytest.raises(KeyError):
        plain(fragile_sum, xs)
    assert compiled_calls == list(CALLS) == [("fragile", 1), ("fragile", 2), ("fragile", 3)]
    CALLS.clear()
    err = info.value
    assert not isinstance(err, namu.TaskTimeoutError)
    assert err.task == "fragile"
    line = marker_line("fragile-call")
    assert HERE in err.span and f":{line}:" in err.span
    assert err.span == span_of("fragile-call", "fragile(x)")
    assert isinstance(err.__cause__, KeyError)
    assert err.__cause__.args == ("three is unlucky",)
    assert "fragile" in str(err) and "KeyError" in str(err)
    # the artifact is still usable afterwards
    assert art.run([1, 2], executor=executor).value == 3


@pytest.mark.parametrize("executor", EXECUTOR_PARAMS)
def test_task_raising_inside_a_fan_out(executor):
    @namu.workflow
    def wf(xs: list[int]) -> list[int]:
        return [double(fragile(x)) for x in xs]  # <fragile-fanout>

    with pytest.raises(namu.TaskError) as info:
        wf.run([1, 3, 5], executor=executor)
    assert info.value.task == "fragile"
    assert info.value.span == span_of("fragile-fanout", "fragile(x)")
    assert isinstance(info.value.__cause__, KeyError)
    CALLS.clear()


@pytest.mark.parametrize("executor", EXECUTOR_PARAMS)
def test_task_raising_inside_a_sub_workflow_points_at_the_task_call(executor):
    @namu.workflow
    def inner(x: int) -> int:
        return fragile(x)  # <fragile-inner>

    @namu.workflow
    def outer(x: int) -> int:
        return add(inner(x), 1)

    assert outer.run(1, executor=executor).value == 2
    with pytest.raises(namu.TaskError) as info:
        outer.run(3, executor=executor)
    assert info.value.task == "fragile"
    assert info.value.span == span_of("fragile-inner", "fragile(x)")
    CALLS.clear()


def test_a_sequential_loop_result_matches_python_for_many_inputs():
    @namu.workflow
    def wf(xs: list[int], k: int):
        best = 0
        count = 0
        for x in xs:
            if x * k > best:
                best = x * k
                count = count + 1
            elif x == best:
                count = count + 10
        return best, count

    for xs, k in [([], 1), ([3, 1, 4, 1, 5, 9, 2, 6], 2), ([5, 5, 5], 1), ([-1, -2], -3)]:
        got = differential(wf, xs, k)
        assert got[0] == "value" and same(got[1], plain(wf, xs, k))
