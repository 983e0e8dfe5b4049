"""Module-level tasks for tests/runtime/test_timeouts_and_processes.py.

``mode="process"`` tasks run in worker processes that import them by module and name, so
they live at module level here rather than inside the test functions.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import namu


@namu.task(mode="process")
def pid_of_worker(x: int) -> tuple[int, int]:
    """``(x * 2, the worker's pid)``."""
    return x * 2, os.getpid()


@namu.task(mode="process", timeout_s=1.0)
def stuck(pid_file: str) -> int:
    """Write this worker's pid to ``pid_file``, then loop forever."""
    Path(pid_file).write_text(str(os.getpid()))
    while True:
        time.sleep(0.05)


@namu.task(mode="process", timeout_s=1.0, on_error="skip")
def maybe_stuck(i: int) -> int:
    """``i``, except item 2 runs forever."""
    while i == 2:
        time.sleep(0.05)
    return i


@namu.task(mode="process", retries=2)
def flaky(counter_file: str) -> int:
    """Fails the first two calls (counted in ``counter_file``), then returns the count."""
    path = Path(counter_file)
    count = int(path.read_text() or "0") + 1 if path.exists() else 1
    path.write_text(str(count))
    if count < 3:
        raise ValueError(f"attempt {count} fails")
    return count


@namu.task(mode="process")
def length(value: object) -> int:
    """``len(value)``."""
    return len(value)  # type: ignore[arg-type]


@namu.task(mode="process")
def make_lock(x: int) -> object:
    """Returns something that cannot be pickled back."""
    import threading

    return threading.Lock()


@namu.task(mode="process")
def crash(x: int) -> int:
    """The worker process dies."""
    os._exit(3)


@namu.workflow
def doubled(x: int) -> tuple[int, int]:
    return pid_of_worker(x)


@namu.workflow
def stuck_wf(pid_file: str) -> int:
    return stuck(pid_file)


@namu.workflow
def skip_stuck(xs: list[int]) -> list[int]:
    return [maybe_stuck(x) for x in xs]


@namu.workflow
def retried(counter_file: str) -> int:
    return flaky(counter_file)


@namu.workflow
def length_of(value: object) -> int:
    return length(value)


@namu.workflow
def lock_wf(x: int) -> object:
    return make_lock(x)


@namu.workflow
def crash_wf(x: int) -> int:
    return crash(x)
