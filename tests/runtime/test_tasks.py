"""Task options at run time: retries, timeouts, cache, async, and TaskError context."""

from __future__ import annotations

import asyncio
import inspect
import os
import time

import pytest

import namu
from tests.conftest import run_both


def _line_of(fn, marker: str) -> int:
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if marker in line)


def test_task_error_names_task_and_call_line_and_chains_cause(executor: str) -> None:
    @namu.task
    def explode(x: int) -> int:
        raise KeyError(f"no {x}")

    @namu.task
    def inc(x: int) -> int:
        return x + 1

    @namu.workflow
    def wf(x: int) -> int:
        y = inc(x)
        z = explode(y)  # marker: explode call
        return inc(z)

    with pytest.raises(namu.TaskError) as info:
        wf.run(1, executor=executor)
    err = info.value
    assert err.task == "explode"
    assert err.span.startswith(f"{os.path.abspath(__file__)}:{_line_of(wf.fn, 'marker: explode call')}:")
    assert isinstance(err.__cause__, KeyError)
    assert "explode" in str(err) and "KeyError" in str(err)


def test_retries_rerun_a_failing_task(executor: str) -> None:
    calls: list[int] = []

    @namu.task(retries=2)
    def flaky(x: int) -> int:
        calls.append(x)
        if len(calls) < 3:
            raise ConnectionError("try again")
        return x * 10

    @namu.workflow
    def wf(x: int) -> int:
        return flaky(x)

    assert wf.run(4, executor=executor).value == 40
    assert calls == [4, 4, 4]
    calls.clear()

    @namu.task(retries=1)
    def always(x: int) -> int:
        calls.append(x)
        raise ConnectionError("down")

    @namu.workflow
    def wf2(x: int) -> int:
        return always(x)

    with pytest.raises(namu.TaskError) as info:
        wf2.run(1, executor=executor)
    assert isinstance(info.value.__cause__, ConnectionError)
    assert calls == [1, 1]


def test_timeout_fails_sync_and_async_tasks(executor: str) -> None:
    @namu.task(timeout_s=0.05)
    def slow(x: int) -> int:
        time.sleep(1.0)
        return x

    @namu.task(timeout_s=0.05)
    async def slow_async(x: int) -> int:
        await asyncio.sleep(1.0)
        return x

    @namu.workflow
    def wf(x: int) -> int:
        return slow(x)

    @namu.workflow
    def wf_async(x: int) -> int:
        return slow_async(x)

    for workflow, name in ((wf, "slow"), (wf_async, "slow_async")):
        with pytest.raises(namu.TaskTimeoutError) as info:
            workflow.run(1, executor=executor)
        assert info.value.task == name


def test_async_tasks_are_awaited() -> None:
    @namu.task
    async def fetch(x: int) -> int:
        await asyncio.sleep(0.001)
        return x * 2

    @namu.task
    def add(a: int, b: int) -> int:
        return a + b

    @namu.workflow
    def wf(n: int) -> int:
        a = fetch(n)
        b = fetch(a)
        return add(a, b)

    assert run_both(wf, 3).value == 18


def test_cache_reuses_results_for_equal_inputs(executor: str) -> None:
    calls: list[int] = []

    @namu.task(cache=True)
    def expensive(x: int) -> int:
        calls.append(x)
        return x * x

    @namu.workflow
    def wf(x: int) -> list[int]:
        return [expensive(v) for v in [x, x, x + 1, x]]

    assert wf.run(3, executor=executor).value == [9, 9, 16, 9]
    assert calls == [3, 4]


def test_skip_outside_a_fan_out_is_a_task_error(executor: str) -> None:
    @namu.task(on_error="skip")
    def fragile(x: int) -> int:
        raise ValueError("nope")

    @namu.workflow
    def wf(x: int) -> int:
        return fragile(x)

    with pytest.raises(namu.TaskError) as info:
        wf.run(1, executor=executor)
    assert type(info.value) is namu.TaskError
    assert isinstance(info.value.__cause__, ValueError)


def test_builtin_op_errors_keep_python_type_and_gain_the_line(executor: str) -> None:
    @namu.workflow
    def wf(a: int, b: int) -> int:
        return a // b

    with pytest.raises(ZeroDivisionError) as info:
        wf.run(1, 0, executor=executor)
    assert any(os.path.abspath(__file__) in note for note in info.value.__notes__)
