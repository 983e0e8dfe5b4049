"""Task options at run time: retries, timeouts, cache, async, and TaskError context."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import random
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import namu
from namu.ir.metadata import TaskOptions
from namu.runtime.hooks import RunHooks, TaskCall, needs
from namu.runtime.result import RunState, current_run, enter_run, exit_run
from namu.runtime.tasks import (
    RETRY_BASE_DELAY_S,
    RETRY_MAX_DELAY_S,
    SkipItem,
    TaskBinding,
    retry_delay_s,
    task_coroutine_fn,
    task_node,
)
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


# ---------------------------------------------------------------------- retries: backoff with full jitter
@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=2**32))
def test_retry_delay_is_uniform_under_a_capped_exponential(attempt: int, seed: int) -> None:
    ceiling_s = min(RETRY_MAX_DELAY_S, RETRY_BASE_DELAY_S * 2.0 ** min(attempt, 64))
    delay_s = retry_delay_s(attempt, random.Random(seed))
    assert 0.0 <= delay_s <= ceiling_s <= RETRY_MAX_DELAY_S


def test_retry_delays_use_the_whole_jitter_range() -> None:
    rng = random.Random(7)
    first = [retry_delay_s(0, rng) for _ in range(2000)]
    assert max(first) <= RETRY_BASE_DELAY_S and min(first) < RETRY_BASE_DELAY_S / 10
    assert RETRY_BASE_DELAY_S * 0.4 < sum(first) / len(first) < RETRY_BASE_DELAY_S * 0.6  # mean of U(0, b)
    late = [retry_delay_s(12, rng) for _ in range(2000)]
    assert max(late) <= RETRY_MAX_DELAY_S and max(late) > RETRY_MAX_DELAY_S * 0.9


def test_failing_twice_with_two_retries_succeeds_and_one_retry_chains_the_last_error(executor: str) -> None:
    failures: list[int] = []

    @namu.task(retries=2)
    def twice(x: int) -> int:
        if len(failures) < 2:
            failures.append(x)
            raise ConnectionError(f"failure {len(failures)}")
        return x + 1

    @namu.task(retries=1)
    def once(x: int) -> int:
        failures.append(x)
        raise ConnectionError(f"failure {len(failures)}")

    @namu.workflow
    def wf_twice(x: int) -> int:
        return twice(x)

    @namu.workflow
    def wf_once(x: int) -> int:
        return once(x)

    assert wf_twice.run(1, executor=executor).value == 2
    failures.clear()
    with pytest.raises(namu.TaskError) as info:
        wf_once.run(1, executor=executor)
    assert failures == [1, 1]
    assert isinstance(info.value.__cause__, ConnectionError)
    assert str(info.value.__cause__) == "failure 2"


# ---------------------------------------------------------------------- bindings
def test_a_binding_is_built_from_its_task_and_derived_without_changing_it() -> None:
    @namu.task(retries=1)
    def double(x: int) -> int:
        return 2 * x

    @namu.task
    def backup(x: int) -> int:
        return x

    binding = TaskBinding.of("k", double)
    assert (binding.key, binding.name, binding.fn, binding.options) == ("k", "double", double.fn, double.options)
    assert binding.digest == double.digest and not binding.is_async
    loaded = TaskBinding.of("k", double, options=TaskOptions(retries=3), digest="sha256:old")
    assert (loaded.options.retries, loaded.digest) == (3, "sha256:old")
    with pytest.raises(dataclasses.FrozenInstanceError):
        binding.key = "other"  # type: ignore[misc]

    fallback = TaskBinding.of("b", backup)
    gated = binding.with_policy(retries=0, timeout_s=2.0, cache=True, backoff_base_s=0.5, fallback=fallback)
    assert (gated.options.retries, gated.options.timeout_s, gated.options.cache, gated.options.fallback) == (0, 2.0, True, "b")
    assert (gated.backoff_base_s, gated.fallback, gated.fn, gated.digest) == (0.5, fallback, double.fn, binding.digest)
    assert binding.options.retries == 1 and binding.fallback is None  # the task's own binding is unchanged

    assert gated.as_fallback().fallback is None and fallback.as_fallback() is fallback
    assert repr(gated) == "<TaskBinding k (double)>"


# ---------------------------------------------------------------------- the fast path
def test_only_plain_tasks_in_plain_runs_are_called_directly() -> None:
    def fn(x: int) -> int:
        return x

    def binding(**options: Any) -> TaskBinding:
        return TaskBinding("t", "t", fn, TaskOptions(**options), False, "sha256:0")

    assert task_node(binding(), [], "f.py:1:1")[0] is fn
    assert task_node(binding(), [], "f.py:1:1", events=frozenset({"task_end"}))[0] is not fn
    assert task_node(binding(), [], "f.py:1:1", events=frozenset({"fanout", "run_end"}))[0] is fn  # no task event
    assert task_node(binding(), [], "f.py:1:1", events=frozenset({"task_lookup"}))[0] is not fn  # a checkpoint
    for options in ({"cache": True}, {"pure": True}, {"retries": 1}, {"timeout_s": 1.0}):
        callable_, handler = task_node(binding(**options), [], "f.py:1:1")
        assert callable_ is not fn and handler is None


# ---------------------------------------------------------------------- task_coroutine_fn
class _Recorder(RunHooks):
    def __init__(self) -> None:
        self.done: list[str] = []

    def on_task_end(self, call: TaskCall, source: str) -> None:
        self.done.append(call.task)


def _async_binding(fn: Any, **options: Any) -> TaskBinding:
    return TaskBinding(fn.__name__, fn.__name__, fn, TaskOptions(**options), True, "sha256:" + fn.__name__)


def test_task_coroutine_fn_applies_keywords_and_captures_the_run_at_call_time() -> None:
    async def scale(x: int, *, factor: int) -> int:
        await asyncio.sleep(0)
        return x * factor

    recorder = _Recorder()
    make = task_coroutine_fn(_async_binding(scale), ["factor"], "wf.py:3:5", events=needs(recorder))
    token = enter_run(RunState(hooks=recorder, events=needs(recorder)))
    try:
        coroutine = make(4, 3)
    finally:
        exit_run(token)
    assert current_run() is None
    assert asyncio.run(coroutine) == 12  # awaited outside the run's context
    assert recorder.done == ["scale"]


def test_task_coroutine_fn_timeout_cancels_the_task() -> None:
    cancelled: list[bool] = []

    async def sleepy(x: int) -> int:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return x

    make = task_coroutine_fn(_async_binding(sleepy, timeout_s=0.05), [], "wf.py:4:9")
    start = time.perf_counter()
    with pytest.raises(namu.TaskTimeoutError) as info:
        asyncio.run(make(1))
    assert time.perf_counter() - start < 2
    assert cancelled == [True]
    assert info.value.task == "sleepy" and info.value.span == "wf.py:4:9"
    assert isinstance(info.value.__cause__, TimeoutError)


def test_task_coroutine_fn_retries_then_fails_or_skips() -> None:
    attempts: list[int] = []

    async def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) < 3:
            raise ConnectionError(f"attempt {len(attempts)}")
        return x

    assert asyncio.run(task_coroutine_fn(_async_binding(flaky, retries=2), [], "s")(7)) == 7
    assert attempts == [7, 7, 7]

    async def broken(x: int) -> int:
        raise ValueError(f"bad {x}")

    with pytest.raises(namu.TaskError) as info:
        asyncio.run(task_coroutine_fn(_async_binding(broken, retries=1), [], "wf.py:1:1")(2))
    assert type(info.value) is namu.TaskError and isinstance(info.value.__cause__, ValueError)
    with pytest.raises(SkipItem) as skipped:
        asyncio.run(task_coroutine_fn(_async_binding(broken, on_error="skip"), [], "wf.py:1:1")(3))
    assert str(skipped.value.__cause__) == "bad 3"


def test_task_coroutine_fn_uses_the_cache() -> None:
    calls: list[int] = []

    async def square(x: int) -> int:
        calls.append(x)
        return x * x

    make = task_coroutine_fn(_async_binding(square, cache=True), [], "s")

    async def main() -> list[int]:
        return [await make(3), await make(3), await make(4)]

    assert asyncio.run(main()) == [9, 9, 16]
    assert calls == [3, 4]


def test_async_tasks_run_concurrently_on_one_loop() -> None:
    async def nap(x: int) -> int:
        await asyncio.sleep(0.2)
        return x

    make = task_coroutine_fn(_async_binding(nap, timeout_s=5.0), [], "s")

    async def main() -> list[int]:
        return list(await asyncio.gather(*(make(i) for i in range(10))))

    start = time.perf_counter()
    assert asyncio.run(main()) == list(range(10))
    assert time.perf_counter() - start < 1.5
