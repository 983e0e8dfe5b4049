"""A rich progress bar driven by a run's events (the CLI's ``namu run`` uses it).

The total is not known when a run starts: it grows as fan-outs start (each adds its
number of items), and each finished task call advances the bar by one. Work done outside
fan-outs (and nested fan-outs that call several tasks per item) can push the count past
the total; the total then follows the count, so the bar never shows more than 100 %.

Use it as a context manager and pass it as the run's observer::

    with ProgressObserver() as progress:
        result = artifact.run(observer=progress, **inputs)

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

__all__ = ["ProgressObserver"]


class ProgressObserver:
    """A :class:`~namu.runtime.result.RunObserver` that draws a rich progress bar.

    Args:
        description: the label left of the bar (e.g. the workflow's name).
        console: where to draw (default: a console on stderr).

    Attributes:
        total: the units of work known so far: fan-out items announced, plus the task
            calls that finished before a fan-out started.
        completed: the number of task calls finished so far.
    """

    def __init__(self, description: str = "running", *, console: Console | None = None) -> None:
        self.console = console if console is not None else Console(stderr=True)
        self.total = 0
        self.completed = 0
        self._fanouts = 0
        self._lock = threading.Lock()
        self._description = description
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[last]}", style="dim"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            # Refreshing runs on rich's own thread; events only update numbers.
            refresh_per_second=10,
        )
        # total=None draws a pulsing bar until the first fan-out announces its size.
        self._task_id = self._progress.add_task(description, total=None, last="")

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

    def __enter__(self) -> ProgressObserver:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- RunObserver -------------------------------------------------------------------
    def on_fanout(self, items: int) -> None:
        """A fan-out of ``items`` paths started: grow the total."""
        with self._lock:
            self._fanouts += 1
            # Tasks finished before this fan-out count as done units of the total.
            self.total = max(self.total, self.completed) + items
            self._progress.update(self._task_id, total=self.total)

    def on_task_done(self, task: str) -> None:
        """A task call finished: advance by one (and keep the total at least the count)."""
        with self._lock:
            self.completed += 1
            fields: dict[str, object] = {"completed": self.completed, "last": task}
            if self._fanouts and self.completed > self.total:
                self.total = self.completed
            if self._fanouts:
                fields["total"] = self.total
            self._progress.update(self._task_id, **fields)  # type: ignore[arg-type]
