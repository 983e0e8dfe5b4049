"""Checkpoint and resume: recorded task calls are served, only the remaining ones run."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import namu
from namu.runtime.cache import CACHE_FILE_NAME

REPO = Path(namu.__file__).resolve().parent.parent


def journal_rows(path: Path, task: str | None = None) -> int:
    with sqlite3.connect(path) as conn:
        if task is None:
            return conn.execute("SELECT count(*) FROM calls").fetchone()[0]
        return conn.execute("SELECT count(*) FROM calls WHERE task = ?", (task,)).fetchone()[0]


def make_pipeline(calls: list[Any], fail_on: set[int]) -> namu.Workflow:
    """A fan-out whose task fails on the items in ``fail_on`` (a set the test mutates:
    the task's source, so its digest, stays the same)."""

    @namu.task
    def work(x: int) -> int:
        calls.append(x)
        if x in fail_on:
            raise RuntimeError(f"crash on {x}")
        return 10 * x

    @namu.task
    def total(values: list[int]) -> int:
        calls.append("total")
        return sum(values)

    @namu.workflow
    def pipeline(xs: list[int]) -> tuple:
        ys = [work(x) for x in xs]
        return ys, total(ys)

    return pipeline


def test_a_completed_run_resumes_without_running_any_task(tmp_path: Path, executor: str) -> None:
    calls: list[Any] = []
    wf = make_pipeline(calls, set())
    checkpoint = tmp_path / "run.ckpt"
    first = wf.run([1, 2, 3], executor=executor, checkpoint=checkpoint)
    assert first.value == ([10, 20, 30], 60) and first.resumed_calls == 0
    assert calls == [1, 2, 3, "total"]
    assert journal_rows(checkpoint) == 4
    calls.clear()
    again = wf.run([1, 2, 3], executor=executor, checkpoint=checkpoint)
    assert again.value == first.value and again.resumed_calls == 4
    assert calls == []


def test_a_failed_run_resumes_from_its_completed_calls(tmp_path: Path, executor: str) -> None:
    calls: list[Any] = []
    fail_on = {4}
    wf = make_pipeline(calls, fail_on)
    checkpoint = tmp_path / "run.ckpt"
    with pytest.raises(namu.TaskError, match="crash on 4"):
        wf.run([1, 2, 3, 4, 5, 6], executor=executor, checkpoint=checkpoint)
    assert calls == [1, 2, 3, 4]
    fail_on.clear()
    calls.clear()
    resumed = wf.run([1, 2, 3, 4, 5, 6], executor=executor, checkpoint=checkpoint)
    assert resumed.value == ([10, 20, 30, 40, 50, 60], 210)
    assert calls == [4, 5, 6, "total"]
    assert resumed.resumed_calls == 3


def test_other_inputs_reuse_nothing(tmp_path: Path) -> None:
    calls: list[Any] = []
    wf = make_pipeline(calls, set())
    checkpoint = tmp_path / "run.ckpt"
    wf.run([1, 2], checkpoint=checkpoint)
    calls.clear()
    result = wf.run([2, 1], checkpoint=checkpoint)
    assert result.value == ([20, 10], 30) and result.resumed_calls == 0
    assert calls == [2, 1, "total"]


def test_repeated_identical_calls_are_numbered(tmp_path: Path) -> None:
    calls: list[Any] = []
    wf = make_pipeline(calls, set())
    checkpoint = tmp_path / "run.ckpt"
    wf.run([7, 7, 7], checkpoint=checkpoint)
    assert journal_rows(checkpoint, "work") == 3  # occurrences 0, 1, 2 of work(7)
    calls.clear()
    assert wf.run([7, 7, 7], checkpoint=checkpoint).value == ([70, 70, 70], 210)
    assert calls == []


def test_edited_tasks_run_again(tmp_path: Path) -> None:
    checkpoint = tmp_path / "run.ckpt"

    @namu.task(name="step")
    def step_v1(x: int) -> int:
        return x + 1

    @namu.task(name="step")
    def step_v2(x: int) -> int:
        return x + 2

    @namu.workflow
    def wf(x: int) -> int:
        return chosen(x)

    chosen = step_v1
    assert wf.run(1, checkpoint=checkpoint).value == 2
    # Same workflow source and inputs (so the same run key), another task digest.
    wf_v2 = namu.Artifact(wf.compile().model, {"step": step_v2})
    assert wf_v2.run(1, checkpoint=checkpoint).value == 3


def test_unpicklable_results_and_unhashable_arguments_are_not_journaled(tmp_path: Path) -> None:
    calls: list[str] = []

    class Box:
        def __init__(self, value: int) -> None:
            self.value = value

    @namu.task
    def box(x: int) -> Any:
        calls.append("box")
        return Box(x)  # a local class: cannot be pickled

    @namu.task
    def unbox(b: Any) -> int:
        calls.append("unbox")
        return b.value

    @namu.workflow
    def wf(x: int) -> int:
        return unbox(box(x))

    checkpoint = tmp_path / "run.ckpt"
    assert wf.run(5, checkpoint=checkpoint).value == 5
    assert journal_rows(checkpoint) == 0
    calls.clear()
    assert wf.run(5, checkpoint=checkpoint).value == 5
    assert calls == ["box", "unbox"]


def test_async_tasks_are_journaled(tmp_path: Path, executor: str) -> None:
    calls: list[int] = []

    @namu.task
    async def fetch(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0)
        return x * 3

    @namu.workflow
    def wf(xs: list[int]) -> list[int]:
        return [fetch(x) for x in xs]

    checkpoint = tmp_path / "run.ckpt"
    assert wf.run([1, 2], executor=executor, checkpoint=checkpoint).value == [3, 6]
    assert wf.run([1, 2], executor=executor, checkpoint=checkpoint).value == [3, 6]
    assert calls == [1, 2]


def test_checkpoint_and_cache_together(tmp_path: Path) -> None:
    calls: list[int] = []

    @namu.task(cache=True)
    def slow(x: int) -> int:
        calls.append(x)
        return -x

    @namu.workflow
    def wf(xs: list[int]) -> list[int]:
        return [slow(x) for x in xs]

    assert wf.run([1, 1, 2], checkpoint=tmp_path / "a.ckpt", cache_dir=tmp_path / "cache").value == [-1, -1, -2]
    assert calls == [1, 2]
    assert journal_rows(tmp_path / "a.ckpt") == 3  # cache hits are journaled too
    assert wf.run([1, 1, 2], checkpoint=tmp_path / "a.ckpt").resumed_calls == 3


def test_unusable_checkpoints_raise_checkpoint_error_naming_the_file(tmp_path: Path) -> None:
    wf = make_pipeline([], set())
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\x00garbage" * 200)
    with pytest.raises(namu.CheckpointError, match="cannot open checkpoint") as info:
        wf.run([1], checkpoint=junk)
    assert info.value.path == str(junk) and str(junk) in str(info.value)

    cache_dir = tmp_path / "cache"
    make_pipeline([], set()).run([1], cache_dir=cache_dir)
    with pytest.raises(namu.CheckpointError, match="not a namu checkpoint"):
        wf.run([1], checkpoint=cache_dir / CACHE_FILE_NAME)

    with pytest.raises(namu.CheckpointError, match="is a directory"):
        wf.run([1], checkpoint=tmp_path)

    @namu.workflow
    def takes_anything(value: Any) -> Any:
        return value

    with pytest.raises(namu.CheckpointError, match="cannot be content-addressed"):
        takes_anything.run(object(), checkpoint=tmp_path / "x.ckpt")


# ---------------------------------------------------------------------- kill -9 and resume
FAN_OUT = '''
import json
import sys
import time

import namu


@namu.task
def work(marker: str, i: int) -> int:
    with open(marker, "a") as f:
        f.write(f"{i}\\n")
    time.sleep(0.05)
    return i * i + 1


@namu.task
def total(values: list[int]) -> int:
    return sum(values)


@namu.workflow
def fan(marker: str, xs: list[int]) -> dict:
    ys = [work(marker, x) for x in xs]
    return {"ys": ys, "total": total(ys)}


if __name__ == "__main__":
    checkpoint, marker, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    result = fan.run(marker, list(range(n)), checkpoint=None if checkpoint == "-" else checkpoint)
    print(json.dumps({"value": result.value, "resumed": result.resumed_calls}))
'''


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _start(script: Path, checkpoint: str, marker: Path, n: int) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, str(script), checkpoint, str(marker), str(n)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    return json.loads(out)


def test_a_killed_run_resumes_where_it_stopped(tmp_path: Path) -> None:
    n = 40
    script = tmp_path / "fan_out.py"
    script.write_text(textwrap.dedent(FAN_OUT))
    checkpoint = tmp_path / "fan.ckpt"
    marker = tmp_path / "marker.txt"

    started: list[subprocess.Popen[str]] = []
    try:
        uninterrupted = _start(script, "-", tmp_path / "baseline-marker.txt", n)  # runs meanwhile
        started.append(uninterrupted)
        proc = _start(script, str(checkpoint), marker, n)
        started.append(proc)
        deadline = time.monotonic() + 60
        while _lines(marker) < 10:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the first run made no progress"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL

        started_before_kill = _lines(marker)
        recorded = journal_rows(checkpoint, "work")
        assert 9 <= recorded <= started_before_kill < n  # at most the in-flight call is lost

        resuming = _start(script, str(checkpoint), marker, n)
        started.append(resuming)
        resumed = _finish(resuming)
        baseline = _finish(uninterrupted)
        assert _lines(tmp_path / "baseline-marker.txt") == n
        assert resumed["value"] == baseline["value"]
        assert resumed["resumed"] == recorded
        ran_on_resume = _lines(marker) - started_before_kill
        assert n - recorded <= ran_on_resume <= n - recorded + 2
        assert _lines(marker) < 2 * n
        assert journal_rows(checkpoint, "work") == n
    finally:
        for leftover in started:
            if leftover.poll() is None:
                leftover.kill()
                leftover.communicate()
