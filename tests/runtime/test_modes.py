"""How the kernel runs tasks: inline, on worker threads, on the event loop with a cap;
values released after their last use; clean cancellation; concurrent runs."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path

import pytest

import namu
from namu.errors import RunCancelledError


class Box:
    def __init__(self, value: int) -> None:
        self.value = value


def _worker_threads() -> dict[int, str]:
    """Live OS threads of this process started by a kernel worker pool, by thread id."""
    tasks = Path("/proc/self/task")
    if not tasks.exists():
        return {}
    found = {}
    for task in tasks.iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except OSError:  # the thread exited while we looked
            continue
        if name.startswith("namu-worker"):
            found[int(task.name)] = name
    return found


def _lingering_workers(before: dict[int, str]) -> list[str]:
    """Worker threads started since `before` that are still listed by the OS.

    `pthread_join` returns once the thread has run its last instruction, but Linux keeps
    its `/proc/self/task` entry until the exit is fully reaped a moment later, so a joined
    thread may still be listed right after `run()` returns. Wait for that (a second at
    most); a worker the pool did not join would be parked on its condition variable and
    stay listed.
    """
    deadline = time.monotonic() + 1.0
    while True:
        new = [name for tid, name in _worker_threads().items() if tid not in before]
        if not new or time.monotonic() > deadline:
            return new
        time.sleep(0.01)


def _thread_name() -> str:
    """The OS name of the calling thread (Python names threads it did not start "Dummy-N")."""
    comm = Path(f"/proc/self/task/{threading.get_native_id()}/comm")
    return comm.read_text().strip() if comm.exists() else threading.current_thread().name


def test_async_fanout_runs_concurrently_up_to_the_cap() -> None:
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    @namu.task
    async def nap(i: int) -> int:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.02)
        with lock:
            state["now"] -= 1
        return i * 2

    @namu.task
    def ids(n: int) -> list[int]:
        return list(range(n))

    @namu.workflow
    def wf(n: int) -> list[int]:
        return [nap(i) for i in ids(n)]

    assert wf.run(12, max_concurrency=5).value == [i * 2 for i in range(12)]
    assert state["peak"] == 5
    state["peak"] = 0
    assert wf.run(12, max_concurrency=1).value == [i * 2 for i in range(12)]
    assert state["peak"] == 1


def test_async_tasks_in_branches_and_loops() -> None:
    @namu.task
    async def half(x: int) -> int:
        await asyncio.sleep(0)
        return x // 2

    @namu.task
    async def triple_plus_one(x: int) -> int:
        return 3 * x + 1

    @namu.workflow
    def steps(n: int) -> int:
        count = 0
        while n != 1:
            if n % 2 == 0:
                n = half(n)
            else:
                n = triple_plus_one(n)
            count = count + 1
        return count

    assert steps.run(27).value == 111
    assert steps.run(27, executor="reference").value == 111


@pytest.mark.parametrize("how", ["run-option", "task-option"])
def test_thread_mode_runs_sync_tasks_on_worker_threads(how: str) -> None:
    seen: set[str] = set()
    lock = threading.Lock()

    @namu.task(mode="thread" if how == "task-option" else None)
    def where(x: int) -> int:
        with lock:
            seen.add(_thread_name())
        time.sleep(0.001)  # releases the GIL, as numpy or I/O would
        return x + 1

    @namu.task
    def ids(n: int) -> list[int]:
        return list(range(n))

    @namu.workflow
    def wf(n: int) -> int:
        ys = [where(i) for i in ids(n)]
        return len(ys)

    options = {"task_mode": "thread"} if how == "run-option" else {}
    before = _worker_threads()
    assert wf.run(40, workers=2, **options).value == 40
    assert seen and all(name.startswith("namu-worker-") for name in seen)
    assert _lingering_workers(before) == []  # the pool is joined before run() returns


def test_thread_mode_errors_are_task_errors() -> None:
    @namu.task(mode="thread")
    def boom(x: int) -> int:
        raise ValueError(f"bad {x}")

    @namu.workflow
    def wf(x: int) -> int:
        return boom(x)

    before = _worker_threads()
    with pytest.raises(namu.TaskError, match="bad 3") as info:
        wf.run(3)
    assert isinstance(info.value.__cause__, ValueError)
    assert _lingering_workers(before) == []


def test_bad_run_options_are_clear_errors() -> None:
    @namu.task
    def inc(x: int) -> int:
        return x + 1

    @namu.workflow
    def wf(x: int) -> int:
        return inc(x)

    with pytest.raises(ValueError, match="task_mode must be 'inline' or 'thread'"):
        wf.run(1, task_mode="fibers")
    with pytest.raises(ValueError, match="max_concurrency must be at least 1"):
        wf.run(1, max_concurrency=0)


def test_intermediates_are_released_after_their_last_use() -> None:
    refs: list[weakref.ref[Box]] = []

    @namu.task
    def make(x: int) -> Box:
        box = Box(x)
        refs.append(weakref.ref(box))
        return box

    @namu.task
    def step(box: Box) -> Box:
        # The box two steps back was last read by the previous step: it must be gone.
        if len(refs) >= 2:
            assert refs[-2]() is None, "an intermediate outlived its last use"
        return make.fn(box.value + 1)

    @namu.task
    def value(box: Box) -> int:
        return box.value

    @namu.workflow
    def wf(x: int) -> int:
        b = make(x)
        b = step(b)
        b = step(b)
        b = step(b)
        return value(b)

    assert wf.run(0).value == 3
    gc.collect()
    assert all(ref() is None for ref in refs)


def test_fanout_items_are_released_as_they_finish() -> None:
    alive: list[weakref.ref[Box]] = []
    peak = {"alive": 0}

    @namu.task
    def big(i: int) -> int:
        box = Box(i)
        alive.append(weakref.ref(box))
        peak["alive"] = max(peak["alive"], sum(r() is not None for r in alive[-50:]))
        return keep(box)

    def keep(box: Box) -> int:
        return box.value

    @namu.task
    def ids(n: int) -> list[int]:
        return list(range(n))

    @namu.workflow
    def wf(n: int) -> int:
        ys = [big(i) for i in ids(n)]
        return len(ys)

    assert wf.run(500).value == 500
    assert peak["alive"] <= 1


def test_runs_from_several_threads_at_once() -> None:
    @namu.task
    def inc(x: int) -> int:
        return x + 1

    @namu.task
    def ids(n: int) -> list[int]:
        return list(range(n))

    @namu.workflow
    def wf(n: int) -> int:
        total = 0
        for y in [inc(i) for i in ids(n)]:
            total = total + y
        return total

    art = wf.compile()
    results: list[int] = []
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for _ in range(20):
                results.append(art.run(n).value - n * (n + 1) // 2)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(50 + i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [0] * 80


def test_kernel_objects_are_freed_after_runs_of_every_mode() -> None:
    refs: list[weakref.ref[Box]] = []

    @namu.task
    def make(x: int) -> Box:
        box = Box(x)
        refs.append(weakref.ref(box))
        return box

    @namu.task(mode="thread")
    def threaded(box: Box) -> Box:
        return make.fn(box.value + 1)

    @namu.task
    async def later(box: Box) -> Box:
        return make.fn(box.value + 1)

    @namu.task
    def ids(n: int) -> list[int]:
        return list(range(n))

    @namu.workflow
    def wf(n: int) -> int:
        boxes = [later(threaded(make(i))) for i in ids(n)]
        return len(boxes)

    art = wf.compile()
    assert art.run(10).value == 10
    del art
    gc.collect()
    assert refs and all(ref() is None for ref in refs)


CANCEL_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, time, namu

    @namu.task
    async def nap(i: int) -> int:
        await asyncio.sleep(30)
        return i

    @namu.task(mode="thread")
    def work(i: int) -> int:
        time.sleep(0.2)
        return i

    @namu.task
    def ids(n: int) -> list[int]:
        return list(range(n))

    @namu.task
    def started(n: int) -> int:
        print("started", flush=True)
        return n

    @namu.workflow
    def wf(n: int) -> int:
        m = started(n)
        slow = [nap(i) for i in ids(m)]
        busy = [work(i) for i in ids(m)]
        return len(slow) + len(busy)

    try:
        wf.run(8, workers=2)
    except namu.RunCancelledError as exc:
        import os
        left = [n for n in (open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")) if n.startswith("namu-worker")]
        print(f"cancelled finished={exc.finished} cancelled={exc.cancelled} abandoned={exc.abandoned} workers_left={left}", flush=True)
        sys.exit(130)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_cancels_the_run_cleanly(tmp_path: Path) -> None:
    script = tmp_path / "cancel_me.py"
    script.write_text(CANCEL_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    time.sleep(0.5)  # let async calls start and threads pick up work
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    line = out.strip().splitlines()[-1]
    assert line.startswith("cancelled finished="), out + err
    assert "workers_left=[]" in line
    assert "abandoned=0 " in line  # the running thread calls were waited for
    cancelled = int(line.split("cancelled=")[1].split()[0])
    assert cancelled >= 8  # the 30 s naps were in flight


STUCK_THREAD_SCRIPT = textwrap.dedent(
    """
    import os, sys, time, namu

    @namu.task(mode="thread")
    def hang(seconds: float) -> float:
        print("started", flush=True)
        time.sleep(seconds)
        return seconds

    @namu.workflow
    def wf(seconds: float) -> float:
        return hang(seconds)

    try:
        wf.run(float(sys.argv[1]))
    except namu.RunCancelledError as exc:
        print(f"{exc} | finished={exc.finished} cancelled={exc.cancelled} abandoned={exc.abandoned}", flush=True)
        os._exit(130)  # abandoned calls still run: leave without waiting for them
    """
)


def _interrupt(script: Path, seconds: float, interrupts: int) -> tuple[str, str]:
    """Run ``script`` with ``seconds``, send SIGINT ``interrupts`` times once its task
    started (0.3 s apart), and return its stdout (without the "started" line) and stderr."""
    proc = subprocess.Popen(
        [sys.executable, str(script), str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    for _ in range(interrupts):
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)  # a 60 s sleep would fail here if waited for
    assert proc.returncode == 130, err
    return out.strip(), err.strip()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_second_ctrl_c_abandons_a_running_thread_call(tmp_path: Path) -> None:
    script = tmp_path / "stuck_thread.py"
    script.write_text(STUCK_THREAD_SCRIPT)
    out, err = _interrupt(script, 600.0, interrupts=2)
    assert err == "stopping: waiting for 1 running task call to return (Ctrl+C again to abandon it)"
    assert out == (
        "run cancelled: 0 calls finished, 0 cancelled, 1 abandoned while still running in a worker thread"
        " | finished=0 cancelled=0 abandoned=1"
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_first_ctrl_c_waits_for_a_running_thread_call_and_says_so(tmp_path: Path) -> None:
    script = tmp_path / "slow_thread.py"
    script.write_text(STUCK_THREAD_SCRIPT)
    out, err = _interrupt(script, 2.0, interrupts=1)
    assert err == "stopping: waiting for 1 running task call to return (Ctrl+C again to abandon it)"
    # It was not cancelled: it finished, and the message says so.
    assert out == "run cancelled: 1 call finished, 0 cancelled | finished=1 cancelled=0 abandoned=0"


SWALLOWING_SCRIPT = textwrap.dedent(
    """
    import asyncio, signal, sys, namu

    @namu.task
    async def spin(n: int) -> str:
        # Python code running in a coroutine, as a client library's is, that turns any
        # exception into something else: a KeyboardInterrupt raised in here would be lost.
        print("started", flush=True)
        try:
            while True:
                for _ in range(20_000):
                    pass
                await asyncio.sleep(0)
        except BaseException as exc:
            return f"swallowed {type(exc).__name__}"

    @namu.workflow
    def wf(n: int) -> str:
        return spin(n)

    try:
        print(wf.run(1).value, flush=True)
    except namu.RunCancelledError as exc:
        print(f"cancelled: finished={exc.finished} cancelled={exc.cancelled}", flush=True)
        handler = signal.getsignal(signal.SIGINT)
        print("handler restored" if handler is signal.default_int_handler else f"handler left: {handler}", flush=True)
        sys.exit(130)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_is_not_raised_inside_a_running_coroutine(tmp_path: Path) -> None:
    """The async task's loop runs on the main thread (the inline driver); Ctrl+C still
    stops the run, by cancelling the coroutine, not by raising in the middle of it."""
    script = tmp_path / "swallow.py"
    script.write_text(SWALLOWING_SCRIPT)
    out, err = _interrupt(script, 0.0, interrupts=1)
    # the coroutine caught its cancellation and returned: a finished call of a cancelled run
    assert out.splitlines() == ["cancelled: finished=1 cancelled=0", "handler restored"], err


def test_run_cancelled_error_is_a_keyboard_interrupt() -> None:
    exc = RunCancelledError(3, 2)
    assert isinstance(exc, KeyboardInterrupt) and not isinstance(exc, Exception)
    assert (exc.finished, exc.cancelled, exc.abandoned) == (3, 2, 0)
    assert str(exc) == "run cancelled: 3 calls finished, 2 cancelled"
    assert str(RunCancelledError(1, 0, 2)).endswith("1 call finished, 0 cancelled, 2 abandoned while still running in a worker thread")
