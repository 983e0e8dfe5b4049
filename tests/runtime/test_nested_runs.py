"""A task may run a workflow: what an agent's tool or a plugin does all the time.

Each case would deadlock if the nested run waited on an event loop its caller blocks:
an async task runs on namu's event loop, so a workflow it runs synchronously must have
its own async tasks awaited elsewhere.
"""

from __future__ import annotations

import asyncio

import pytest

import namu


@namu.task
async def inc(x: int) -> int:
    await asyncio.sleep(0.001)
    return x + 1


@namu.workflow
def inner(x: int) -> int:
    return inc(inc(x))


@namu.task
async def async_caller(x: int) -> int:
    return inner(x=x)


@namu.task
def sync_caller(x: int) -> int:
    return inner(x=x)


@namu.task(mode="thread")
def thread_caller(x: int) -> int:
    return inner(x=x)


@namu.workflow
def via_async(x: int) -> int:
    return async_caller(x)


@namu.workflow
def via_sync(x: int) -> int:
    return sync_caller(x)


@namu.workflow
def via_thread(x: int) -> int:
    return thread_caller(x)


@namu.workflow
def fan_via_async(xs: list[int]) -> list[int]:
    return [async_caller(x) for x in xs]


@namu.task
async def deeper(x: int) -> int:
    return via_async(x=x) * 10  # async task -> workflow -> async task -> workflow


@namu.workflow
def three_levels(x: int) -> int:
    return deeper(x)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("wf", [via_async, via_sync, via_thread], ids=lambda wf: wf.name)
def test_a_task_can_run_a_workflow_with_async_tasks(wf: namu.Workflow, executor: str) -> None:
    assert wf.run(3, executor=executor).value == 5


@pytest.mark.timeout(60)
def test_an_async_task_runs_a_workflow_as_plain_python_does(executor: str) -> None:
    # The QA repro: plain Python gives 4 for inc once; here inner increments twice.
    assert asyncio.run(async_caller.fn(3)) == 5
    assert via_async.run(3, executor=executor).value == 5


@pytest.mark.timeout(60)
def test_concurrent_async_tasks_each_run_a_workflow(executor: str) -> None:
    assert fan_via_async.run(list(range(20)), executor=executor).value == [x + 2 for x in range(20)]


@pytest.mark.timeout(60)
def test_nesting_runs_to_any_depth(executor: str) -> None:
    assert three_levels.run(1, executor=executor).value == 30


@pytest.mark.timeout(60)
def test_a_workflow_runs_inside_a_foreign_event_loop() -> None:
    async def handler() -> int:
        return via_async(x=1)  # a web handler or a notebook cell calling namu synchronously

    assert asyncio.run(handler()) == 3
