"""Model-level metadata of a namu artifact: task table, workflow signature, passport.

Each is a pydantic model stored as JSON in ``ModelProto.metadata_props`` under its key:

=====================  ===============================================================
key                     content
=====================  ===============================================================
``namu.tasks``          :class:`TaskTable`: every task the graph calls
``namu.signature``      :class:`Signature`: the workflow's parameters and return shape
``namu.passport``       :class:`Passport`: namu version, passes run, source digest
=====================  ===============================================================

:meth:`ArtifactMetadata.of` parses the three (each model's ``stored_in`` parses one, once
per stored text); :func:`verify_artifact` also checks, before a loaded artifact runs,
that this namu is not older than the one that compiled it and that the metadata agrees
with the graph (a hand-edited file is an ``ArtifactError``).

Per-node and per-value keys: ``namu.span`` (``"file:line:col"`` of the source
construct) on every node, ``namu.type`` on opaque values (see :mod:`namu.ir.types`),
and the keys below that passes stamp (``namu.placement``, ``namu.free``, ...).
"""

from __future__ import annotations

import inspect
import json
import keyword
import re
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

import pydantic

from namu.errors import ArtifactError

if TYPE_CHECKING:
    from typing import Self

    import onnx_ir as ir

__all__ = [
    "CALL_SPAN_KEY",
    "CAPABILITY_GATED",
    "CAPABILITY_VERIFIED",
    "DIGEST_KEY",
    "FREE_KEY",
    "INLINE_KEY",
    "PASSPORT_KEY",
    "HANDLERS_KEY",
    "PLACEMENT_KEY",
    "PRIORITY_KEY",
    "SIGNATURE_KEY",
    "SPAN_KEY",
    "SYMBOL_KEY",
    "TASKS_KEY",
    "ArtifactMetadata",
    "Parameter",
    "Passport",
    "Signature",
    "TaskEntry",
    "TaskOptions",
    "TaskTable",
    "verify_artifact",
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
#: after infer-placement: the placement the node runs in (``"local"``, ``"gpu"``, ...).
PLACEMENT_KEY = "namu.placement"
#: model metadata (``partition``): JSON object, handler placement -> the channel of the
#: remote fan-out its partition serves (a handler runs once per item, on a peer of that class)
HANDLERS_KEY = "namu.handlers"

#: passport capability: a task call's retries, timeout and fallback apply only where a
#: ``namu.Gate`` guards it (provided by insert-resilience-gates); without it, every call
#: applies its task's options.
CAPABILITY_GATED = "gated"
#: passport capability: the runtime can run the model as it is -- every op dispatchable,
#: every slot bound, every Send paired, every policy in a gate -- and the passport is
#: complete (provided by verify-runtime-complete).
CAPABILITY_VERIFIED = "verified"
# Passports older than ``Passport.capabilities``: the pass whose run gave each capability.
_PROVIDED_BY = {CAPABILITY_GATED: "insert-resilience-gates", CAPABILITY_VERIFIED: "verify-runtime-complete"}


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class _Stored(_Strict):
    """A metadata model stored as JSON in a model's ``metadata_props`` under ``KEY``."""

    KEY: ClassVar[str]

    @classmethod
    def stored_in(cls, model: ir.Model) -> Self | None:
        """The model stored in ``model``'s metadata, parsed; None when it has none.

        Parsed once per stored text: the result is kept in ``model.meta`` with the text
        it was parsed from, and returned again while the text is unchanged (the models
        are frozen, so callers share it).

        Raises:
            ArtifactError: the text is not valid JSON of this model; the message is one
                line naming the key and the first problem.
        """
        text = model.metadata_props.get(cls.KEY)
        if text is None:
            return None
        memo = f"{cls.KEY}.parsed"
        kept = model.meta.get(memo)
        if kept is not None and kept[0] == text:
            return kept[1]
        try:
            parsed = cls.model_validate_json(text)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ArtifactError(f"damaged namu metadata: {cls.KEY}{': ' + where if where else ''}: {first['msg']}") from None
        model.meta[memo] = (text, parsed)
        return parsed


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
            the scheduler; best for cheap calls), ``"thread"`` (on the run's worker
            pool; for calls that release the GIL, such as numpy or I/O) or
            ``"process"`` (in a worker process, killed when the call overruns
            ``timeout_s`` or the run is cancelled: a hard timeout, for picklable
            arguments and results; see :mod:`namu.runtime.processes`). None: the run's
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
    mode: Literal["inline", "thread", "process"] | None = None
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


class TaskTable(_Stored):
    """The tasks a model calls (``namu.tasks``), in the order lowering met them."""

    KEY = TASKS_KEY

    tasks: list[TaskEntry]

    @classmethod
    def of(cls, model: ir.Model) -> TaskTable:
        """The task table stored in ``model``'s metadata (see :meth:`stored_in`); empty
        when it has none.

        Raises:
            ArtifactError: the stored table is damaged.
        """
        table = cls.stored_in(model)
        return table if table is not None else cls(tasks=[])

    def by_key(self) -> dict[str, TaskEntry]:
        """Each entry under its key."""
        return {t.key: t for t in self.tasks}


