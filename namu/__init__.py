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

import importlib
from typing import TYPE_CHECKING, Any

from namu import errors as _errors
from namu._version import __version__
from namu.errors import (
    AgentLimitError,
    AgentSpecError,
    ArtifactError,
    CacheError,
    CheckpointError,
    CircuitOpenError,
    CompileError,
    InputError,
    IRVerificationError,
    KernelError,
    LLMError,
    NamuError,
    OutputPathError,
    PassError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderUnavailableError,
    RateLimitError,
    RunCancelledError,
    SourceError,
    StaleArtifactError,
    TaskDefinitionError,
    TaskError,
    TaskResolutionError,
    TaskTimeoutError,
    ToolError,
    TypeCheckError,
    UnboundSlotError,
    UnhashableValue,
    WorkflowSyntaxError,
)
from namu.frontend.slot import Slot, slot
from namu.frontend.task import Task, task
from namu.frontend.workflow import Workflow, workflow
from namu.runtime.hooks import RunHooks, emit
from namu.runtime.result import RunResult, SkippedItem

if TYPE_CHECKING:
    from namu.compiler import compile  # noqa: A004
    from namu.frontend.agents.agent import Agent, agent
    from namu.passes.config import CompileConfig
    from namu.runtime.artifact import Artifact
    from namu.runtime.loader import load
    from namu.runtime.options import RunOptions
    from namu.runtime.tools.python import tool

#: names imported on first use (PEP 562), by the module defining each: they pull in
#: onnx, onnx_ir, numpy or pydantic, which ``import namu`` does without.
_LAZY = {
    "Agent": "namu.frontend.agents.agent",
    "agent": "namu.frontend.agents.agent",
    "Artifact": "namu.runtime.artifact",
    "CompileConfig": "namu.passes.config",
    "RunOptions": "namu.runtime.options",
    "compile": "namu.compiler",
    "load": "namu.runtime.loader",
    "tool": "namu.runtime.tools.python",
}


def __getattr__(name: str) -> Any:
    """Import a name of :data:`_LAZY` on first access (then it is a plain attribute).

    Raises:
        AttributeError: ``name`` is not one of namu's names.
    """
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Agent",
    "Artifact",
    "CompileConfig",
    "RunHooks",
    "RunOptions",
    "RunResult",
    "SkippedItem",
    "Slot",
    "Task",
    "Workflow",
    "__version__",
    "agent",
    "compile",
    "emit",
    "load",
    "slot",
    "task",
    "tool",
    "workflow",
    # every exception class of namu.errors is namu.<Name> too
    *(name for name in _errors.__all__ if name[0].isupper() and name in globals()),
]
