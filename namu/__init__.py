"""namu: a compiler toolchain for AI pipelines.

Write plain Python tasks and workflows; namu lowers them to an ONNX-compatible IR,
runs compiler passes over it, and executes it on a native Rust kernel::

    import namu

    @namu.task
    def add(a: int, b: int) -> int:
        return a + b

    @namu.workflow
    def compute(x: int = 1) -> int:
        y = add(x, 2)
        return add(y, 40)

    compute(x=1)                    # 43: compiles once (cached), then runs
    art = namu.compile(compute)     # namu.Artifact
    art.save("compute.onnx")
    wf = namu.load("compute.onnx")  # callable
    wf(x=1)                         # 43
"""

from __future__ import annotations

from namu._version import __version__
from namu.compiler import compile  # noqa: A004
from namu.passes.config import CompileConfig
from namu.errors import (
    ArtifactError,
    CacheError,
    CheckpointError,
    CompileError,
    InputError,
    IRVerificationError,
    KernelError,
    NamuError,
    OutputPathError,
    PassError,
    RunCancelledError,
    SourceError,
    StaleArtifactError,
    TaskDefinitionError,
    TaskError,
    TaskResolutionError,
    TaskTimeoutError,
    TypeCheckError,
    UnboundSlotError,
    UnhashableValue,
    WorkflowSyntaxError,
)
from namu.frontend.slot import Slot, slot
from namu.frontend.task import Task, task
from namu.frontend.workflow import Workflow, workflow
from namu.runtime.artifact import Artifact
from namu.runtime.loader import load
from namu.runtime.hooks import RunHooks
from namu.runtime.options import RunOptions
from namu.runtime.result import RunResult, SkippedItem

__all__ = [
    "Artifact",
    "ArtifactError",
    "CacheError",
    "CheckpointError",
    "CompileConfig",
    "CompileError",
    "IRVerificationError",
    "InputError",
    "KernelError",
    "NamuError",
    "OutputPathError",
    "PassError",
    "RunCancelledError",
    "RunHooks",
    "RunOptions",
    "RunResult",
    "SkippedItem",
    "Slot",
    "SourceError",
    "StaleArtifactError",
    "Task",
    "TaskDefinitionError",
    "TaskError",
    "TaskResolutionError",
    "TaskTimeoutError",
    "TypeCheckError",
    "UnboundSlotError",
    "UnhashableValue",
    "Workflow",
    "WorkflowSyntaxError",
    "__version__",
    "compile",
    "load",
    "slot",
    "task",
    "workflow",
]
