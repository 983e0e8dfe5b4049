"""The one exception tree for the whole of namu.

Every error namu raises on purpose derives from :class:`NamuError`, so a caller can
catch namu's failures in one place while a user's own exceptions (raised inside a
task) stay visible as the ``__cause__`` of a :class:`TaskError`.

::

    NamuError
    ├── WorkflowSyntaxError      a workflow uses a construct namu cannot lower (file:line:col)
    ├── TaskDefinitionError      invalid @namu.task / @namu.workflow options
    ├── InputError               a workflow input does not match its annotation
    ├── IRVerificationError      malformed IR (a pass or the loader found it)
    ├── CompileError             a pass rejected the workflow at a source line (file:line:col)
    │   ├── TypeCheckError       a value's type does not match the annotation it meets
    │   └── UnboundSlotError     a role slot has no implementation bound at compile time
    ├── PassError                a compiler pass failed; names the pass
    ├── ArtifactError            a file is not a readable namu artifact
    │   ├── StaleArtifactError   a task's source changed since the artifact was compiled
    │   └── TaskResolutionError  a task's module or definition cannot be found
    ├── TaskError                a task raised while a workflow ran (user error chained)
    │   └── TaskTimeoutError     a task ran longer than its ``timeout_s``
    ├── UnhashableValue          a value has no content digest (also a TypeError)
    ├── CacheError               the on-disk result cache cannot be opened or read
    ├── CheckpointError          a run's checkpoint file cannot be opened, read or written
    └── KernelError              the native kernel rejected a plan or failed internally
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "CacheError",
    "CheckpointError",
    "CompileError",
    "InputError",
    "IRVerificationError",
    "KernelError",
    "NamuError",
    "PassError",
    "RunCancelledError",
    "StaleArtifactError",
    "TaskDefinitionError",
    "TaskError",
    "TaskResolutionError",
    "TaskTimeoutError",
    "TypeCheckError",
    "UnboundSlotError",
    "UnhashableValue",
    "WorkflowSyntaxError",
]


class NamuError(Exception):
    """Base class of every error namu raises on purpose."""


class WorkflowSyntaxError(NamuError):
    """A workflow body uses a construct that namu cannot lower with its Python meaning.

    Attributes:
        filename: absolute path of the file holding the workflow.
        lineno: 1-based line of the offending construct.
        col_offset: 0-based column of the offending construct.
        source_line: the text of that line (without its newline), or ``""``.
        reason: the message without location.
    """

    def __init__(
        self, reason: str, *, filename: str, lineno: int, col_offset: int, source_line: str = ""
    ) -> None:
        self.reason = reason
        self.filename = filename
        self.lineno = lineno
        self.col_offset = col_offset
        self.source_line = source_line
        super().__init__(self._format())

    def _format(self) -> str:
        head = f"{self.filename}:{self.lineno}:{self.col_offset + 1}: {self.reason}"
        if not self.source_line:
            return head
        stripped = self.source_line.lstrip()
        indent = len(self.source_line) - len(stripped)
        caret = " " * (4 + max(self.col_offset - indent, 0)) + "^"
        return f"{head}\n    {stripped}\n{caret}"

    def __reduce__(self):  # keep keyword-only construction picklable
        return (
            _rebuild_syntax_error,
            (self.reason, self.filename, self.lineno, self.col_offset, self.source_line),
        )


def _rebuild_syntax_error(
    reason: str, filename: str, lineno: int, col_offset: int, source_line: str
) -> WorkflowSyntaxError:
    return WorkflowSyntaxError(
        reason, filename=filename, lineno=lineno, col_offset=col_offset, source_line=source_line
    )


class TaskDefinitionError(NamuError, TypeError):
    """Invalid options given to ``@namu.task`` or ``@namu.workflow``."""


class InputError(NamuError, TypeError):
    """A workflow input is missing, unknown, or does not match its annotation.

    Attributes:
        parameter: name of the offending parameter.
    """

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        self.parameter = parameter
        super().__init__(message)


class IRVerificationError(NamuError):
    """The IR is malformed: an undeclared opset, a duplicate SSA name, a cycle, ..."""


class CompileError(NamuError):
    """A compiler pass rejected the workflow at a source location.

    The message is ``file:line:col: reason``, followed by the source line and a caret
    when the file can be read (the onnxscript ``SourceInfo`` habit).

    Attributes:
        reason: the message without location.
        span: ``"file:line:col"`` of the IR node's source construct, or ``""``.
    """

    def __init__(self, reason: str, *, span: str = "") -> None:
        self.reason = reason
        self.span = span
        super().__init__(_format_span(reason, span))

    def __reduce__(self):  # keep keyword-only construction picklable
        return (_rebuild_compile_error, (type(self), self.reason, self.span))


def _rebuild_compile_error(cls: type[CompileError], reason: str, span: str) -> CompileError:
    return cls(reason, span=span)


def _format_span(reason: str, span: str) -> str:
    if not span:
        return reason
    import linecache

    filename, _, rest = span.rpartition(":")
    filename, _, line_text = filename.rpartition(":")
    try:
        lineno, col = int(line_text), int(rest)
    except ValueError:
        return f"{span}: {reason}"
    line = linecache.getline(filename, lineno).rstrip("\n")
    head = f"{span}: {reason}"
    if not line.strip():
        return head
    stripped = line.lstrip()
    caret = " " * (4 + max(col - 1 - (len(line) - len(stripped)), 0)) + "^"
    return f"{head}\n    {stripped}\n{caret}"


class TypeCheckError(CompileError):
    """A value's static type does not match the annotation it is passed to."""


