"""A compiled workflow: the IR model plus the tasks it calls, ready to save or run."""

from __future__ import annotations

import copy
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx
import onnx_ir as ir

from namu.errors import TaskError, TaskTimeoutError
from namu.ir import metadata
from namu.ir.opsets import WORKFLOW_DOMAIN
from namu.ir.serde import to_proto
from namu.runtime.atomic_write import write_atomic
from namu.runtime.cache import open_disk_cache
from namu.runtime.checkpoint import Journal
from namu.runtime.executors import DEFAULT_MAX_CONCURRENCY, EXECUTORS
from namu.runtime.inputs import InputBinder
from namu.runtime.partitions import prepare_model
from namu.runtime.result import RunObserver, RunResult, RunState, enter_run, exit_run
from namu.runtime.tasks import SkipItem, TaskBinding

if TYPE_CHECKING:
    from namu.frontend.task import Task

__all__ = ["RUN_OPTIONS", "Artifact"]


class _Default:
    """The default of a run option the caller did not pass (see :meth:`Artifact.run`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<default>"


_DEFAULT: Any = _Default()

#: the run options of :meth:`Artifact.run` and their defaults.
RUN_OPTIONS: dict[str, Any] = {
    "executor": "kernel",
    "observer": None,
    "cache_dir": None,
    "checkpoint": None,
    "task_mode": "inline",
    "max_concurrency": DEFAULT_MAX_CONCURRENCY,
    "workers": None,
}


class Artifact:
    """A compiled workflow. Call it like the workflow; save it as ``.onnx``.

    Args:
        model: the IR (an ``onnx_ir.Model`` with namu's metadata).
        tasks: the task table's keys bound to live :class:`~namu.frontend.task.Task`
            objects or resolved :class:`TaskBinding` (as :func:`namu.load` does).

    Raises:
        ArtifactError: the model's namu metadata is missing or not valid JSON of its
            model (:func:`namu.load` checks it against the graph first).

    Attributes:
        model: the IR.
        signature: the workflow's :class:`~namu.ir.metadata.Signature`.
        passport: the compile :class:`~namu.ir.metadata.Passport`.
        task_table: the :class:`~namu.ir.metadata.TaskTable`.
    """

    def __init__(self, model: ir.Model, tasks: dict[str, Task | TaskBinding]) -> None:
        self.model = model
        self.signature, self.passport, self.task_table = metadata.read_metadata(model)
        self.bindings: dict[str, TaskBinding] = {}
        for key, task in tasks.items():
            if isinstance(task, TaskBinding):
                self.bindings[key] = task
            else:  # the digest of the code that will run (cache and checkpoint keys)
                self.bindings[key] = TaskBinding(key, task.name, task.fn, task.options, task.is_async, task.digest)
        #: run options a workflow parameter of the same name shadows (see :meth:`run`)
        self._shadowed = frozenset(RUN_OPTIONS) & {p.name for p in self.signature.params}
        self._preset: dict[str, Any] = {}
        #: per-pass time and change count of the compile that built this artifact
        #: (empty for a loaded artifact)
        self.pass_records: list[Any] = []
        self._binder = InputBinder(self.signature)
        self._runners: dict[tuple[str, bool, bool], Any] = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.signature.name

    def __repr__(self) -> str:
        from namu.ir.printer import count_nodes

        return f"<namu.Artifact {self.name}: {count_nodes(self.model)} ops, {len(self.bindings)} tasks>"

    # ------------------------------------------------------------------ saving
    def to_proto(self) -> onnx.ModelProto:
        """The artifact as an ``onnx.ModelProto`` (opaque types filled in)."""
        return to_proto(self.model)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the artifact to ``path`` atomically (see :mod:`namu.runtime.atomic_write`).

        A symlink is written through to its target; missing parent directories are
        created; a new file gets the mode ``open()`` would give (``0o666 & ~umask``), an
        overwritten one keeps its mode. Readers see the old file or the new one, never
        a part, and a killed save leaves no file behind.

        Returns:
            ``path``, as a ``Path``.

        Raises:
            OutputPathError: ``path`` exists and is not a regular file (a device, a
                FIFO, a directory); it is left as it was.
            OSError: the file cannot be written.
        """
        return write_atomic(path, self.to_proto().SerializeToString())

    # ------------------------------------------------------------------ running
    def _runner(self, executor: str, observed: bool, journaled: bool = False, task_mode: str = "inline") -> Any:
        """The prepared main graph for ``executor``. Observed runs (progress reporting)
        and checkpointed runs (every task call journaled) get their own preparation, so
        other runs pay nothing for them and plain tasks stay direct calls."""
        key = (executor, observed, journaled, task_mode)
        runner = self._runners.get(key)
        if runner is None:
            with self._lock:
                runner = self._runners.get(key)
                if runner is None:
                    try:
                        cls = EXECUTORS[executor]
                    except KeyError:
                        raise ValueError(f"unknown executor {executor!r}; choose one of {sorted(EXECUTORS)}") from None
                    bindings = self.bindings
                    if journaled:
                        bindings = {k: b.for_checkpoint() for k, b in self.bindings.items()}
                    prepared = cls(bindings, self._functions(), observed=observed, task_mode=task_mode, passport=self.passport)
                    wire_timeout_s = self.passport.options.get("wire_timeout_s")
                    runner = self._runners[key] = prepare_model(prepared, self.model, wire_timeout_s)
        return runner

    def _functions(self) -> dict[str, ir.Function]:
        return {f.name: f for f in self.model.functions.values() if f.domain == WORKFLOW_DOMAIN}

    def with_options(self, **options: Any) -> Artifact:
        """This artifact with run options preset (:data:`RUN_OPTIONS`): its ``run()`` and
        calls use them unless given again. The way to set a run option that a workflow
        parameter of the same name shadows (``art.with_options(workers=8)(workers=3)``
        runs with 8 pool threads and the input ``workers=3``).

        Raises:
            TypeError: a name is not a run option.
        """
        unknown = sorted(set(options) - set(RUN_OPTIONS))
        if unknown:
            raise TypeError(f"unknown run option(s) {', '.join(map(repr, unknown))}; run options are: {', '.join(RUN_OPTIONS)}")
        view = copy.copy(self)
        view._preset = {**self._preset, **options}
        return view

    def run(
        self,
        *args: Any,
        executor: str = _DEFAULT,
        observer: RunObserver | None = _DEFAULT,
        cache_dir: str | os.PathLike[str] | None = _DEFAULT,
        checkpoint: str | os.PathLike[str] | None = _DEFAULT,
        task_mode: str = _DEFAULT,
        max_concurrency: int = _DEFAULT,
        workers: int | None = _DEFAULT,
        **kwargs: Any,
    ) -> RunResult:
        """Run the workflow.

        A keyword naming a parameter of the workflow is always an input, as in a plain
        call, even when a run option has the same name (set such an option with
        :meth:`with_options`). Options not given take the :meth:`with_options` preset,
        else their defaults (:data:`RUN_OPTIONS`).

        Args:
            *args, **kwargs: the workflow's inputs.
            executor: ``"kernel"`` (native, default) or ``"reference"`` (pure Python).
            observer: receives progress events (see :class:`~namu.runtime.result.RunObserver`).
            cache_dir: directory of the on-disk result cache for ``cache=True`` and
                ``pure=True`` tasks (default: ``$NAMU_CACHE_DIR``; unset: memory only).
                See :mod:`namu.runtime.cache`.
            checkpoint: a checkpoint file: every completed task call is recorded there,
                and a run with the same inputs and file resumes, serving recorded calls
                instead of running them. See :mod:`namu.runtime.checkpoint`.
            task_mode: how synchronous tasks without their own ``mode`` option run on
                the kernel: ``"inline"`` (called by the scheduler itself) or
                ``"thread"`` (on a pool of ``workers`` threads with work stealing).
            max_concurrency: most ``async def`` task calls in flight at once (>= 1).
            workers: threads of the worker pool (default: the number of CPUs).

        Returns:
            A :class:`RunResult` with the value and the run's metadata.

        Raises:
            InputError: an input does not match the signature.
            TaskError: a task raised; its exception is chained as ``__cause__``.
            CacheError: the cache directory cannot be opened.
            CheckpointError: the checkpoint file cannot be opened, read or written, or
                the inputs cannot be content-addressed.
        """
        given = {
            "executor": executor,
            "observer": observer,
            "cache_dir": cache_dir,
            "checkpoint": checkpoint,
            "task_mode": task_mode,
            "max_concurrency": max_concurrency,
            "workers": workers,
        }
        options = {**RUN_OPTIONS, **self._preset}
        for name, value in given.items():
            if value is _DEFAULT:
                continue
            if name in self._shadowed:  # the workflow's own parameter: an input
                kwargs[name] = value
            else:
                options[name] = value
        executor, observer, cache_dir, checkpoint = (options[k] for k in ("executor", "observer", "cache_dir", "checkpoint"))
        task_mode, max_concurrency, workers = options["task_mode"], options["max_concurrency"], options["workers"]
        if task_mode not in ("inline", "thread"):
            raise ValueError(f"task_mode must be 'inline' or 'thread', got {task_mode!r}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        inputs = self._binder.bind(args, kwargs)
        disk_cache = open_disk_cache(cache_dir)
        journal = None
        try:
            if checkpoint is not None:
                journal = Journal.for_run(checkpoint, self.passport.workflow_digest, inputs)
            runner = self._runner(executor, observer is not None, journal is not None, task_mode)
            state = RunState(observer=observer, journal=journal, disk_cache=disk_cache)
            token = enter_run(state)
            start = time.perf_counter()
            try:
                outputs = runner(inputs, max_concurrency=max_concurrency, workers=workers)
            except SkipItem as exc:  # an on_error="skip" task failed outside any fan-out
                cls = TaskTimeoutError if isinstance(exc, TaskTimeoutError) else TaskError
                raise cls(str(exc), task=exc.task, span=exc.span) from exc.__cause__
            finally:
                exit_run(token)
            elapsed = time.perf_counter() - start
        finally:
            if journal is not None:
                journal.close()
            if disk_cache is not None:
                disk_cache.close()
        resumed = journal.served if journal is not None else 0
        return RunResult(self._shape(outputs), list(state.skipped), elapsed, executor, resumed)

    def _shape(self, outputs: list[Any]) -> Any:
        kind = self.signature.returns
        if kind == "tuple":
            return tuple(outputs)
        if kind == "dict":
            return dict(zip(self.signature.return_keys, outputs))
        return outputs[0]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run(*args, **kwargs).value
