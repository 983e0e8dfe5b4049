"""Differential tests: a compiled workflow means what its body means as plain Python.

For every construct namu accepts, ``plain(wf, ...)`` (the body run as Python, tasks and
sub-workflows called directly) and the compiled run (both executors, via ``run_both``)
must give equal values of identical types, or raise the same exception type.
"""

import asyncio
import collections

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import namu
from tests.frontend import wf_samples as ws
from tests.frontend.wf_samples import (
    AVAILABLE_EXECUTORS,
    EXECUTOR_PARAMS,
    add,
    differential,
    plain,
    run_both,
    same,
)

SETTINGS = settings(max_examples=30, deadline=None)
small = st.integers(-50, 50)
floats = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)

# module-level literal constants a workflow may read
LIMIT = 10
RATE = 0.5
GREETING = "hello"
PRIMES = [2, 3, 5, 7]
TABLE = {"a": 1, "b": 2}
PAIR_CONST = (4, "four")
ENABLED = True
NOTHING = None


# ------------------------------------------------------------------ tasks used below
@namu.task
def divmod_t(a: int, b: int) -> tuple[int, int]:
    return a // b, a % b


@namu.task
def greet(name: str, punct: str = "!") -> str:
    return "hi " + name + punct


@namu.task
def scale(x: int, factor: int = 2, offset: int = 0) -> int:
    return x * factor + offset


@namu.task
def as_list(n: int) -> list[int]:
    return list(range(n))


@namu.task
def mapping(x: int) -> dict:
    return {"x": x, "double": 2 * x}


@namu.task
def untyped(x):
    return (x, str(x))


@namu.task
async def async_double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


CALLS: collections.Counter = collections.Counter()


@namu.task
def probe(x: int) -> bool:
    """A task with a side effect (a call counter) for short-circuit tests."""
    CALLS["probe"] += 1
    return x > 5


@namu.task
def side_value(x: int) -> int:
    CALLS["side_value"] += 1
    return x * 100


def count_calls(fn, *args, **kwargs):
    """Calls per task made by ``fn(*args, **kwargs)``."""
    CALLS.clear()
    fn(*args, **kwargs)
    counts = dict(CALLS)
    CALLS.clear()
    return counts


def assert_same_calls(wf: namu.Workflow, *args, **kwargs):
    """The compiled run makes exactly the task calls the plain run makes, per executor."""
    expected = count_calls(plain, wf, *args, **kwargs)
    art = wf.compile()
    for executor in AVAILABLE_EXECUTORS:
        got = count_calls(art.run, *args, executor=executor, **kwargs)
        assert got == expected, (executor, got, expected)
    return expected


# ------------------------------------------------------------------ arithmetic (hypothesis)
@SETTINGS
@given(a=small, b=small)
def test_int_arithmetic(a, b):
    differential(ws.int_arith, a, b)


@SETTINGS
@given(a=small, b=small)
def test_int_division_and_modulo(a, b):
    """/, // and % on ints, including b == 0 (ZeroDivisionError both ways)."""
    differential(ws.int_div, a, b)


@SETTINGS
@given(a=st.integers(-10, 10), b=st.integers(0, 6))
def test_int_power(a, b):
    differential(ws.int_pow, a, b)


@SETTINGS
@given(x=floats, y=floats)
def test_float_arithmetic(x, y):
    differential(ws.float_arith, x, y)


@SETTINGS
@given(x=st.floats(0, 100), y=st.floats(-3, 3))
def test_float_power(x, y):
    differential(ws.float_pow, x, y)


@SETTINGS
@given(a=small, x=floats)
def test_mixed_int_float_arithmetic(a, x):
    differential(ws.mixed_arith, a, x)


@SETTINGS
@given(p=st.booleans(), q=st.booleans())
def test_bool_arithmetic(p, q):
    differential(ws.bool_arith, p, q)


@SETTINGS
@given(a=small, b=small, c=small)
def test_operator_precedence(a, b, c):
    differential(ws.precedence, a, b, c)


def test_division_by_zero_raises_zero_division_error():
    for args in [(1, 0), (0, 0), (-7, 0)]:
        kind, exc = differential(ws.int_div, *args)
        assert (kind, exc) == ("raises", ZeroDivisionError)
    kind, exc = differential(ws.float_arith, 1.0, 0.0)
    assert (kind, exc) == ("raises", ZeroDivisionError)


