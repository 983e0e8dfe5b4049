"""The one exception tree for the whole of namu.

Every error namu raises on purpose derives from :class:`NamuError`, so a caller can
catch namu's failures in one place while a user's own exceptions (raised inside a
task) stay visible as the ``__cause__`` of a :class:`TaskError`.

::

    NamuError
    ├── WorkflowSyntaxError      a workflow uses a construct namu cannot lower (file:line:col)
    ├── TaskDefinitionError      invalid @namu.task / @namu.workflow / @namu.tool options
    ├── SourceError              a workflow source file is missing, of no known kind, or lacks the workflow named
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
    ├── UncacheableResult        a cached task's result cannot be copied for later calls (also a TypeError)
    ├── CacheError               the on-disk result cache cannot be opened or read
    ├── CheckpointError          a run's checkpoint file cannot be opened, read or written
    ├── RunHistoryError          the run history of agent runs cannot be opened, read or written
    ├── OutputPathError          a path namu was asked to write is not a regular file (a device, FIFO, ...)
    ├── KernelError              the native kernel rejected a plan or failed internally
    ├── AgentSpecError           an agent file is invalid (file:line:col of the key, and what to write)
    ├── LLMError                 a call of a language model failed (provider, model, status; retryable or not)
    │   ├── RateLimitError       429 / overloaded: retryable, honouring the server's retry-after
    │   ├── ProviderUnavailableError  5xx, a timeout or a dropped connection: retryable
    │   ├── ProviderRequestError the provider refused the request (400, 401, 403, 404): not retryable
    │   └── ProviderResponseError     the provider's answer could not be read (malformed JSON, ...): retryable
    ├── CircuitOpenError         a gate's circuit breaker is open: the call fails at once (its fallback runs)
    ├── ToolError                a tool refused its input or failed (the model gets it as an error result)
    └── AgentLimitError          a limit of an agent (iterations, cost, tokens, tool errors, time) ended its run
"""

from __future__ import annotations

__all__ = [
    "AgentLimitError",
    "AgentSpecError",
    "ArtifactError",
    "CircuitOpenError",
    "LLMError",
    "ProviderRequestError",
    "ProviderResponseError",
    "ProviderUnavailableError",
    "RateLimitError",
    "ToolError",
    "CacheError",
    "CheckpointError",
    "CompileError",
    "InputError",
    "IRVerificationError",
    "KernelError",
    "NamuError",
    "OutputPathError",
    "PassError",
    "RunCancelledError",
    "RunHistoryError",
    "SourceError",
    "StaleArtifactError",
    "TaskDefinitionError",
    "TaskError",
    "TaskResolutionError",
    "TaskTimeoutError",
    "TypeCheckError",
    "RoleBindingError",
    "UnboundSlotError",
    "UncacheableResult",
    "UnhashableValue",
    "WorkflowSyntaxError",
    "describe_exception",
    "first_line",
]


def first_line(text: object, *, mark_more: bool = False) -> str:
    """The first non-blank line of ``text`` (an error message that must stay on one line).

    Args:
        text: a message, or an exception (its ``str``).
        mark_more: end with `` ...`` when lines were dropped (a task's own message).

    Returns:
        The line, stripped; for no text at all, the exception's class name (or
        ``"unknown error"``).
    """
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    if not lines:
        return type(text).__name__ if isinstance(text, BaseException) else "unknown error"
    return lines[0] + (" ..." if mark_more and len(lines) > 1 else "")


def describe_exception(exc: BaseException) -> str:
    """``"ExceptionType: message"`` for ``exc``, even when its ``__str__`` raises.

    Error messages quote the user's exceptions; an exception class whose ``__str__`` is
    broken must not replace the error being reported (the task's name and workflow line)
    with a new one.

    Args:
        exc: any exception.

    Returns:
        ``"Type: message"``, ``"Type"`` when the message is empty, or
        ``"Type: <str() raised OtherType>"`` when the message cannot be computed.
    """
    name = type(exc).__name__
    try:
        message = str(exc)
    except Exception as failure:  # noqa: BLE001 - a broken __str__ is the user's bug, not ours
        message = f"<str() raised {type(failure).__name__}>"
    return f"{name}: {message}" if message else name