class UnboundSlotError(CompileError):
    """A role slot (an agent's LLM, a federated Module's aggregator, ...) has no binding."""


class PassError(NamuError):
    """A compiler pass failed. The message names the pass; the cause is chained."""


class ArtifactError(NamuError):
    """A file is missing, corrupt, or not an artifact compiled by namu."""


class StaleArtifactError(ArtifactError):
    """A task's source changed since the artifact was compiled.

    Attributes:
        task: qualified name of the stale task.
    """

    def __init__(self, message: str, *, task: str) -> None:
        self.task = task
        super().__init__(message)


class TaskResolutionError(ArtifactError):
    """A task named in an artifact's task table cannot be imported or found."""


class TaskError(NamuError):
    """A task raised while a workflow ran. The task's own exception is ``__cause__``.

    Attributes:
        task: the task's name.
        span: ``"file:line:col"`` of the call in the workflow source, or ``""``.
    """

    def __init__(self, message: str, *, task: str, span: str = "") -> None:
        self.task = task
        self.span = span
        super().__init__(message)

    def __reduce__(self):
        return (_rebuild_task_error, (type(self), self.args[0], self.task, self.span))


def _rebuild_task_error(cls: type[TaskError], message: str, task: str, span: str) -> TaskError:
    return cls(message, task=task, span=span)


class TaskTimeoutError(TaskError):
    """A task ran longer than its ``timeout_s`` option allows."""


class UnhashableValue(NamuError, TypeError):
    """A value cannot be content-addressed (:func:`namu.runtime.content.content_digest`).

    The runtime treats it as "do not cache": a task call whose arguments raise it runs
    uncached and is not journaled.

    Attributes:
        type_name: ``module.qualname`` of the offending value's type.
    """

    def __init__(self, message: str, *, type_name: str) -> None:
        self.type_name = type_name
        super().__init__(message)

    def __reduce__(self):
        return (_rebuild_unhashable, (self.args[0], self.type_name))


def _rebuild_unhashable(message: str, type_name: str) -> UnhashableValue:
    return UnhashableValue(message, type_name=type_name)


class CacheError(NamuError):
    """The on-disk result cache (``cache_dir``) cannot be created, opened or read.

    Attributes:
        path: the cache's database file.
    """

    def __init__(self, message: str, *, path: str) -> None:
        self.path = path
        super().__init__(message)

    def __reduce__(self):
        return (_rebuild_store_error, (type(self), self.args[0], self.path))


class CheckpointError(NamuError):
    """A run's checkpoint file cannot be created, opened, read or written.

    Attributes:
        path: the checkpoint's database file.
    """

    def __init__(self, message: str, *, path: str) -> None:
        self.path = path
        super().__init__(message)

    def __reduce__(self):
        return (_rebuild_store_error, (type(self), self.args[0], self.path))


def _rebuild_store_error(cls: type[CacheError | CheckpointError], message: str, path: str) -> NamuError:
    return cls(message, path=path)


class KernelError(NamuError):
    """The native kernel rejected a plan (bad slot, cycle, arity) or failed internally."""


class RunCancelledError(KeyboardInterrupt):
    """A run was interrupted (Ctrl+C) and stopped cleanly.

    Everything in flight was cancelled (async tasks) or allowed to finish (a thread cannot
    be killed), and no worker thread is left running. It is a ``KeyboardInterrupt``, so
    ``except Exception`` does not swallow it; the original interrupt is its ``__cause__``.

    Attributes:
        finished: calls that finished before the interruption.
        cancelled: calls in flight that were cancelled or dropped before they started.
    """

    def __init__(self, finished: int, cancelled: int) -> None:
        super().__init__(f"run cancelled: {finished} calls finished, {cancelled} in flight were cancelled")
        self.finished = finished
        self.cancelled = cancelled
