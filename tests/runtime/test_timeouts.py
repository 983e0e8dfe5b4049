"""Task timeouts: a timed-out run ends and its process can exit; ``on_error="skip"``
drops timed-out items; ``mode="process"`` tasks get a hard timeout (their worker process
is killed)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import namu
from tests.runtime import process_tasks

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}


STUCK_SCRIPT = textwrap.dedent(
    """
    import time, namu

    @namu.task(timeout_s=0.5{mode})
    def stuck(x: int) -> int:
        while True:
            time.sleep(0.05)

    @namu.workflow
    def wf(x: int = 1) -> int:
        return stuck(x)
    """
)


@pytest.mark.parametrize("mode", ["", ", mode='thread'"])
def test_namu_run_ends_after_a_task_timeout(tmp_path: Path, mode: str) -> None:
    # The abandoned call used to keep a non-daemon thread, so the process never exited.
    script = tmp_path / "stuck_wf.py"
    script.write_text(STUCK_SCRIPT.format(mode=mode))
    proc = subprocess.run(
        [sys.executable, "-m", "namu.cli", "run", str(script)],
        capture_output=True, text=True, env=_env(), timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip() == (
        f"error: task 'stuck' failed at {script}:11:12: TimeoutError: timed out after 0.5 s"
    )


def test_a_script_exits_after_catching_a_task_timeout(tmp_path: Path) -> None:
    script = tmp_path / "catch_timeout.py"
    script.write_text(
        STUCK_SCRIPT.format(mode="")
        + textwrap.dedent(
            """
            for executor in ("kernel", "reference"):
                try:
                    wf.run(executor=executor)
                except namu.TaskTimeoutError as exc:
                    print(executor, "timed out:", exc.task)
            """
        )
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["kernel timed out: stuck", "reference timed out: stuck"]


@pytest.mark.parametrize("is_async", [False, True])
def test_skip_drops_items_that_time_out(executor: str, is_async: bool) -> None:
    if is_async:

        @namu.task(on_error="skip", timeout_s=0.3)
        async def slow(i: int) -> int:
            import asyncio

            if i == 3:
                await asyncio.sleep(5)
            return i

    else:

        @namu.task(on_error="skip", timeout_s=0.3)
        def slow(i: int) -> int:
            if i == 3:
                time.sleep(1)
            return i

    @namu.workflow
    def fan(xs: list[int]) -> list[int]:
        return [slow(x) for x in xs]

    result = fan.run(xs=[1, 2, 3, 4], executor=executor)
    assert result.value == [1, 2, 4]
    [item] = result.skipped
    assert (item.task, item.index) == ("slow", 2)
    assert item.error == "TimeoutError: timed out after 0.3 s"


def test_a_skip_task_timing_out_outside_a_fan_out_is_a_timeout(executor: str) -> None:
    @namu.task(on_error="skip", timeout_s=0.2)
    def slow(i: int) -> int:
        time.sleep(1)
        return i

    @namu.workflow
    def one(x: int) -> int:
        return slow(x)

    with pytest.raises(namu.TaskTimeoutError, match="timed out after 0.2 s"):
        one.run(1, executor=executor)


def test_a_task_whose_exception_cannot_be_printed_still_names_the_task(executor: str) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    @namu.task
    def bad(x: int) -> int:
        raise Unprintable()

    @namu.workflow
    def wf(x: int) -> int:
        return bad(x)

    with pytest.raises(namu.TaskError) as info:
        wf.run(1, executor=executor)
    assert info.value.task == "bad"
    assert "task 'bad' failed at " in str(info.value)
    assert str(info.value).endswith("Unprintable: <str() raised RuntimeError>")
    assert isinstance(info.value.__cause__, Unprintable)


# ---------------------------------------------------------------------- mode="process"
def test_process_mode_runs_the_task_in_another_process(executor: str) -> None:
    value, pid = process_tasks.doubled.run(21, executor=executor).value
    assert value == 42
    assert pid != os.getpid()


def _wait_until_dead(pid: int) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_process_mode_kills_the_worker_at_the_deadline(tmp_path: Path, executor: str) -> None:
    pid_file = tmp_path / "pid"
    with pytest.raises(namu.TaskTimeoutError, match="timed out after 1.0 s") as info:
        process_tasks.stuck_wf.run(str(pid_file), executor=executor)
    assert info.value.task == "stuck"
    pid = int(pid_file.read_text())
    assert pid != os.getpid()
    assert _wait_until_dead(pid), "the stuck worker process is still alive"
    # The pool replaced the killed worker: later calls still run.
    assert process_tasks.doubled(4)[0] == 8


def test_process_mode_skip_drops_the_timed_out_item(executor: str) -> None:
    result = process_tasks.skip_stuck.run([1, 2, 3], executor=executor)
    assert result.value == [1, 3]
    assert [(item.index, item.error) for item in result.skipped] == [(1, "TimeoutError: timed out after 1.0 s")]


def test_process_mode_retries(tmp_path: Path, executor: str) -> None:
    assert process_tasks.retried.run(str(tmp_path / "count"), executor=executor).value == 3


def test_process_mode_refuses_unpicklable_arguments_and_results(executor: str) -> None:
    with pytest.raises(namu.TaskError, match="mode='process' task length needs picklable arguments") as info:
        process_tasks.length_of.run(lambda: None, executor=executor)
    assert isinstance(info.value.__cause__, TypeError)
    with pytest.raises(namu.TaskError, match="cannot be sent back from its worker process"):
        process_tasks.lock_wf.run(1, executor=executor)


def test_process_mode_reports_a_dead_worker(executor: str) -> None:
    with pytest.raises(namu.TaskError, match="task 'crash' failed") as info:
        process_tasks.crash_wf.run(1, executor=executor)
    assert "ProcessExpired" in str(info.value)


def test_process_mode_is_for_module_level_synchronous_functions() -> None:
    with pytest.raises(namu.TaskDefinitionError, match="must be defined at module level"):

        @namu.task(mode="process")
        def local(x: int) -> int:
            return x

    with pytest.raises(namu.TaskDefinitionError, match="mode='process' is for synchronous functions"):

        async def coro(x: int) -> int:
            return x

        namu.task(mode="process")(coro)