#: the kinds of parameter, in the order a signature lists them
_KINDS = {
    "positional_only": inspect.Parameter.POSITIONAL_ONLY,
    "positional_or_keyword": inspect.Parameter.POSITIONAL_OR_KEYWORD,
    "var_positional": inspect.Parameter.VAR_POSITIONAL,
    "keyword_only": inspect.Parameter.KEYWORD_ONLY,
    "var_keyword": inspect.Parameter.VAR_KEYWORD,
}


class Parameter(_Strict):
    """A workflow parameter. ``type`` is the string form of its :class:`ValueType`.

    ``default`` is immutable (the frontend rejects list, dict and set defaults): None, a
    bool, int, float or str, or a tuple of those. JSON writes a tuple as a list, so a
    list read back is a tuple again.
    """

    name: str
    type: str
    has_default: bool = False
    default: Any = None
    #: how it may be passed (``inspect.Parameter``'s kinds; artifacts older than the field
    #: have positional-or-keyword parameters only)
    kind: Literal["positional_only", "positional_or_keyword", "var_positional", "keyword_only", "var_keyword"] = (
        "positional_or_keyword"
    )

    def python(self) -> inspect.Parameter:
        """This parameter as an ``inspect.Parameter`` (for binding arguments)."""
        default = self.default if self.has_default else inspect.Parameter.empty
        return inspect.Parameter(self.name, _KINDS[self.kind], default=default)

    @pydantic.field_validator("default", mode="after")
    @classmethod
    def _tuples_back(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return tuple(cls._tuples_back(item) for item in value)
        return value


class Signature(_Stored):
    """The workflow's parameters and the shape of its return value (``namu.signature``).

    Attributes:
        returns: ``"value"`` (one output), ``"tuple"`` (outputs form a tuple) or
            ``"dict"`` (outputs are the values of ``return_keys``, in order).
    """

    KEY = SIGNATURE_KEY

    name: str
    file: str
    params: list[Parameter]
    returns: Literal["value", "tuple", "dict"] = "value"
    return_keys: list[str] = []

    def python(self) -> inspect.Signature:
        """The parameters as an ``inspect.Signature`` (for binding arguments)."""
        return inspect.Signature([p.python() for p in self.params])


class Passport(_Stored):
    """The compile passport (``namu.passport``): who built this artifact, from what, with
    which passes.

    Attributes:
        options: the compile's options (``CompileConfig.summary()``: opt level,
            disabled passes, task defaults, slot bindings by name).
        capabilities: what the passes that ran guarantee the runtime
            (:data:`CAPABILITY_GATED`, :data:`CAPABILITY_VERIFIED`), stamped by the
            pass manager from each pass's ``provides``; None in artifacts older than
            the field. Ask :meth:`provides`, which reads those from their passes.
    """

    KEY = PASSPORT_KEY

    namu_version: str
    workflow: str
    workflow_digest: str
    passes: list[str]
    onnx_opset: int
    options: dict[str, Any] = {}
    capabilities: list[str] | None = None

    def provides(self, capability: str) -> bool:
        """Whether the artifact has ``capability`` (a ``CAPABILITY_*`` constant).

        An artifact older than ``capabilities`` has it when the pass that provides it
        is among its ``passes``, so it runs as it did when it was compiled.
        """
        if self.capabilities is not None:
            return capability in self.capabilities
        return _PROVIDED_BY.get(capability) in self.passes


def dump(model: pydantic.BaseModel) -> str:
    """Serialize a metadata model to compact JSON.

    Fields left at their defaults are omitted, so a loaded model knows which options
    were set explicitly (``model_fields_set``): ``expand-defaults`` fills only the others
    from the compile's configuration.
    """
    return json.dumps(model.model_dump(mode="json", exclude_unset=True), separators=(",", ":"), sort_keys=True)


class ArtifactMetadata(NamedTuple):
    """The three metadata models of an artifact, parsed (see :meth:`of`)."""

    signature: Signature
    passport: Passport
    task_table: TaskTable

    #: the metadata keys every artifact has.
    KEYS = (SIGNATURE_KEY, PASSPORT_KEY, TASKS_KEY)

    @classmethod
    def of(cls, model: ir.Model) -> ArtifactMetadata:
        """The signature, passport and task table stored in ``model``, each parsed once
        per stored text (:meth:`Passport.stored_in` and the others).

        Raises:
            ArtifactError: a key is missing or does not hold valid JSON of its model; the
                message is one line naming the key and the first problem.
        """
        parsed = []
        for stored in (Signature, Passport, TaskTable):
            found = stored.stored_in(model)
            if found is None:
                raise ArtifactError(f"damaged namu metadata: {stored.KEY} is missing")
            parsed.append(found)
        return cls(*parsed)


def verify_artifact(model: ir.Model) -> ArtifactMetadata:
    """Check an artifact read from a file before anything runs it, and parse its metadata.

    Checks that a namu no newer than this one compiled it (the release numbers of
    ``Passport.namu_version``, ``1.2.0rc1`` counting as ``1.2.0``) and that its metadata
    agrees with its graph: the signature's parameters with the graph's inputs (valid,
    distinct names, no parameter without a default after one with a default), its
    return shape with the graph's outputs (``"value"``: one output; ``"dict"``: one per
    distinct key), and every task the graph or a fallback names with the task table.

    Raises:
        ArtifactError: the first problem found, in one line: ``compiled by namu X,
            newer than this namu Y ...`` or ``damaged namu metadata: ...``.
    """
    _check_version(model.metadata_props.get(PASSPORT_KEY))
    meta = ArtifactMetadata.of(model)
    problem = _signature_problem(meta.signature, model) or _task_problem(meta.task_table, model)
    if problem:
        raise ArtifactError(f"damaged namu metadata: {problem}")
    return meta


def _release(version: str) -> tuple[int, ...] | None:
    """The release numbers of a version (``"1.2.0rc1"`` -> ``(1, 2)``), None if it has none."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    if match is None:
        return None
    numbers = [int(part) for part in match.group().split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def _check_version(passport_json: str | None) -> None:
    from namu._version import __version__

    try:
        version = json.loads(passport_json or "")["namu_version"]
    except (ValueError, TypeError, KeyError):
        return  # ArtifactMetadata.of reports the damage
    if not isinstance(version, str) or _release(version) is None:
        raise ArtifactError(f"damaged namu metadata: {PASSPORT_KEY}: namu_version {version!r} is not a version")
    if _release(version) > (_release(__version__) or ()):
        raise ArtifactError(
            f"compiled by namu {version}, newer than this namu {__version__}; "
            f"upgrade namu to load it, or recompile it with this one"
        )


def _signature_problem(signature: Signature, model: ir.Model) -> str:
    """What makes ``signature`` disagree with the graph, or ""."""
    names = [p.name for p in signature.params]
    after_default = False
    for param in signature.params:
        if not param.name.isidentifier() or keyword.iskeyword(param.name):
            return f"the signature's parameter name {param.name!r} is not a Python identifier"
        if names.count(param.name) > 1:
            return f"the signature names parameter {param.name!r} twice"
        if param.kind in ("positional_only", "positional_or_keyword"):
            if after_default and not param.has_default:
                return f"the signature's parameter {param.name!r} has no default but follows one that has"
            after_default = after_default or param.has_default
    kinds = [list(_KINDS).index(p.kind) for p in signature.params]
    if kinds != sorted(kinds):
        return ("the signature's parameters are not in the order positional-only, positional-or-keyword, *args, "
                "keyword-only, **kwargs")
    inputs = len(model.graph.inputs)
    if len(names) != inputs:
        return f"the signature has {len(names)} parameter(s) but the graph takes {inputs} input(s)"
    outputs = len(model.graph.outputs)
    keys = signature.return_keys
    if signature.returns != "dict" and keys:
        return f"the signature lists return keys but returns a {signature.returns}"
    if signature.returns == "value" and outputs != 1:
        return f"the signature returns one value but the graph has {outputs} output(s)"
    if signature.returns == "dict":
        if len(set(keys)) != len(keys):
            return "the signature's return keys repeat a key"
        if len(keys) != outputs:
            return f"the signature returns a dict of {len(keys)} key(s) but the graph has {outputs} output(s)"
    return ""


def _task_problem(table: TaskTable, model: ir.Model) -> str:
    """A task the graph or a fallback names that the task table lacks, or ""."""
    from namu.ir.opsets import NAMU_DOMAIN
    from namu.ir.scopes import walk

    keys = [entry.key for entry in table.tasks]
    known = set(keys)
    if len(known) != len(keys):
        return "the task table lists a task key twice"
    for entry in table.tasks:
        if entry.options.fallback is not None and entry.options.fallback not in known:
            return f"task {entry.key!r} falls back to {entry.options.fallback!r}, which is not in the task table"
    for node in walk(model):
        if node.domain != NAMU_DOMAIN or node.op_type not in ("Task", "Gate"):
            continue
        name = "task" if node.op_type == "Task" else "fallback"
        attr = node.attributes.get(name)
        if attr is None:
            if node.op_type == "Task":
                return "a namu.Task node names no task"
            continue
        key = attr.value
        if not isinstance(key, str):
            return f"a namu.{node.op_type} node's {name} attribute is not a string"
        if (key or node.op_type == "Task") and key not in known:
            return f"the graph calls task {key!r}, which is not in the task table"
    return ""