def test_division_results_have_python_types():
    value = run_both(ws.int_div, 7, 2).value
    assert same(value, (3.5, 3, 1))
    value = run_both(ws.int_div, -7, 2).value
    assert same(value, (-3.5, -4, 1))  # Python floors, ONNX would truncate
    value = run_both(ws.int_div, 7, -2).value
    assert same(value, (-3.5, -4, -1))


# ------------------------------------------------------------------ comparisons (hypothesis)
@SETTINGS
@given(a=small, b=small)
def test_int_comparisons(a, b):
    differential(ws.int_compare, a, b)


@SETTINGS
@given(x=floats, y=floats)
def test_float_comparisons(x, y):
    differential(ws.float_compare, x, y)


@SETTINGS
@given(a=small, x=st.one_of(floats, small.map(float)))
def test_mixed_comparisons(a, x):
    differential(ws.mixed_compare, a, x)


@SETTINGS
@given(a=st.integers(-5, 5), b=st.integers(-5, 5), c=st.integers(-5, 5))
def test_chained_comparisons(a, b, c):
    differential(ws.chained_compare, a, b, c)


@SETTINGS
@given(p=st.booleans(), q=st.booleans(), r=st.booleans())
def test_bool_operators(p, q, r):
    differential(ws.bool_ops, p, q, r)


@SETTINGS
@given(a=small, b=small)
def test_bool_operators_on_comparisons(a, b):
    differential(ws.compare_bool_ops, a, b)


def test_large_int_float_equality_is_exact():
    @namu.workflow
    def wf(a: int, x: float):
        return a == x, a > x

    differential(wf, 2**53 + 1, 2.0**53)


# ------------------------------------------------------------------ short-circuit
@namu.workflow
def and_task(a: int) -> bool:
    return a > 0 and probe(a)


@namu.workflow
def or_task(a: int) -> bool:
    return a > 0 or probe(a)


@namu.workflow
def and_chain(a: int, b: int) -> bool:
    return probe(a) and probe(b) and a < b


@namu.workflow
def or_then_and(a: int, b: int) -> bool:
    return a == b or probe(a) and probe(b)


@pytest.mark.parametrize("a", [-3, 0, 3, 9])
def test_and_does_not_call_the_right_side_when_left_is_false(a):
    differential(and_task, a)
    calls = assert_same_calls(and_task, a)
    assert calls == ({} if a <= 0 else {"probe": 1})


@pytest.mark.parametrize("a", [-3, 0, 3, 9])
def test_or_does_not_call_the_right_side_when_left_is_true(a):
    differential(or_task, a)
    calls = assert_same_calls(or_task, a)
    assert calls == ({"probe": 1} if a <= 0 else {})


@pytest.mark.parametrize("a,b", [(1, 9), (9, 1), (7, 9), (9, 7), (6, 6)])
def test_and_chain_of_task_calls(a, b):
    differential(and_chain, a, b)
    assert_same_calls(and_chain, a, b)


@pytest.mark.parametrize("a,b", [(3, 3), (1, 9), (9, 1), (7, 9)])
def test_or_then_and_with_task_calls(a, b):
    differential(or_then_and, a, b)
    assert_same_calls(or_then_and, a, b)


@namu.workflow
def guarded_division(x: int) -> bool:
    return x != 0 and 10 // x > 1


@namu.workflow
def guarded_index(xs: list[int]) -> bool:
    return len(xs) > 0 and xs[0] > 1


@pytest.mark.parametrize("x", [2, 20])
def test_guarded_division_when_guard_holds(x):
    differential(guarded_division, x)


def test_and_short_circuits_a_raising_operator():
    differential(guarded_division, 0)


def test_and_short_circuits_a_raising_subscript():
    differential(guarded_index, [])


def test_chained_comparison_short_circuits():
    @namu.workflow
    def wf(a: int, b: int, c: int) -> bool:
        return a < b < 10 // c

    differential(wf, 5, 1, 0)


def test_conditional_expression_evaluates_one_branch():
    @namu.workflow
    def wf(a: int) -> int:
        return side_value(a) if a > 0 else side_value(-a) + 1

    for a in (-4, 0, 4):
        differential(wf, a)
        assert assert_same_calls(wf, a) == {"side_value": 1}


