"""A compiled workflow: the IR model plus the tasks it calls, ready to save or run."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx
import onnx_ir as ir

from namu.errors import TaskError
from namu.ir import metadata
from namu.ir.opsets import WORKFLOW_DOMAIN
from namu.ir.serde import to_proto
from namu.runtime.executors import EXECUTORS
from namu.runtime.inputs import InputBinder
from namu.runtime.result import RunObserver, RunResult, RunState, enter_run, exit_run
from namu.runtime.tasks import SkipItem, TaskBinding

if TYPE_CHECKING:
    from namu.frontend.task import Task

__all__ = ["Artifact"]


class Artifact:
    """A compiled workflow. Call it like the workflow; save it as ``.onnx``.

    Args:
        model: the IR (an ``onnx_ir.Model`` with namu's metadata).
        tasks: the task table's keys bound to live :class:`~namu.frontend.task.Task`
            objects or resolved :class:`TaskBinding` (as :func:`namu.load` does).

    Attributes:
        model: the IR.
        signature: the workflow's :class:`~namu.ir.metadata.Signature`.
        passport: the compile :class:`~namu.ir.metadata.Passport`.
        task_table: the :class:`~namu.ir.metadata.TaskTable`.
    """

    def __init__(self, model: ir.Model, tasks: dict[str, Task | TaskBinding]) -> None:
        self.model = model
        props = model.metadata_props
        self.signature = metadata.Signature.model_validate_json(props[metadata.SIGNATURE_KEY])
        self.passport = metadata.Passport.model_validate_json(props[metadata.PASSPORT_KEY])
        self.task_table = metadata.TaskTable.model_validate_json(props[metadata.TASKS_KEY])
        self.bindings: dict[str, TaskBinding] = {}
        for key, task in tasks.items():
            if isinstance(task, TaskBinding):
                self.bindings[key] = task
            else:
                self.bindings[key] = TaskBinding(key, task.name, task.fn, task.options, task.is_async)
        self._binder = InputBinder(self.signature)
        self._runners: dict[tuple[str, bool], Any] = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.signature.name

    def __repr__(self) -> str:
        return f"<namu.Artifact {self.name}: {len(self.model.graph)} ops, {len(self.bindings)} tasks>"

    # ------------------------------------------------------------------ saving
    def to_proto(self) -> onnx.ModelProto:
        """The artifact as an ``onnx.ModelProto`` (opaque types filled in)."""
        return to_proto(self.model)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the artifact to ``path`` atomically (temporary file, then rename).

        Returns:
            The path written.
        """
        target = Path(path)
        data = self.to_proto().SerializeToString()
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    # ------------------------------------------------------------------ running
    def _runner(self, executor: str, observed: bool) -> Any:
        """The prepared main graph for ``executor``; observed runs (progress reporting)
        get their own preparation so unobserved runs pay nothing for it."""
        key = (executor, observed)
        runner = self._runners.get(key)
        if runner is None:
            with self._lock:
                runner = self._runners.get(key)
                if runner is None:
                    try:
                        cls = EXECUTORS[executor]
                    except KeyError:
                        raise ValueError(f"unknown executor {executor!r}; choose one of {sorted(EXECUTORS)}") from None
                    prepared = cls(self.bindings, self._functions(), observed=observed)
                    runner = self._runners[key] = prepared.prepare(self.model.graph)
        return runner

    def _functions(self) -> dict[str, ir.Function]:
        return {f.name: f for f in self.model.functions.values() if f.domain == WORKFLOW_DOMAIN}

    def run(self, *args: Any, executor: str = "kernel", observer: RunObserver | None = None, **kwargs: Any) -> RunResult:
        """Run the workflow.

        Args:
            *args, **kwargs: the workflow's inputs.
            executor: ``"kernel"`` (native, default) or ``"reference"`` (pure Python).
            observer: receives progress events (see :class:`~namu.runtime.result.RunObserver`).

        Returns:
            A :class:`RunResult` with the value and the run's metadata.

        Raises:
            InputError: an input does not match the signature.
            TaskError: a task raised; its exception is chained as ``__cause__``.
        """
        inputs = self._binder.bind(args, kwargs)
        runner = self._runner(executor, observer is not None)
        state = RunState(observer=observer)
        token = enter_run(state)
        start = time.perf_counter()
        try:
            outputs = runner(inputs)
        except SkipItem as exc:  # an on_error="skip" task failed outside any fan-out
            raise TaskError(str(exc), task=exc.task, span=exc.span) from exc.__cause__
        finally:
            exit_run(token)
        elapsed = time.perf_counter() - start
        return RunResult(self._shape(outputs), list(state.skipped), elapsed, executor)

    def _shape(self, outputs: list[Any]) -> Any:
        kind = self.signature.returns
        if kind == "tuple":
            return tuple(outputs)
        if kind == "dict":
            return dict(zip(self.signature.return_keys, outputs))
        return outputs[0]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run(*args, **kwargs).value
