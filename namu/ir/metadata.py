"""Model-level metadata of a namu artifact: task table, workflow signature, passport.

Each is a pydantic model stored as JSON in ``ModelProto.metadata_props`` under its key:

=====================  ===============================================================
key                     content
=====================  ===============================================================
``namu.tasks``          :class:`TaskTable`: every task the graph calls
``namu.signature``      :class:`Signature`: the workflow's parameters and return shape
``namu.passport``       :class:`Passport`: namu version, passes run, source digest
=====================  ===============================================================

Per-node and per-value keys: ``namu.span`` (``"file:line:col"`` of the source
construct) on every node, ``namu.type`` on opaque values (see :mod:`namu.ir.types`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

import pydantic

if TYPE_CHECKING:
    import onnx_ir as ir

__all__ = [
    "PASSPORT_KEY",
    "SIGNATURE_KEY",
    "SPAN_KEY",
    "CALL_SPAN_KEY",
    "FREE_KEY",
    "PRIORITY_KEY",
    "DIGEST_KEY",
    "INLINE_KEY",
    "SYMBOL_KEY",
    "TASKS_KEY",
    "Parameter",
    "Passport",
    "Signature",
    "TaskEntry",
    "TaskOptions",
    "TaskTable",
]

TASKS_KEY = "namu.tasks"
SIGNATURE_KEY = "namu.signature"
PASSPORT_KEY = "namu.passport"
#: ``"file:line:col"`` of the source construct a node was lowered from.
SPAN_KEY = "namu.span"
#: after inlining: the span of the sub-workflow call a node was inlined through.
CALL_SPAN_KEY = "namu.call_span"
#: after plan-lifetimes: JSON list of the names of the values whose last use is the node.
FREE_KEY = "namu.free"
#: after assign-priorities: the node's critical-path priority (a decimal integer).
PRIORITY_KEY = "namu.priority"
#: after resolve-symbols: ``module.qualname`` of a called task, or a called function's name.
SYMBOL_KEY = "namu.symbol"
#: after resolve-symbols: the source digest of a called task.
DIGEST_KEY = "namu.digest"
#: on a sub-workflow FunctionProto: ``"false"`` keeps its calls (``@namu.workflow(inline=False)``).
INLINE_KEY = "namu.inline"


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class TaskOptions(_Strict):
    """Options of ``@namu.task``; validated when the decorator runs.

    Attributes:
        name: the task's name in the IR and in errors (default: the function's name).
        version: a free-form version label recorded in the task table.
        retries: how many times a failing call is retried before it fails (>= 0).
        timeout_s: wall-clock limit of one call, in seconds (> 0), or None for no limit.
        pure: the task has no side effects and depends only on its inputs, so the
            compiler may fold or deduplicate its calls.
        cache: memoize results by input value for the lifetime of the process.
        on_error: ``"raise"`` fails the run; ``"skip"`` drops the failing item of the
            enclosing fan-out and reports it in the run's metadata.
        mode: how the kernel runs a synchronous task: ``"inline"`` (called directly by
            the scheduler; best for cheap calls) or ``"thread"`` (on the run's worker
            pool; for calls that release the GIL, such as numpy or I/O). None: the run's
            ``task_mode`` (``"inline"`` by default). ``async def`` tasks always run on
            the event loop.
        placement: where the task runs: ``"local"`` (the process running the workflow),
            or the name of a worker pool or peer class. The compiler partitions the
            workflow by placement and carries values between partitions over wire ops.
            None: the compile's default placement.
        priority: added to the critical-path priority of the task's calls in the
            kernel's ready queue (higher runs first). None: the compile's default (0).
        fallback: the task-table key of the task called, with the same arguments, when
            a call still fails after its retries (or times out); its result is used
            instead. ``@namu.task(fallback=other_task)`` takes the task itself; the
            frontend stores its key. None: no fallback.
    """

    name: str | None = pydantic.Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    version: str | None = None
    retries: int = pydantic.Field(default=0, ge=0, strict=True)
    timeout_s: float | None = pydantic.Field(default=None, gt=0)
    pure: bool = pydantic.Field(default=False, strict=True)
    cache: bool = pydantic.Field(default=False, strict=True)
    on_error: Literal["raise", "skip"] = "raise"
    mode: Literal["inline", "thread"] | None = None
    placement: str | None = pydantic.Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    priority: int | None = pydantic.Field(default=None, strict=True)
    fallback: str | None = None


class TaskEntry(_Strict):
    """One row of the task table.

    Attributes:
        key: the name ``namu.Task`` nodes use in their ``task`` attribute (unique per model).
        module: importable module name the task was defined in.
        qualname: qualified name of the task inside its module.
        file: absolute path of the defining file ("" if unknown).
        digest: ``sha256:<hex>`` of the task's source text.
        is_async: the task is an ``async def``.
        options: the task's validated options.
        params: the task's parameters in order, each with the string form of its
            annotation's :class:`~namu.ir.types.ValueType` (``"object"`` when
            unannotated); a ``*args`` parameter is named ``"*args"``, a ``**kwargs``
            one ``"**kwargs"`` (as ``inspect.Signature`` prints them). None: unknown
            (artifacts older than the field); ``infer-types`` then skips the check.
        returns: the string form of the return annotation's type (``"object"`` if none).
    """

    key: str
    module: str
    qualname: str
    file: str
    digest: str
    is_async: bool = False
    options: TaskOptions = TaskOptions()
    params: list[Parameter] | None = None
    returns: str = "object"


class TaskTable(_Strict):
    """The tasks a model calls (``namu.tasks``), in the order lowering met them."""

    tasks: list[TaskEntry]

    @classmethod
    def of(cls, model: ir.Model) -> TaskTable:
        """The task table stored in ``model``'s metadata; empty when it has none."""
        text = model.metadata_props.get(TASKS_KEY)
        return cls.model_validate_json(text) if text is not None else cls(tasks=[])

    def by_key(self) -> dict[str, TaskEntry]:
        """Each entry under its key."""
        return {t.key: t for t in self.tasks}


class Parameter(_Strict):
    """A workflow parameter. ``type`` is the string form of its :class:`ValueType`."""

    name: str
    type: str
    has_default: bool = False
    default: Any = None


class Signature(_Strict):
    """The workflow's parameters and the shape of its return value.

    Attributes:
        returns: ``"value"`` (one output), ``"tuple"`` (outputs form a tuple) or
            ``"dict"`` (outputs are the values of ``return_keys``, in order).
    """

    name: str
    file: str
    params: list[Parameter]
    returns: Literal["value", "tuple", "dict"] = "value"
    return_keys: list[str] = []


class Passport(_Strict):
    """The compile passport: who built this artifact, from what, with which passes.

    Attributes:
        options: the compile's options (``CompileConfig.summary()``: opt level,
            disabled passes, task defaults, slot bindings by name).
    """

    namu_version: str
    workflow: str
    workflow_digest: str
    passes: list[str]
    onnx_opset: int
    options: dict[str, Any] = {}


def dump(model: pydantic.BaseModel) -> str:
    """Serialize a metadata model to compact JSON.

    Fields left at their defaults are omitted, so a loaded model knows which options
    were set explicitly (``model_fields_set``): ``expand-defaults`` fills only the others
    from the compile's configuration.
    """
    return json.dumps(model.model_dump(mode="json", exclude_unset=True), separators=(",", ":"), sort_keys=True)