class NamuError(Exception):
    """Base class of every error namu raises on purpose.

    Attributes:
        pass_name: the compiler pass that raised it (the pass manager sets it and adds
            the note ``in compiler pass 'NAME'``; the message is unchanged), or None.
    """

    pass_name: str | None = None


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
    """Invalid options given to ``@namu.task``, ``@namu.workflow`` or ``@namu.tool``."""


class SourceError(NamuError):
    """A workflow source cannot be opened: the file is missing, no frontend reads its
    suffix, importing it failed, or it does not hold the workflow named (the cause, if
    any, is chained)."""


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


class RoleBindingError(CompileError):
    """What a role slot is bound to does not implement the slot's role: a method is
    missing or cannot take the role's arguments (the message names the slot, the role and
    the method)."""


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


class UncacheableResult(NamuError, TypeError):
    """A result that a cache cannot hand out copies of: every cache hit must behave like
    a fresh call, so a cached result is copied for each caller, and this one cannot be
    (a generator or another iterator, used up by its first reader; an object that
    neither pickle nor ``copy.deepcopy`` can copy).

    Raised by :meth:`namu.runtime.cache.MemoryCache.put`; a run reports it as a
    :class:`TaskError` naming the task and the call's workflow line, with this error as
    its cause.

    Attributes:
        what: the value, described (``"a generator"``, ``"a dict"``).
        why: why it cannot be cached and what to return instead.
    """

    def __init__(self, what: str, why: str) -> None:
        self.what = what
        self.why = why
        super().__init__(what, why)

    def __str__(self) -> str:
        return f"cannot cache {self.what}: {self.why}"


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


class OutputPathError(NamuError):
    """A path namu was asked to write (an artifact, an IR dump, a checkpoint, the result
    cache) exists and is not a regular file: a device such as ``/dev/null``, a FIFO, a
    socket or a directory. Nothing was written and the path is left as it was (see
    :mod:`namu.runtime.atomic_write`).

    Attributes:
        path: the path as given.
    """

    def __init__(self, message: str, *, path: str) -> None:
        self.path = path
        super().__init__(message)

    def __reduce__(self):
        return (_rebuild_store_error, (type(self), self.args[0], self.path))


class RunHistoryError(NamuError):
    """The run history (the SQLite file recording agent runs, ``namu runs``) cannot be
    created, opened, read or written, or is not a namu run history.

    Attributes:
        path: the history's database file.
    """

    def __init__(self, message: str, *, path: str) -> None:
        self.path = path
        super().__init__(message)

    def __reduce__(self):
        return (_rebuild_store_error, (type(self), self.args[0], self.path))


def _rebuild_store_error(
    cls: type[CacheError | CheckpointError | OutputPathError | RunHistoryError], message: str, path: str
) -> NamuError:
    return cls(message, path=path)


class KernelError(NamuError):
    """The native kernel rejected a plan (bad slot, cycle, arity) or failed internally."""


class AgentSpecError(NamuError):
    """An agent file is invalid: an unknown key, a wrong type, a bad template or YAML.

    The message starts ``file:line:col:`` (the key at fault) when the position is known.

    Attributes:
        path: the file, or "" (an agent given as a mapping).
        line, col: 1-based position of the key at fault, or 0.
    """

    def __init__(self, message: str, *, path: str = "", line: int = 0, col: int = 0) -> None:
        self.path = path
        self.line = line
        self.col = col
        super().__init__(message)

    def __reduce__(self):
        return (_rebuild_spec_error, (type(self), self.args[0], self.path, self.line, self.col))


def _rebuild_spec_error(cls: type[AgentSpecError], message: str, path: str, line: int, col: int) -> AgentSpecError:
    return cls(message, path=path, line=line, col=col)