def test_conditional_expression_guards_a_raising_operator():
    @namu.workflow
    def wf(x: int) -> int:
        return 100 // x if x != 0 else -1

    for x in (0, 3, -3):
        differential(wf, x)


def test_conditional_expression_on_non_bool_and_mixed_types():
    @namu.workflow
    def wf(xs: list[int], s: str):
        a = 1 if xs else 2
        b = "yes" if s else 0
        return a, b

    for xs, s in [([], ""), ([0], "x"), ([1, 2], "")]:
        differential(wf, xs, s)


# ------------------------------------------------------------------ strings
@namu.workflow
def strings(s: str, t: str):
    return s + t, s == t, s != t, s + "-" + t, greet(s) + t, len(s + t)


@SETTINGS
@given(s=st.text(max_size=5), t=st.text(max_size=5))
def test_string_concat_and_equality(s, t):
    differential(strings, s, t)


def test_string_equality_of_equal_strings():
    differential(strings, "ab", "ab")


# ------------------------------------------------------------------ unpacking, containers
def test_tuple_unpacking_from_literals():
    @namu.workflow
    def wf(x: int, y: int):
        a, b = x, y
        a, b = b, a  # swap: both right sides are evaluated first
        (c, d), e = (a, add(b, 1)), 7
        [f, g] = [c, d]
        return a, b, c, d, e, f, g

    differential(wf, 1, 2)


def test_tuple_unpacking_from_a_task():
    @namu.workflow
    def wf(a: int, b: int):
        q, r = divmod_t(a, b)
        return add(q, r), q, r

    for a, b in [(17, 5), (-17, 5), (3, 7)]:
        differential(wf, a, b)


def test_unpacking_a_task_returning_a_list():
    @namu.workflow
    def wf(n: int) -> int:
        a, b, c = as_list(n)
        return a + b * c

    differential(wf, 3)
    differential(wf, 4)  # ValueError: too many values to unpack, both ways


def test_unpacking_an_untyped_task_result():
    @namu.workflow
    def wf(x: int):
        n, s = untyped(x)
        return s, n

    differential(wf, 5)


def test_chained_assignment():
    @namu.workflow
    def wf(x: int):
        a = b = add(x, 1)
        return a, b

    differential(wf, 4)


def test_annotated_assignment():
    @namu.workflow
    def wf(x: int) -> int:
        y: int = add(x, 1)
        z: float
        return y

    differential(wf, 4)


def test_returning_a_tuple():
    @namu.workflow
    def wf(x: int):
        return x, add(x, 1), "s"

    result = differential(wf, 4)
    assert result == ("value", (4, 5, "s"))


def test_returning_a_dict():
    @namu.workflow
    def wf(x: int):
        return {"x": x, "next": add(x, 1), "name": "n"}

    assert differential(wf, 4) == ("value", {"x": 4, "next": 5, "name": "n"})
    assert wf.compile().signature.returns == "dict"


def test_returning_container_literals():
    @namu.workflow
    def wf(x: int, s: str):
        return [x, add(x, 1)], (x, s), {"k": x, "v": [s, s]}, [], [x, s, 1.5], (x,)

    differential(wf, 3, "a")


def test_returning_a_single_container():
    @namu.workflow
    def wf(x: int) -> list[int]:
        return [x, add(x, 1), 10]

    differential(wf, 3)


def test_returning_none_explicitly_and_implicitly():
    @namu.workflow
    def explicit(x: int):
        add(x, 1)
        return None

    @namu.workflow
    def bare(x: int):
        add(x, 1)
        return

    @namu.workflow
    def implicit(x: int):
        add(x, 1)

    for wf in (explicit, bare, implicit):
        assert differential(wf, 1) == ("value", None)


def test_subscript_reads():
    @namu.workflow
    def wf(xs: list[int], d: dict, s: str):
        t = (xs[0], "mid", d["k"])
        nested = {"a": [10, 20, 30]}
        return xs[0], xs[-1], xs[1], d["k"], t[1], t[2], s[0], s[-1], nested["a"][1]

    differential(wf, [3, 4, 5], {"k": "v"}, "abc")


