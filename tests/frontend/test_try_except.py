"""``try``/``except``/``else``/``finally``, ``raise`` and ``assert`` in a workflow mean what
Python says: plain call against compiled runs, -O0 and -O2, both executors, on values
hypothesis draws -- the value or the exception type, and the task calls made, in order."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import namu
from namu.errors import WorkflowSyntaxError
from tests.frontend.wf_samples import (
    AVAILABLE_EXECUTORS,
    assert_python_meaning,
    compiled_samples,
    outcome,
    plain,
)
from tests.frontend.wf_samples import import_source as _import

SOURCE = '''
import namu

CALLS = []


class TooBig(Exception):
    pass


@namu.task
def risky(x: int) -> int:
    """Raises ValueError below zero, ZeroDivisionError at zero, TooBig above 50."""
    CALLS.append(x)
    if x < 0:
        raise ValueError(f"negative {x}")
    if x > 50:
        raise TooBig(x)
    return 100 // x


@namu.task
def note(tag: str) -> str:
    CALLS.append(tag)
    return tag


@namu.workflow
def keeps_partial(xs: list[int]):
    """What the body assigned before the exception is what the handler sees."""
    total = 0
    count = 0
    try:
        for x in xs:
            total = total + risky(x)
            count = count + 1
    except ValueError as e:
        return "value", total, count, str(e)
    except (ZeroDivisionError, TooBig):
        return "other", total, count, ""
    return "ok", total, count, ""


@namu.workflow
def ordering(x: int):
    """else and finally run as in Python, each once, in order."""
    out = "start"
    try:
        y = risky(x)
        out = out + "-body"
    except ValueError:
        note("handler")
        out = out + "-handler"
        y = -1
    else:
        note("else")
        out = out + "-else"
    finally:
        note("finally")
        out = out + "-finally"
    return out, y


@namu.workflow
def nested(x: int):
    try:
        try:
            v = risky(x)
        except ZeroDivisionError:
            v = risky(x - 1)
        finally:
            note("inner")
    except ValueError as e:
        note("outer")
        v = str(e)
    return v


@namu.workflow
def reraises(x: int):
    try:
        return risky(x)
    except ValueError:
        note("seen")
        raise
    except Exception as e:
        return repr(e)


@namu.workflow
def fan_out(xs: list[int]):
    """A fan-out inside a try stays a fan-out; its failure is caught."""
    try:
        values = [risky(x) for x in xs]
    except ArithmeticError:
        values = []
    return values


@namu.workflow
def in_loop(xs: list[int]):
    """A try in a loop body, with continue and break around it."""
    good = []
    for x in xs:
        if x == 7:
            break
        try:
            v = risky(x)
        except TooBig:
            continue
        except ValueError:
            v = 0
        good = good + [v]
    return good


@namu.workflow
def guarded_while(n: int):
    """A while loop whose condition calls a task, inside a try."""
    i = 0
    try:
        while risky(n - i) < 60:
            i = i + 1
    except ZeroDivisionError:
        i = -i
    return i


@namu.workflow
def through_finally(xs: list[int]):
    """return, break and continue leave through the finally block, as in Python."""
    out = []
    for x in xs:
        try:
            if x == 0:
                continue
            if x > 50:
                break
            out = out + [risky(x)]
        except ValueError:
            return out, "value"
        finally:
            note("f" + str(x))
    return out, "done"


@namu.workflow
def returns_through_finally(x: int):
    try:
        return risky(x)
    except TooBig:
        return -1
    finally:
        note("cleanup")


@namu.workflow
def convert(value):
    """Builtin ops' own exceptions, caught or not: int(nan) is a ValueError, int(inf) an
    OverflowError no handler takes, int([1]) a TypeError."""
    try:
        n = int(value)
    except (ValueError, TypeError) as e:
        return "not a number: " + type(value).__name__ + " " + str(len(str(e)) > 0)
    else:
        return n * 2 if n < 10**20 else -n
    finally:
        note("converted")


@namu.workflow
def raising(x: int):
    if x < 0:
        raise ValueError("negative")
    assert x != 3, "three is not allowed"
    if x > 40:
        raise TooBig(x)
    return x


@namu.workflow
def chained(x: int):
    """raise ... from: the cause is kept (compared as Python's, via the test)."""
    try:
        return risky(x)
    except ValueError as e:
        raise LookupError("wrapped") from e
    except TooBig:
        raise KeyError("quiet") from None


@namu.workflow
def catches_own_raise(x: int):
    try:
        if x % 2:
            raise KeyError(x)
        r = "even"
    except LookupError as e:
        r = "odd " + repr(e)
    return r


@namu.task(retries=1)
def fetch(url: str) -> str:
    if "bad" in url:
        raise ConnectionError("refused")
    if "slow" in url:
        raise TimeoutError("slow")
    return url.upper()


@namu.workflow
def fetch_all(urls: list[str]) -> dict:
    """The example of docs/workflows.md: containers the body made change in a loop's try
    (a parallel assignment makes them), a handler appends, finally logs."""
    pages, failed = {}, []
    for url in urls:
        try:
            pages[url] = fetch(url)
        except (TimeoutError, ConnectionError) as e:
            failed.append(f"{url}: {e}")
        finally:
            note(url)
    return {"pages": pages, "failed": failed}


@namu.workflow
def calls_sub(xs: list[int]):
    """A workflow with a try, called as a sub-workflow inside another try."""
    try:
        return keeps_partial(xs), nested(xs[0] if xs else 1)
    except TooBig:
        return "big"
'''

NAMES = (
    "chained", "convert", "fetch_all", "keeps_partial", "through_finally", "returns_through_finally", "ordering", "nested", "reraises", "fan_out", "in_loop", "guarded_while", "raising",
    "catches_own_raise", "calls_sub",
)
values = st.one_of(st.integers(-3, 60), st.sampled_from([0, 51, -1]))


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return compiled_samples(tmp_path_factory.mktemp("catch"), "namu_try_samples", SOURCE, NAMES)


def assert_same_calls(module: Any, name: str, *args: Any) -> None:
    """The value (or exception type) and the task calls, in order, are Python's."""
    module.CALLS.clear()
    expected = outcome(plain, getattr(module, name), *args)
    expected_calls = list(module.CALLS)
    for art, executor in itertools.product(module.artifacts[name], AVAILABLE_EXECUTORS):
        module.CALLS.clear()
        got = outcome(lambda: art.run(*args, executor=executor).value)
        assert got == expected, f"{name}{args} on {executor}: {got}, Python: {expected}"
        assert module.CALLS == expected_calls, f"{name}{args} on {executor}: calls {module.CALLS}, Python: {expected_calls}"


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@SETTINGS
@given(xs=st.lists(values, max_size=6))
def test_a_handler_sees_what_the_body_assigned_before_the_exception(module: Any, xs: list[int]) -> None:
    assert_same_calls(module, "keeps_partial", xs)
    assert_same_calls(module, "fan_out", xs)
    assert_same_calls(module, "in_loop", xs)
    assert_same_calls(module, "through_finally", xs)
    assert_python_meaning(module.artifacts["calls_sub"], module.calls_sub, xs)


mixed = st.recursive(
    st.one_of(st.integers(-10**30, 10**30), st.floats(), st.text(max_size=4), st.sampled_from(["12", " 7 ", "x1", "1e3"])),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.text(max_size=2), children, max_size=2)),
    max_leaves=4,
)


@SETTINGS
@given(value=mixed)
def test_builtin_exceptions_on_values_of_any_type(module: Any, value: Any) -> None:
    """Strings, big ints, floats with nan and inf, nested lists and dicts."""
    assert_same_calls(module, "convert", value)


@SETTINGS
@given(urls=st.lists(st.sampled_from(["a", "bad", "slow", "c", "a"]), max_size=5))
def test_the_documented_example(module: Any, urls: list[str]) -> None:
    assert_same_calls(module, "fetch_all", urls)


@SETTINGS
@given(x=values)
def test_else_finally_nesting_and_reraise_run_in_python_order(module: Any, x: int) -> None:
    for name in ("ordering", "nested", "reraises", "guarded_while", "raising", "catches_own_raise", "returns_through_finally",
                 "chained"):
        assert_same_calls(module, name, x)


def test_except_matches_the_task_exception_and_binds_it(module: Any) -> None:
    for executor in ("kernel", "reference"):
        result = module.artifacts["keeps_partial"][1].run([5, -2, 4], executor=executor).value
        assert result == ("value", 20, 1, "negative -2")
        assert module.artifacts["reraises"][0].run(51, executor=executor).value == "TooBig(51)"


def test_an_unmatched_or_reraised_exception_fails_the_run_as_without_try(module: Any) -> None:
    """It surfaces as the run's TaskError naming the task, the task's exception as cause."""
    for executor in ("kernel", "reference"):
        with pytest.raises(namu.TaskError, match="task 'risky' failed") as info:
            module.artifacts["reraises"][1].run(-4, executor=executor)
        assert isinstance(info.value.__cause__, ValueError)
        with pytest.raises(AssertionError, match="three is not allowed"):
            module.artifacts["raising"][0].run(3, executor=executor)
        with pytest.raises(LookupError, match="wrapped") as chained:
            module.artifacts["chained"][1].run(-1, executor=executor)
        assert isinstance(chained.value.__cause__, ValueError)
        with pytest.raises(KeyError) as quiet:
            module.artifacts["chained"][1].run(60, executor=executor)
        assert quiet.value.__cause__ is None and quiet.value.__suppress_context__


def test_retries_timeouts_and_skips_still_apply_inside_a_try(tmp_path: Any) -> None:
    mod = _import(tmp_path / "namu_try_policies.py", '''
import asyncio

import namu

ATTEMPTS = []


@namu.task(retries=2)
def flaky(x: int) -> int:
    ATTEMPTS.append(x)
    if ATTEMPTS.count(x) < 2:
        raise ConnectionError("once")
    return x


@namu.task(on_error="skip")
def halve(x: int) -> int:
    if x % 2:
        raise ValueError(x)
    return x // 2


@namu.task
def fails(x: int) -> int:
    raise ConnectionError(x)


@namu.task(timeout_s=0.05)
async def slow(x: int) -> int:
    await asyncio.sleep(5)
    return x


@namu.workflow
def times_out(x: int):
    try:
        return slow(x)
    except TimeoutError as e:
        return "timed out: " + repr(e)


@namu.workflow
def policies(xs: list[int]):
    try:
        a = flaky(3)
        halves = [halve(x) for x in xs]
        b = fails(a)
    except ConnectionError:
        b = -1
    return a, halves, b
''')
    for executor in ("kernel", "reference"):
        mod.ATTEMPTS.clear()
        assert mod.policies.run([1, 2, 4], executor=executor).value == (3, [1, 2], -1)
        assert mod.ATTEMPTS == [3, 3]
        assert mod.times_out.run(1, executor=executor).value.startswith("timed out: TimeoutError(")


def test_the_compiled_graph_has_catch_regions(module: Any) -> None:
    ops = {node.op_type for node in module.artifacts["fan_out"][0].model.graph.all_nodes()}
    assert {"Try", "ExceptionMatches", "Raise"} <= ops
    # the fan-out is inside one catch region, still a Map
    region = next(n for n in module.artifacts["fan_out"][0].model.graph if n.op_type == "Try")
    assert "Map" in [n.op_type for n in region.attributes["body"].as_graph()]


REFUSED = {
    "try:\n        v = f(x)\n    finally:\n        return 0": "`return` inside a `finally` block",
    "for y in [x]:\n        try:\n            f(y)\n        finally:\n            break\n    return 0": "`break` inside a `finally` block",
    "try:\n        v = f(x)\n    except x:\n        v = 0\n    return v": "must be module-level names, not the workflow variable `x`",
    "try:\n        v = f(x)\n    except len:\n        v = 0\n    return v": "do not inherit from BaseException",
    "try:\n        v = f(x)\n    except* ValueError:\n        v = 0\n    return v": "except*",
    "raise": "a bare `raise` is supported inside an `except` block only",
}


@pytest.mark.parametrize("body", list(REFUSED))
def test_refused_forms_are_located(tmp_path: Any, body: str) -> None:
    source = f"import namu\n\n\n@namu.task\ndef f(x: int) -> int:\n    return x\n\n\n@namu.workflow\ndef wf(x: int):\n    {body}\n"
    mod = _import(tmp_path / f"namu_try_refused_{abs(hash(body))}.py", source)
    with pytest.raises(WorkflowSyntaxError, match=REFUSED[body].replace("(", r"\(").replace("*", r"\*")) as info:
        namu.compile(mod.wf)
    assert info.value.lineno is not None and info.value.lineno >= 11


def test_a_local_exception_class_is_refused_with_the_way_out(tmp_path: Any) -> None:
    mod = _import(tmp_path / "namu_try_local_class.py", '''
import namu


def make():
    class Local(Exception):
        pass

    @namu.workflow
    def wf(x: int):
        try:
            v = x + 1
        except Local:
            v = 0
        return v

    return wf
''')
    with pytest.raises(WorkflowSyntaxError, match="cannot be imported .* define it at module level"):
        namu.compile(mod.make())