class LLMError(NamuError):
    """A call of a language model failed.

    The message never holds an API key or a request's headers.

    Attributes:
        provider: ``"anthropic"``, ``"openai"``, ...
        model: the model called.
        status: the HTTP status of the failed response, or None (no response).
        retryable: a retry may succeed (rate limits, 5xx, timeouts, dropped connections,
            malformed responses); a ``namu.Gate`` retries only these.
        retry_after_s: how long the server asked to wait (``retry-after``), or None.
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.status = status
        self.retry_after_s = retry_after_s
        super().__init__(message)

    def __reduce__(self):
        return (_rebuild_llm_error, (type(self), self.args[0], self.provider, self.model, self.status, self.retry_after_s))


def _rebuild_llm_error(cls: type[LLMError], message: str, provider: str, model: str, status: int | None,
                       retry_after_s: float | None) -> LLMError:
    return cls(message, provider=provider, model=model, status=status, retry_after_s=retry_after_s)


class RateLimitError(LLMError):
    """The provider is rate limiting or overloaded (429, Anthropic 529): retry after ``retry_after_s``."""


class ProviderUnavailableError(LLMError):
    """A 5xx answer, a timeout or a dropped connection: retryable."""


class ProviderRequestError(LLMError):
    """The provider refused the request (400, 401, 403, 404, 422): retrying cannot help."""

    retryable = False


class ProviderResponseError(LLMError):
    """The provider's answer could not be read (malformed JSON, a broken stream): retryable."""


class CircuitOpenError(NamuError):
    """A gate's circuit breaker (an LLM's provider and model) is open after repeated
    failures: calls fail at once, not retried, until its cooldown ends (then one trial
    call is let through). A gate's fallback still runs."""

    retryable = False


class ToolError(NamuError):
    """A tool refused its input (a path outside its root, a host not allowed, a bad
    expression) or failed. The agent hands the message to the model as an error result."""


class AgentLimitError(NamuError):
    """A limit of an agent ended its run: a hard stop, never a soft hint.

    Attributes:
        limit: which limit: ``"max_iterations"``, ``"max_cost_usd"``, ``"max_tokens"``,
            ``"max_tool_calls"``, ``"max_tool_errors"`` or ``"timeout_s"``.
        result: the run's partial ``namu.runtime.llm.result.AgentResult`` (transcript, tool calls,
            usage and cost so far), or None.
    """

    retryable = False

    def __init__(self, message: str, *, limit: str, result: object = None) -> None:
        self.limit = limit
        self.result = result
        super().__init__(message)

    def __reduce__(self):
        return (_rebuild_limit_error, (type(self), self.args[0], self.limit, self.result))


def _rebuild_limit_error(cls: type[AgentLimitError], message: str, limit: str, result: object) -> AgentLimitError:
    return cls(message, limit=limit, result=result)


class RunCancelledError(KeyboardInterrupt):
    """A run was interrupted (Ctrl+C) and stopped.

    The first interrupt stops scheduling: async calls in flight are cancelled, queued
    calls are dropped, and calls already running in worker threads (which Python cannot
    stop) are waited for. A second interrupt during that wait abandons them: the run ends
    at once, and each abandoned call goes on in its thread until it returns (its result
    is dropped). It is a ``KeyboardInterrupt``, so ``except Exception`` does not swallow
    it; the original interrupt is its ``__cause__``.

    Attributes:
        finished: calls that finished (including those waited for after the interrupt).
        cancelled: calls cancelled in flight (async) or dropped before they started.
        abandoned: calls still running in worker threads when the run ended.
    """

    def __init__(self, finished: int, cancelled: int, abandoned: int = 0) -> None:
        message = f"run cancelled: {_calls(finished)} finished, {cancelled} cancelled"
        if abandoned:
            message += f", {abandoned} abandoned while still running in a worker thread"
        super().__init__(message)
        self.finished = finished
        self.cancelled = cancelled
        self.abandoned = abandoned

    def __reduce__(self):
        return (type(self), (self.finished, self.cancelled, self.abandoned))


def _calls(n: int) -> str:
    return f"{n} call" if n == 1 else f"{n} calls"
