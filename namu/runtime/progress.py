"""A rich progress bar driven by a run's events (the CLI's ``namu run`` uses it).

The bar counts fan-out items: its total grows as fan-outs start (each adds its number of
items, nested fan-outs too) and it advances as each item's path finishes or is skipped.
Beside it, the number of task calls finished and the last task's name show that work
outside fan-outs is moving. Before the first fan-out the bar pulses. A federated run
prints one line per round (clients answered, time, missing peers) above the bar, and
the latest ``metrics`` its tasks emitted (``namu.emit("metrics", accuracy=0.93)``)
replace the task's name beside it.

Use it as a context manager and pass it as one of the run's hooks::

    with ProgressHooks() as progress:
        result = artifact.run(hooks=progress, **inputs)

The bar is drawn on stderr and removed when the run ends (``transient``). When stderr is
not a terminal nothing is written at all (the counts are still kept), so piped output
and logs stay clean.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from namu.runtime.hooks import RunHooks, RunInfo, TaskCall

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
        #: the latest ``metrics`` a task emitted (shown beside the bar)
        self._metrics: dict[str, Any] = {}
        #: the federated round that closed last, not printed yet, and the metrics since
        self._round: dict[str, Any] | None = None
        self._round_metrics: dict[str, Any] = {}

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

    def on_event(self, name: str, data: Mapping[str, Any]) -> None:
        """``metrics`` (``namu.emit("metrics", accuracy=...)``): show the latest beside the
        bar; ``round`` (a federated round closed): print a line above it."""
        if name == "metrics":
            with self._lock:
                self._metrics.update(data)
                self._round_metrics.update(data)
                self._progress.update(self._task_id, last=_metrics_text(self._metrics))
        elif name == "round":
            self._print_round()  # the one before: its metrics are all in
            with self._lock:
                self._round, self._round_metrics = dict(data), {}

    def on_fanout(self, items: int) -> None:
        """A fan-out of ``items`` paths started: grow the total (and print the round
        before, if a federated round is pending)."""
        self._print_round()
        with self._lock:
            self.total += items
            self._progress.update(self._task_id, total=self.total)

    def on_run_end(self, run: RunInfo, error: BaseException | None) -> None:
        """The run ended: print the last federated round, if one is pending."""
        self._print_round()

    def _print_round(self) -> None:
        """``round 3 local_train: 10/10 clients answered in 0.41 s  accuracy 0.8412``: the round that
        closed last, with the metrics emitted since it closed (its evaluation)."""
        with self._lock:
            data, metrics = self._round, self._round_metrics
            self._round, self._round_metrics = None, {}
        if data is None:
            return
        missing = data.get("missing") or []
        line = (f"round {data.get('round')} {data.get('label', '')}: {data.get('answered')}/{data.get('asked')} "
                f"clients answered in {data.get('elapsed_s', 0.0):.2f} s")
        if missing:
            line += f", missing {', '.join(map(str, missing[:5]))}{' ...' if len(missing) > 5 else ''}"
        if metrics:
            line += f"  {_metrics_text(metrics)}"
        self.console.print(line, style="yellow" if missing else None, markup=False, highlight=False)

    def on_stopping(self, message: str) -> None:
        """An interrupted run is waiting for calls it cannot stop: say so above the bar."""
        self.console.print(message, style="yellow", markup=False, highlight=False, soft_wrap=True)


def _metrics_text(metrics: Mapping[str, Any]) -> str:
    """``accuracy 0.9304  loss 0.21``: numbers to 4 significant digits."""
    return "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
