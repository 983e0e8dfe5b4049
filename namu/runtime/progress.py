"""A rich progress bar driven by a run's events (the CLI's ``namu run`` uses it).

The bar counts fan-out items: its total grows as fan-outs start (each adds its number of
items, nested fan-outs too) and it advances as each item's path finishes or is skipped.
Beside it, the number of task calls finished and the last task's name show that work
outside fan-outs is moving. Before the first fan-out the bar pulses.

Use it as a context manager and pass it as one of the run's hooks::

    with ProgressHooks() as progress:
        result = artifact.run(hooks=progress, **inputs)

The bar is drawn on stderr and removed when the run ends (``transient``). When stderr is
not a terminal nothing is written at all (the counts are still kept), so piped output
and logs stay clean.
"""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from namu.runtime.hooks import RunHooks, TaskCall

__all__ = ["ProgressHooks"]


class ProgressHooks(RunHooks):
    """Run hooks (:class:`~namu.runtime.hooks.RunHooks`) drawing a rich progress bar.

    Args:
        description: the label left of the bar (e.g. the workflow's name).
        console: where to draw (default: a console on stderr).

    Attributes:
        total: fan-out items announced so far.
        completed: fan-out items finished (or skipped) so far.
        tasks_done: task calls finished so far (returned or failed).
    """

    def __init__(self, description: str = "running", *, console: Console | None = None) -> None:
        self.console = console if console is not None else Console(stderr=True)
        self.total = 0
        self.completed = 0
        self.tasks_done = 0
        self._lock = threading.Lock()
        self._description = description
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("items  {task.fields[tasks]} tasks  {task.fields[last]}", style="dim"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            # Refreshing runs on rich's own thread; events only update numbers.
            refresh_per_second=10,
        )
        # total=None draws a pulsing bar until the first fan-out announces its size.
        self._task_id = self._progress.add_task(description, total=None, tasks=0, last="")

    # -- context manager ---------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        """True when the bar is drawn: stderr is an interactive terminal."""
        return self.console.is_interactive

    def start(self) -> None:
        # Not started at all off a terminal: rich would draw nothing there but still
        # print an empty line when stopping, and stderr must stay clean for error lines.
        if self.enabled:
            self._progress.start()

    def stop(self) -> None:
        if self.enabled:
            self._progress.stop()

    def __enter__(self) -> ProgressHooks:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- RunHooks ----------------------------------------------------------------------
    def on_fanout(self, items: int) -> None:
        """A fan-out of ``items`` paths started: grow the total."""
        with self._lock:
            self.total += items
            self._progress.update(self._task_id, total=self.total)

    def on_item_done(self) -> None:
        """One fan-out path finished or was skipped: advance the bar."""
        with self._lock:
            self.completed += 1
            self._progress.update(self._task_id, completed=self.completed)

    def on_task_end(self, call: TaskCall, source: str) -> None:
        """A task call returned: count it and show its name."""
        self._task_done(call.task)

    def on_task_error(self, call: TaskCall, error: BaseException) -> None:
        """A task call failed: count it too (the run goes on, or says why it stops)."""
        self._task_done(call.task)

    def _task_done(self, task: str) -> None:
        with self._lock:
            self.tasks_done += 1
            self._progress.update(self._task_id, tasks=self.tasks_done, last=task)

    def on_stopping(self, message: str) -> None:
        """An interrupted run is waiting for calls it cannot stop: say so above the bar."""
        self.console.print(message, style="yellow", markup=False, highlight=False, soft_wrap=True)