def test_subscript_read_out_of_range_raises_index_error():
    @namu.workflow
    def wf(xs: list[int]) -> int:
        return xs[5]

    assert differential(wf, [1, 2]) == ("raises", IndexError)


def test_subscript_read_missing_key_raises_key_error():
    @namu.workflow
    def wf(d: dict) -> int:
        return d["missing"]

    assert differential(wf, {"k": 1}) == ("raises", KeyError)


def test_subscript_with_computed_index():
    @namu.workflow
    def wf(xs: list[int], i: int) -> int:
        return xs[i + 1] + xs[len(xs) - 1]

    differential(wf, [1, 2, 3, 4], 1)


def test_len():
    @namu.workflow
    def wf(xs: list[int], s: str, d: dict, n: int):
        return len(xs), len(s), len(d), len(as_list(n)), len([1, 2, 3]), len((1, "a")), len("")

    differential(wf, [1, 2], "abc", {"a": 1}, 5)


def test_module_level_literal_constants():
    @namu.workflow
    def wf(x: int):
        return (
            add(x, LIMIT),
            x * RATE,
            GREETING + "!",
            PRIMES[2],
            len(PRIMES),
            TABLE["b"],
            PAIR_CONST[1],
            ENABLED and x > 0,
            NOTHING,
        )

    differential(wf, 3)


# ------------------------------------------------------------------ calls
def test_keyword_arguments_to_tasks():
    @namu.workflow
    def wf(x: int):
        return scale(x, offset=1), scale(factor=3, x=x), scale(x, 4, offset=x), greet(name="a", punct="?")

    differential(wf, 5)


def test_task_default_arguments():
    @namu.workflow
    def wf(x: int, s: str):
        return scale(x), scale(x, 5), greet(s)

    differential(wf, 5, "bob")


@namu.workflow
def sub_scale(x: int, k: int = 3, label: str = "s") -> int:
    return scale(x, factor=k)


@namu.workflow
def sub_pair(x: int, extra: tuple[int, ...] = (1, 2)):
    return add(x, extra[0]), {"n": x}


@namu.workflow
def sub_dict(x: int):
    return {"a": add(x, 1), "b": x}


def test_sub_workflows_with_defaults_and_keywords():
    @namu.workflow
    def wf(x: int):
        a = sub_scale(x)
        b = sub_scale(x, 10)
        c = sub_scale(k=2, x=a)
        d = sub_scale(x, label="other", k=5)
        return a, b, c, d

    differential(wf, 2)


def test_sub_workflow_returning_a_tuple_and_a_dict():
    @namu.workflow
    def wf(x: int):
        first, info = sub_pair(x)
        same_again = sub_pair(x, (5,))
        d = sub_dict(first)
        return first, info["n"], same_again, d, d["a"]

    differential(wf, 2)


def test_sub_workflow_inside_a_loop_and_a_branch():
    @namu.workflow
    def wf(n: int) -> int:
        acc = 0
        i = 0
        while i < n:
            acc = sub_scale(acc, 2) + 1
            i = i + 1
        if acc > 10:
            acc = sub_scale(acc)
        return acc

    for n in (0, 1, 2, 5):
        differential(wf, n)


def test_nested_sub_workflows():
    @namu.workflow
    def middle(x: int) -> int:
        return sub_scale(x, 2) + sub_scale(x)

    @namu.workflow
    def top(x: int) -> int:
        return middle(x) + middle(add(x, 1))

    differential(top, 3)


def test_async_task():
    """namu awaits an async task where it is called (plain Python would get a coroutine)."""

    @namu.workflow
    def wf(x: int):
        y = async_double(x)
        return y, async_double(add(y, 1)), [async_double(i) for i in as_list(3)]

    def awaited(x: int):
        y = asyncio.run(async_double.fn(x))
        return y, asyncio.run(async_double.fn(y + 1)), [asyncio.run(async_double.fn(i)) for i in range(3)]

    for x in (0, 4):
        assert same(run_both(wf, x).value, awaited(x))
    assert async_double.is_async


# ------------------------------------------------------------------ statements
@namu.workflow
def documented(x: int) -> int:
    """A docstring is not a statement of the workflow.

    It spans several lines.
    """
    y = add(x, 1)
    "a bare string literal in the middle is ignored too"
    pass
    return y


def test_docstring_bare_literal_and_pass():
    differential(documented, 4)


