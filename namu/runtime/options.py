"""Run options: :class:`RunOptions` defines every option of a run once.

``Artifact.run``'s and ``Workflow.run``'s option keywords, ``with_options`` and the flags
of ``namu run`` all come from its fields: a new option is one field here (with a
:class:`Flag` when the command line takes it).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
)

from namu.runtime.executor_registry import executor_class, executor_names
from namu.runtime.hooks import RunHooks, compose

__all__ = ["DEFAULT_MAX_CONCURRENCY", "DEFAULT_RECURSION_LIMIT", "Flag", "RunOptions", "with_run_option_keywords"]

#: most async task calls one run keeps in flight (NeuraCraft's default cap).
DEFAULT_MAX_CONCURRENCY = 256
#: most sub-workflow calls nested in one another in a run (Python's default recursion limit).
DEFAULT_RECURSION_LIMIT = 1000


@dataclasses.dataclass(frozen=True)
class Flag:
    """Field metadata: ``namu run`` takes this option as ``--NAME`` (``_`` -> ``-``).

    Attributes:
        metavar: the value's name in the help (``DIR``, ``FILE``), or None for the default.
        path: ``"file"`` or ``"dir"`` when the value is a path to that kind of entry.
        choices: gives the allowed values when the command line is parsed (a registry's
            names), or None.
    """

    metavar: str | None = None
    path: Literal["file", "dir"] | None = None
    choices: Callable[[], Sequence[str]] | None = None


def _registered(name: str) -> str:
    executor_class(name)  # raises ValueError listing the registered executors
    return name


def _hooks(value: Any) -> RunHooks | None:
    try:
        return compose(value)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def _path(value: Any, info: ValidationInfo) -> Any:
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{info.field_name} must be a path (str or os.PathLike) or None, got {value!r}")
    return value  # as given: a str stays a str


#: a file or directory, or None; passed on as given.
PathOption = Annotated[str | os.PathLike[str] | None, PlainValidator(_path)]


class RunOptions(BaseModel):
    """How a workflow runs (not what it computes): every option with its default, its
    check and its description (``namu run --help`` shows the descriptions).

    ``RunOptions.of({"task_mode": "thread"})`` is the options of
    ``art.run(..., task_mode="thread")``; ``Artifact.run`` reads the run's options from
    such an object.

    Raises:
        ValueError: an option's value is invalid (from the constructor; :meth:`of` gives
            a one-line message).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, arbitrary_types_allowed=True)

    executor: Annotated[str, AfterValidator(_registered), Flag(choices=executor_names)] = Field(
        "kernel",
        description="The executor that runs the graph: kernel (the native Rust scheduler), "
        "reference (the pure-Python interpreter), or another registered one (see "
        "namu.runtime.executor_registry).",
    )
    hooks: Annotated[RunHooks | None, PlainValidator(_hooks)] = Field(
        None,
        description="Run hooks (a namu.RunHooks, or a list of them, composed in order) told "
        "of the run's events: task calls, fan-outs, retries, ... (see namu.runtime.hooks).",
    )
    cache_dir: Annotated[PathOption, Flag(metavar="DIR", path="dir")] = Field(
        None,
        description="Keep the results of cache=True / pure=True tasks in this directory (a "
        "SQLite file, created if missing), so later runs reuse them. Default: "
        "$NAMU_CACHE_DIR, else memory only.",
    )
    checkpoint: Annotated[PathOption, Flag(metavar="FILE", path="file")] = Field(
        None,
        description="Record every completed task call in this file (SQLite, created if "
        "missing). Running again with the same file and inputs resumes: recorded calls "
        "are not run again.",
    )
    task_mode: Annotated[Literal["inline", "thread"], Flag()] = Field(
        "inline",
        description="How sync tasks without their own mode run on the kernel: inline "
        "(called by the scheduler) or thread (a work-stealing pool, for tasks that "
        "release the GIL).",
    )
    max_concurrency: Annotated[int, Flag()] = Field(
        DEFAULT_MAX_CONCURRENCY, ge=1, description="Most async task calls in flight at once."
    )
    workers: Annotated[int | None, Flag()] = Field(
        None, ge=1, description="Threads of the worker pool for thread-mode tasks (default: the number of CPUs)."
    )
    recursion_limit: Annotated[int, Flag()] = Field(
        DEFAULT_RECURSION_LIMIT, ge=1,
        description="Most sub-workflow calls nested in one another (a recursive workflow); a deeper call raises RecursionError.",
    )

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> RunOptions:
        """Validate ``options`` (option name -> value; the others keep their defaults).

        Raises:
            TypeError: a name is not a run option.
            ValueError: a value is invalid (one line: a message per invalid option, naming it).
        """
        unknown = sorted(set(options) - set(cls.model_fields))
        if unknown:
            raise TypeError(
                f"unknown run option(s) {', '.join(map(repr, unknown))}; run options are: {', '.join(cls.model_fields)}"
            )
        try:
            return cls(**options)
        except ValidationError as exc:
            messages: dict[str, str] = {}
            for error in exc.errors():  # the first per option (a union reports each member)
                messages.setdefault(error["loc"][0], _message(error))
            raise ValueError("; ".join(messages.values())) from None


def _message(error: Any) -> str:
    """A pydantic error of one option as ``NAME must ..., got VALUE``."""
    name, given, ctx = error["loc"][0], error.get("input"), error.get("ctx", {})
    if error["type"] == "value_error":  # from a validator here: the message is complete
        return str(ctx["error"])
    if error["type"] == "greater_than_equal":
        return f"{name} must be at least {ctx['ge']}, got {given!r}"
    if error["type"] == "literal_error":
        return f"{name} must be {ctx['expected']}, got {given!r}"
    return f"{name}: {error['msg']}, got {given!r}"


F = TypeVar("F", bound=Callable[..., Any])


def with_run_option_keywords(fn: F) -> F:
    """Show the run options as keyword-only parameters in ``fn``'s signature (``help()``,
    ``inspect.signature``); ``fn`` takes them through its ``**kwargs``."""
    signature = inspect.signature(fn)
    *params, kwargs = signature.parameters.values()
    options = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=field.default, annotation=field.annotation)
        for name, field in RunOptions.model_fields.items()
    ]
    fn.__signature__ = signature.replace(parameters=[*params, *options, kwargs])  # type: ignore[attr-defined]
    return fn
