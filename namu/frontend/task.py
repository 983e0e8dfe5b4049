"""``@namu.task``: mark a Python function as a unit of work a workflow can call.

The decorator does no work up front (the Hamilton habit): it validates the options and
attaches metadata. Called outside a workflow, a task is the plain function.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, overload

from namu.errors import TaskDefinitionError
from namu.frontend.source import source_digest

if TYPE_CHECKING:
    from namu.ir.metadata import TaskOptions
    from namu.ir.types import ValueType

__all__ = ["Task", "task"]


class Task:
    """A function marked with ``@namu.task``.

    Calling a ``Task`` calls the function directly, exactly as plain Python would;
    inside a ``@namu.workflow`` the call becomes a ``namu.Task`` node of the IR.

    Attributes:
        fn: the wrapped function.
        options: the validated :class:`~namu.ir.metadata.TaskOptions`.
        name: the task's name in the IR (``options.name`` or the function's name).
        is_async: the function is an ``async def``.
        fallback: the task called instead when a call still fails after its retries
            (``@namu.task(fallback=...)``), or None.
    """

    def __init__(self, fn: Callable[..., Any], options: TaskOptions, fallback: Task | None = None) -> None:
        if not callable(fn) or not hasattr(fn, "__code__"):
            raise TaskDefinitionError(f"@namu.task needs a function, got {fn!r}")
        self.fn = fn
        self.options = options
        self.fallback = fallback
        self.name: str = options.name or fn.__name__
        self.is_async = inspect.iscoroutinefunction(fn)
        self._digest: str | None = None
        if options.cache or options.pure:
            _check_cacheable(fn, self.name, "pure=True" if options.pure else "cache=True")
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<namu.task {self.name} of {self.fn.__module__}>"

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the task's source; the loader compares it to detect staleness."""
        if self._digest is None:
            self._digest = source_digest(self.fn)
        return self._digest

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.fn)

    @functools.cached_property
    def return_type(self) -> ValueType:
        """The :class:`ValueType` of the annotated return (opaque ``object`` if none)."""
        from namu.ir.types import ValueType, from_annotation

        annotation = self.signature.return_annotation
        if annotation is inspect.Signature.empty:
            return ValueType.opaque()
        if isinstance(annotation, str):
            try:
                annotation = inspect.get_annotations(self.fn, eval_str=True)["return"]
            except Exception:  # noqa: BLE001 - an unresolvable string annotation is opaque
                return ValueType.opaque()
        return from_annotation(annotation)


def _check_cacheable(fn: Callable[..., Any], name: str, option: str) -> None:
    """Refuse caching a task that returns an iterator, by its definition: a generator
    function, or a return annotation naming an iterator type (``Iterator[int]``,
    ``Generator[...]``, ``AsyncIterator[...]``). A cache hands every later call a copy of
    the first result, and an iterator is used up by its first reader. Other results are
    checked when the task returns them (:class:`namu.runtime.cache.CachedResult`).

    Raises:
        TaskDefinitionError: the task returns an iterator.
    """
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        returns = "it is a generator function"
    else:
        try:
            annotation = inspect.get_annotations(fn, eval_str=True).get("return")
        except Exception:  # noqa: BLE001 - an annotation that cannot be resolved says nothing here
            return
        origin = typing.get_origin(annotation) or annotation
        if not (isinstance(origin, type) and issubclass(origin, (Iterator, AsyncIterator))):
            return
        returns = f"it returns {inspect.formatannotation(annotation)}, an iterator"
    raise TaskDefinitionError(
        f"task {name!r} cannot be cached ({option}): {returns}, which is used up by whoever reads "
        f"it first, so no copy of it could serve a later call as a fresh one; return a list or a "
        f"tuple instead, or remove {option}"
    )


@overload
def task(fn: Callable[..., Any], /) -> Task: ...
@overload
def task(
    *,
    name: str | None = ...,
    version: str | None = ...,
    retries: int = ...,
    timeout_s: float | None = ...,
    pure: bool = ...,
    cache: bool = ...,
    on_error: str = ...,
    mode: str | None = ...,
    placement: str | None = ...,
    priority: int | None = ...,
    fallback: Task | None = ...,
) -> Callable[[Callable[..., Any]], Task]: ...


def task(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Mark a function as a namu task; usable bare (``@task``) or with options.

    Args:
        fn: the function (when used without parentheses).
        **options: see :class:`~namu.ir.metadata.TaskOptions`: ``name``, ``version``,
            ``retries``, ``timeout_s``, ``pure``, ``cache``, ``on_error``, ``mode``,
            ``placement``, ``priority``, ``fallback`` (another :class:`Task`, called
            with the same arguments when a call still fails after its retries or
            times out; its result is used instead).

    Returns:
        A :class:`Task`, or a decorator producing one.

    Raises:
        TaskDefinitionError: an option is unknown or has an invalid value.
    """
    import pydantic  # with TaskOptions: by the first @namu.task, not by `import namu`

    from namu.ir.metadata import TaskOptions

    fallback = options.get("fallback")
    if fallback is not None:
        if not isinstance(fallback, Task):
            raise TaskDefinitionError(f"invalid @namu.task options: fallback: expected a @namu.task, got {fallback!r}")
        options = {**options, "fallback": fallback.name}  # the frontend maps it to its task-table key
    try:
        validated = TaskOptions(**options)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}"
            for err in exc.errors()
        )
        raise TaskDefinitionError(f"invalid @namu.task options: {problems}") from None

    def decorate(f: Callable[..., Any]) -> Task:
        if isinstance(f, Task):
            raise TaskDefinitionError(f"{f.name} is already a namu task")
        if validated.mode == "process":
            _check_process_mode(f)
        return Task(f, validated, fallback)

    return decorate(fn) if fn is not None else decorate


def _check_process_mode(fn: Callable[..., Any]) -> None:
    """A ``mode="process"`` task is synchronous and importable by name in a worker process.

    Raises:
        TaskDefinitionError: ``fn`` is ``async def``, or not defined at module level.
    """
    name = getattr(fn, "__qualname__", repr(fn))
    if inspect.iscoroutinefunction(fn):
        raise TaskDefinitionError(
            f"task {name}: mode='process' is for synchronous functions; an async def task "
            "already runs on the event loop (use its timeout_s)"
        )
    if "<locals>" in name or "<lambda>" in name:
        raise TaskDefinitionError(
            f"task {name}: a mode='process' task must be defined at module level, so its "
            "worker process can import it by name"
        )