def test_workflow_with_only_a_docstring_and_pass():
    @namu.workflow
    def wf(x: int):
        """Nothing to do."""
        pass

    assert differential(wf, 1) == ("value", None)


def test_nested_workflow_with_an_indented_docstring():
    @namu.workflow
    def wf(x: int) -> int:
        """Doc.

        More doc.
        """
        return add(x, 1)

    differential(wf, 1)


def test_nested_workflow_with_a_docstring_line_at_column_zero():
    @namu.workflow
    def wf(x: int) -> int:
        """Doc whose second line starts at column 0.
This line."""
        return add(x, 1)

    differential(wf, 1)


def test_augmented_assignment():
    @namu.workflow
    def wf(a: int, x: float):
        b = a
        b += 3
        b -= 1
        b *= add(a, 2)
        b //= 3
        b %= 7
        b **= 2
        y = x
        y += a
        y /= 4
        y *= 2
        s = "a"
        s += "b"
        return b, y, s

    for a, x in [(5, 2.5), (-4, -1.25), (0, 0.0)]:
        differential(wf, a, x)


def test_expression_statement_task_call_runs():
    @namu.workflow
    def wf(x: int) -> int:
        side_value(x)  # result unused, but the call is an effect
        side_value(x + 1)
        return x

    differential(wf, 3)
    assert assert_same_calls(wf, 3) == {"side_value": 2}


def test_inputs_by_keyword_and_defaults():
    @namu.workflow
    def wf(x: int, y: int = 10, s: str = "z") -> str:
        return greet(s, punct="?") + greet(s) if add(x, y) > 12 else s

    differential(wf, 1)
    differential(wf, 5)
    differential(wf, x=1, y=20, s="q")


@pytest.mark.parametrize("executor", EXECUTOR_PARAMS)
def test_workflow_call_runs_the_compiled_graph(executor):
    """``wf(...)`` compiles once and returns the same value as the plain function."""
    @namu.workflow
    def wf(x: int) -> int:
        return add(x, 1) * 2

    assert wf.run(3, executor=executor).value == plain(wf, 3) == 8
    assert wf.compile() is wf.compile()


def test_unused_raising_expression_still_raises():
    @namu.workflow
    def wf(x: int) -> int:
        unused = 10 // x
        return x

    assert differential(wf, 0) == ("raises", ZeroDivisionError)


@namu.task
def pair_t(x: int) -> tuple[int, int]:
    return x, x + 1


def test_tuple_item_types_follow_constant_indexes():
    @namu.workflow
    def wf(x: int) -> int:
        t = pair_t(x)
        return t[0] + t[1] * 10

    differential(wf, 3)


def test_tuple_item_type_with_negative_constant_index():
    @namu.workflow
    def wf(x: int) -> int:
        t = pair_t(x)
        return t[-1] + 1

    differential(wf, 3)


def test_calling_a_task_through_a_module_attribute():
    @namu.workflow
    def wf(x: int) -> int:
        return ws.add(x, 1) + ws.plus(x, 2)

    differential(wf, 3)


def test_closure_literal_constants():
    k = 3
    names = ["a", "b"]
    options = {"sep": "-"}

    @namu.workflow
    def wf(x: int):
        return add(x, k), names[1], names[0] + names[1], options["sep"], len(names)

    differential(wf, 1)


def test_unicode_and_empty_string_literals():
    @namu.workflow
    def wf(s: str):
        return s + "" + "ü✓ 日本", "" == s, "é" + s

    for s in ("", "x", "ü"):
        differential(wf, s)


def test_large_integer_constants_and_results_do_not_wrap():
    @namu.workflow
    def wf(x: int):
        big = 9223372036854775807
        return big + x, big * 2, -big - 1, x**40

    differential(wf, 1)
    differential(wf, 3)


# ------------------------------------------------------------------ annotations give types
@namu.task
def untyped_record(x: int):
    return {"count": x, "name": "n" + str(x)}


@namu.task
def append_item(acc: list[int], x: int) -> list[int]:
    return [*acc, x]


@namu.task
def upto(n: int) -> list[int]:
    return list(range(n))


def test_annotation_types_an_untyped_value_for_arithmetic():
    @namu.workflow
    def wf(x: int) -> int:
        record = untyped_record(x)
        count: int = record["count"]
        return count * 2 + 1

    differential(wf, 5)


