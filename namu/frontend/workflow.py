"""``@namu.workflow``: a Python function whose body namu compiles into an SSA graph.

The decorator only validates and attaches metadata; the body is parsed and lowered the
first time the workflow is compiled or called, and the artifact is cached until a name
the compile read changes (:mod:`namu.frontend.reads`).
"""

from __future__ import annotations

import functools
import inspect
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

from namu.errors import TaskDefinitionError

if TYPE_CHECKING:
    from namu.frontend.reads import NameReads
    from namu.runtime.artifact import Artifact
    from namu.runtime.result import RunResult

__all__ = ["Workflow", "workflow"]

#: a placement name, as ``CompileConfig.placement`` and task options accept it
_PLACEMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class Workflow:
    """A function marked with ``@namu.workflow``.

    Calling it compiles the body once (cached) and runs the compiled graph on the native
    kernel. ``fn`` is the original function: calling it runs the body as plain Python,
    which is the meaning the compiled workflow must preserve. Like the plain function,
    a call sees the names of the workflow's module as they are now: when a task or
    sub-workflow it calls is redefined, or a constant it reads is rebound or changed in
    place, the next call compiles again.

    Attributes:
        fn: the original Python function.
        name: the workflow's name (the function's name).
        inline: when called from another workflow, the call is inlined into the caller
            (default); ``False`` keeps it a call of the sub-workflow's FunctionProto, so
            the body appears once in the artifact however often it is called.
        placement: where the workflow's own ops run -- the caller's partition, the
            compile's default placement -- when the compile does not set one (a
            federated program says ``"server"``); None: ``CompileConfig.placement``.
    """

    def __init__(self, fn: Callable[..., Any], *, inline: bool = True, placement: str | None = None) -> None:
        if inspect.iscoroutinefunction(fn) or inspect.isgeneratorfunction(fn):
            raise TaskDefinitionError(
                f"@namu.workflow needs a plain `def` function; {fn.__qualname__} is "
                "async or a generator (mark the async work as an @namu.task instead)"
            )
        self.fn = fn
        self.name: str = fn.__name__
        self.inline = inline
        self.placement = placement
        self._compiled: tuple[Artifact, NameReads] | None = None
        self._lock = threading.Lock()
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<namu.workflow {self.name} of {self.fn.__module__}>"

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.fn)

    def compile(self) -> Artifact:
        """Compile the workflow, or return the cached artifact while every name the
        compile read (in this workflow and the sub-workflows it calls) still resolves to
        the same object and every list or dict constant it folded is unchanged."""
        compiled = self._compiled
        if compiled is None or not compiled[1].current():
            with self._lock:
                compiled = self._compiled
                if compiled is None or not compiled[1].current():
                    from namu.compiler import compile_tracking_reads

                    compiled = self._compiled = compile_tracking_reads(self)
        return compiled[0]

    def run(self, *args: Any, **kwargs: Any) -> RunResult:
        """Run the compiled workflow and return the value with the run's metadata.

        Args:
            *args, **kwargs: the workflow's inputs, as for a plain call, and the run
                options of :meth:`Artifact.run <namu.Artifact.run>` (the fields of
                :class:`~namu.runtime.options.RunOptions`: ``executor``, ``cache_dir``,
                ``checkpoint``, ...). A keyword naming one of the workflow's parameters
                is an input; set a run option it shadows with :meth:`with_options`.

        Raises:
            WorkflowSyntaxError: the body cannot be compiled.
            ValueError: a run option's value is invalid (an unknown executor, ...).
            InputError: an input does not match its annotation.
            TaskError: a task raised; the task's exception is chained.
            CacheError: the ``cache_dir`` cannot be opened.
            CheckpointError: the ``checkpoint`` file cannot be used.
        """
        return self.compile().run(*args, **kwargs)

    def with_options(self, **options: Any) -> Artifact:
        """The compiled artifact with run options preset (:meth:`Artifact.with_options
        <namu.Artifact.with_options>`).

        Raises:
            TypeError: a name is not a run option.
            ValueError: a value is invalid.
        """
        return self.compile().with_options(**options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run(*args, **kwargs).value


@overload
def workflow(fn: Callable[..., Any], /) -> Workflow: ...
@overload
def workflow(*, inline: bool = ..., placement: str | None = ...) -> Callable[[Callable[..., Any]], Workflow]: ...


def workflow(fn: Callable[..., Any] | None = None, /, *, inline: bool = True, placement: str | None = None) -> Any:
    """Mark a function as a namu workflow (see :class:`Workflow`); usable bare
    (``@namu.workflow``) or with options (``@namu.workflow(inline=False)``).

    Args:
        fn: the function (when used without parentheses).
        inline: ``False`` keeps calls of this workflow from other workflows as calls of
            its FunctionProto instead of inlining its body into each caller.
        placement: the placement of the workflow's own ops when the compile sets none
            (``@namu.workflow(placement="server")`` for a federated program's round loop).

    Returns:
        A :class:`Workflow`, or a decorator producing one.

    Raises:
        TaskDefinitionError: ``fn`` is async, a generator, or already a task/workflow,
            ``inline`` is not a bool, or ``placement`` not a placement name.
    """
    from namu.frontend.task import Task

    if not isinstance(inline, bool):
        raise TaskDefinitionError(f"@namu.workflow(inline=...) needs a bool, got {inline!r}")
    if placement is not None and not (isinstance(placement, str) and _PLACEMENT.match(placement)):
        raise TaskDefinitionError(f"@namu.workflow(placement=...) needs a placement name such as 'server', got {placement!r}")

    def decorate(f: Callable[..., Any]) -> Workflow:
        if isinstance(f, (Task, Workflow)):
            raise TaskDefinitionError(f"{f!r} is already a namu task or workflow")
        if not inspect.isfunction(f):
            raise TaskDefinitionError(f"@namu.workflow needs a function, got {f!r}")
        return Workflow(f, inline=inline, placement=placement)

    return decorate(fn) if fn is not None else decorate
