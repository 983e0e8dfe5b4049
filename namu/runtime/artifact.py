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
from namu.runtime.executor_registry import executor_class
from namu.runtime.hooks import PREPARED_EVENTS, RunInfo, compose, needs
from namu.runtime.inputs import InputBinder
from namu.runtime.options import RunOptions, with_run_option_keywords
from namu.runtime.partitions import prepare_model
from namu.runtime.result import RunResult, RunState, enter_run, exit_run
from namu.runtime.tasks import SkipItem, TaskBinding

if TYPE_CHECKING:
    from namu.frontend.task import Task

__all__ = ["Artifact"]


def _in_a_run(run: Any) -> Any:
    """``run`` (a handler) called inside a run of its own, as tasks expect."""

    def handle(inputs: list[Any]) -> list[Any]:
        token = enter_run(RunState(hooks=None, events=frozenset(), disk_cache=None))
        try:
            return run(inputs)
        finally:
            exit_run(token)

    return handle


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
        self.signature, self.passport, self.task_table = metadata.ArtifactMetadata.of(model)
        self.bindings: dict[str, TaskBinding] = {}
        for key, task in tasks.items():
            if isinstance(task, TaskBinding):
                self.bindings[key] = task
            else:  # the digest of the code that will run (cache and checkpoint keys)
                self.bindings[key] = TaskBinding.of(key, task)
        #: run options a workflow parameter of the same name shadows (see :meth:`run`)
        self._shadowed = frozenset(RunOptions.model_fields) & {p.name for p in self.signature.params}
        #: the run options: the defaults, and what :meth:`with_options` set
        self._options = RunOptions()
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
    def _runner(self, executor: str, events: frozenset[str], task_mode: str = "inline") -> Any:
        """The prepared main graph for ``executor``, keyed by what its callables must do:
        report the events the run's hooks need (``events``, cut to
        :data:`~namu.runtime.hooks.PREPARED_EVENTS`; a checkpointed run's journal is one
        of its hooks). Runs without such hooks pay nothing for them: plain tasks stay
        direct calls."""
        events = events & PREPARED_EVENTS
        key = (executor, events, task_mode)
        runner = self._runners.get(key)
        if runner is None:
            with self._lock:
                runner = self._runners.get(key)
                if runner is None:
                    cls = executor_class(executor)
                    prepared = cls(self.bindings, self._functions(), events=events, task_mode=task_mode, passport=self.passport)
                    wire_timeout_s = self.passport.options.get("wire_timeout_s")
                    runner = self._runners[key] = prepare_model(prepared, self.model, wire_timeout_s)
        return runner

    def _functions(self) -> dict[str, ir.Function]:
        return {f.name: f for f in self.model.functions.values() if f.domain == WORKFLOW_DOMAIN}

    def with_options(self, **options: Any) -> Artifact:
        """This artifact with run options preset (:class:`~namu.runtime.options.RunOptions`):
        its ``run()`` and calls use them unless given again. The way to set a run option
        that a workflow parameter of the same name shadows
        (``art.with_options(workers=8)(workers=3)`` runs with 8 pool threads and the input
        ``workers=3``).

        Raises:
            TypeError: a name is not a run option.
            ValueError: a value is invalid (an unknown executor, ``max_concurrency=0``, ...).
        """
        view = copy.copy(self)
        view._options = RunOptions.of({**dict(self._options), **options})
        return view

    @with_run_option_keywords
    def run(self, *args: Any, **kwargs: Any) -> RunResult:
        """Run the workflow.

        A keyword naming a parameter of the workflow is always an input, as in a plain
        call, even when a run option has the same name (set such an option with
        :meth:`with_options`). Options not given take the :meth:`with_options` preset,
        else their defaults.

        Args:
            *args, **kwargs: the workflow's inputs, and the run options: the fields of
                :class:`~namu.runtime.options.RunOptions` (``executor``, ``hooks``,
                ``cache_dir``, ``checkpoint``, ``task_mode``, ``max_concurrency``,
                ``workers``), described there.

        Returns:
            A :class:`RunResult` with the value and the run's metadata.

        Raises:
            ValueError: a run option's value is invalid (an unknown executor, ...).
            InputError: an input does not match the signature.
            TaskError: a task raised; its exception is chained as ``__cause__``.
            CacheError: the cache directory cannot be opened.
            CheckpointError: the checkpoint file cannot be opened, read or written, or
                the inputs cannot be content-addressed.
        """
        given = {name: kwargs.pop(name) for name in RunOptions.model_fields if name in kwargs and name not in self._shadowed}
        options = RunOptions.of({**dict(self._options), **given}) if given else self._options
        inputs = self._binder.bind(args, kwargs)
        disk_cache = open_disk_cache(options.cache_dir)
        journal = None
        try:
            if options.checkpoint is not None:
                journal = Journal.for_run(options.checkpoint, self.passport.workflow_digest, inputs)
            hooks = compose(journal, options.hooks)  # the journal first: it serves recorded calls
            events = needs(hooks)
            runner = self._runner(options.executor, events, options.task_mode)
            state = RunState(hooks=hooks, events=events, disk_cache=disk_cache, journal=journal)
            info = RunInfo(self.name, options.executor) if hooks is not None else None
            token = enter_run(state)
            start = time.perf_counter()
            try:
                if hooks is not None:
                    hooks.on_run_start(info)
                outputs = runner(
                    inputs,
                    max_concurrency=options.max_concurrency,
                    workers=options.workers,
                    recursion_limit=options.recursion_limit,
                )
            except SkipItem as exc:  # an on_error="skip" task failed outside any fan-out
                cls = TaskTimeoutError if isinstance(exc, TaskTimeoutError) else TaskError
                error = cls(str(exc), task=exc.task, span=exc.span)
                error.__cause__ = exc.__cause__
                if hooks is not None:
                    hooks.on_run_end(info, error)
                raise error from exc.__cause__
            except BaseException as exc:
                if hooks is not None:
                    hooks.on_run_end(info, exc)
                raise
            else:
                if hooks is not None:
                    hooks.on_run_end(info, None)
            finally:
                exit_run(token)
            elapsed = time.perf_counter() - start
        finally:
            if journal is not None:
                journal.close()
            if disk_cache is not None:
                disk_cache.close()
        resumed = journal.served if journal is not None else 0
        return RunResult(self._shape(outputs), list(state.skipped), elapsed, options.executor, resumed)

    def handler_placements(self) -> list[str]:
        """The peer classes this artifact has handler partitions for (a federated
        program's ``["client"]``), sorted; empty for any other workflow."""
        import json

        return sorted(json.loads(self.model.metadata_props.get(metadata.HANDLERS_KEY, "{}")))

    def handlers(self, placement: str, executor: str = "kernel") -> dict[str, Any]:
        """The handlers of ``placement``'s partition, by channel, each ``inputs ->
        outputs``: what a peer of that class runs for each request of a remote fan-out
        (``namu federated client``).

        Raises:
            KeyError: the artifact has no handler partition for ``placement`` (the
                message lists those it has).
        """
        from namu.runtime.federation import FederatedRunner

        runner = self._runner(executor, frozenset())
        handlers = runner.handlers if isinstance(runner, FederatedRunner) else {}
        if placement not in handlers:
            have = ", ".join(sorted(handlers)) or "none"
            raise KeyError(f"{self.name} has no handler partition {placement!r} (it has: {have})")
        return {channel: _in_a_run(run) for channel, run in handlers[placement].items()}

    def _shape(self, outputs: list[Any]) -> Any:
        kind = self.signature.returns
        if kind == "tuple":
            return tuple(outputs)
        if kind == "dict":
            return dict(zip(self.signature.return_keys, outputs))
        return outputs[0]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run(*args, **kwargs).value