def test_annotated_empty_list_is_a_typed_loop_carried_accumulator():
    @namu.workflow
    def wf(n: int) -> list[int]:
        acc: list[int] = []
        for x in upto(n):
            acc = append_item(acc, x * x)
        return acc

    differential(wf, 4)
    differential(wf, 0)


def test_annotation_contradicting_a_known_type_is_rejected():
    @namu.workflow
    def wf(x: int) -> str:
        y: str = x
        return y

    with pytest.raises(namu.WorkflowSyntaxError, match="the annotation says str but the value is int"):
        wf.compile()


def test_annotations_follow_the_numeric_tower():
    @namu.workflow
    def wf(x: int, flag: bool) -> float:
        y: float = x  # PEP 484: an int is acceptable where a float is annotated
        z: int = flag
        return y + z

    differential(wf, 3, True)
    assert type(wf(3, True)) is int  # nothing is converted: plain Python gives 4


@namu.task
def _maybe(x: int) -> object:
    return None if x % 2 else x


@namu.task
def _names(n: int) -> list[str]:
    return [f"n{i}" for i in range(n)]


def test_membership_tests():
    @namu.workflow
    def wf(x: int, xs: list[int], word: str):
        names = _names(x)
        return x in xs, x not in xs, word in "hello world", "n1" in names, [v in xs for v in [0, 1, x]]

    for x, xs, word in ((1, [1, 2], "lo"), (3, [], "xyz"), (0, [0], "")):
        differential(wf, x, xs, word)


def test_is_none_and_is_not_none():
    @namu.workflow
    def wf(x: int):
        m = _maybe(x)
        label = "none" if m is None else "value"
        return m is None, None is m, m is not None, label, NOTHING is None

    for x in (1, 2):
        differential(wf, x)


@settings(max_examples=30, deadline=None)
@given(small, floats, st.text(max_size=5))
def test_fstrings_match_python(i, f, s):
    @namu.workflow
    def wf(i: int, f: float, s: str) -> str:
        return f"{i} {{braces}} {f:.3f} {s!r} {i:>6}|{s:<4}|{f!s} {i:#x}{'!'}"

    differential(wf, i, f, s)


@namu.task
def _is_even(x: int) -> bool:
    return x % 2 == 0


@namu.task
def _pair(x: int) -> tuple:
    return (x, -x)


@settings(max_examples=30, deadline=None)
@given(st.lists(small, max_size=8))
def test_comprehension_filters(xs):
    @namu.workflow
    def wf(xs: list[int]):
        evens = [add(x, 1) for x in xs if _is_even(x)]
        small_evens = [x for x in xs if x > -10 if _is_even(x)]
        pairs = [_pair(x) for x in xs if x != 0]
        grid = [add(x, y) for x in xs if x > 0 for y in xs if y < x]
        return evens, small_evens, pairs, grid, len([x for x in xs if x in [1, 2, 3]])

    differential(wf, xs)


def test_a_filter_runs_the_element_only_for_kept_items():
    calls: list[int] = []

    @namu.task
    def record(x: int) -> int:
        calls.append(x)
        return x

    @namu.workflow
    def wf(xs: list[int]) -> list[int]:
        return [record(x) for x in xs if x % 3 == 0]

    assert run_both(wf, [1, 3, 4, 6, 9]).value == [3, 6, 9]
    assert calls == [3, 6, 9] * 3  # kernel, reference, -O0 run


class _Record:
    def __init__(self, name: str, count: int) -> None:
        self.name = name
        self.count = count

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Record) and (self.name, self.count) == (other.name, other.count)


@namu.task
def _record(i: int) -> _Record:
    return _Record(f"r{i}", i * 2)


def test_attribute_reads():
    @namu.workflow
    def wf(n: int, z: complex):
        records = [_record(i) for i in _names_count(n)]
        names = [r.name for r in records]
        total: int = _record(n).count
        return names, total + 1, z.imag, _record(n).name

    for n in (0, 3):
        differential(wf, n, complex(1, 2))


@namu.task
def _names_count(n: int) -> list[int]:
    return list(range(n))


def test_a_missing_attribute_raises_attribute_error():
    @namu.workflow
    def wf(n: int):
        return _record(n).missing

    differential(wf, 1)
