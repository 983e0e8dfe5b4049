"""A task resolved for execution (:class:`TaskBinding`), and how a call's inputs bind to it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any

from namu.ir.metadata import TaskOptions
from namu.runtime.tasks.retries import RETRY_BASE_DELAY_S, RETRY_MAX_DELAY_S

if TYPE_CHECKING:
    from namu.frontend.task import Task
    from namu.runtime.tasks.breakers import CircuitBreaker

__all__ = ["TaskBinding", "input_splitter"]


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class TaskBinding:
    """A task resolved for execution: its function, options and digest.

    Built from a task by :meth:`of`; the executors derive a call site's binding with
    :meth:`with_policy`. Bindings are immutable and compare by identity.

    Attributes:
        key: the task's key in the artifact's task table.
        name: the name shown in errors.
        fn: the plain Python function.
        options: its :class:`TaskOptions`.
        is_async: ``fn`` is an ``async def``.
        digest: ``sha256:<hex>`` of the task's source (from the task table); part of
            every cache and checkpoint key, so an edited task never gets old results.
        backoff_base_s, backoff_max_s: the retry backoff
            (:func:`~namu.runtime.tasks.retries.retry_delay_s`), in seconds.
        fallback: the task called with the same arguments when a call still fails
            after its retries (or times out), or None (see :meth:`with_policy`).
        breaker: the circuit breaker its calls ask first, or None (a gate's).
    """

    key: str
    name: str
    fn: Callable[..., Any]
    options: TaskOptions
    is_async: bool
    digest: str = ""
    _: KW_ONLY
    backoff_base_s: float = RETRY_BASE_DELAY_S
    backoff_max_s: float = RETRY_MAX_DELAY_S
    fallback: TaskBinding | None = None
    breaker: CircuitBreaker | None = None

    @classmethod
    def of(cls, key: str, task: Task, *, options: TaskOptions | None = None, digest: str | None = None) -> TaskBinding:
        """The binding of ``task`` under ``key``: how every artifact binds its task table.

        Args:
            key: the task's key in the task table.
            task: the live ``@namu.task``.
            options: the options calls run with (a loaded artifact's task table's);
                None: the task's own.
            digest: the digest of the code that runs (the task table's, for a loaded
                artifact); None: the task's current source digest.

        Returns:
            A binding without a fallback.
        """
        return cls(
            key,
            task.name,
            task.fn,
            task.options if options is None else options,
            task.is_async,
            task.digest if digest is None else digest,
        )

    def with_policy(
        self,
        *,
        retries: int,
        timeout_s: float | None,
        cache: bool,
        backoff_base_s: float = RETRY_BASE_DELAY_S,
        backoff_max_s: float = RETRY_MAX_DELAY_S,
        fallback: TaskBinding | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> TaskBinding:
        """This task under one call site's policy: a ``namu.Gate``'s, or a node's attributes.

        The options the task was declared with say what the compiler planned; the
        executors run each call with the policy its node carries.

        Args:
            retries: retries after a failing call.
            timeout_s: the limit of one attempt in seconds, or None.
            cache: memoize results by argument value (``pure`` tasks always are).
            backoff_base_s, backoff_max_s: the retry backoff
                (:func:`~namu.runtime.tasks.retries.retry_delay_s`), in seconds.
            fallback: the task called with the same arguments when the call still fails
                after its retries (or times out). Its own options apply to that call
                (retries, timeout, cache), its own ``fallback`` and ``on_error`` do not:
                this task's ``on_error`` decides what a call whose fallback failed too
                does (``"skip"`` drops the fan-out item).
            breaker: the circuit breaker every attempt asks first, or None.

        Returns:
            A new binding (the same function, key and digest).
        """
        update = {"retries": retries, "timeout_s": timeout_s, "cache": cache, "fallback": fallback.key if fallback else None}
        return dataclasses.replace(
            self,
            options=self.options.model_copy(update=update),
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            fallback=fallback,
            breaker=breaker,
        )

    def as_fallback(self) -> TaskBinding:
        """This binding called as another task's fallback: with its own options, but
        never falling back itself."""
        return self if self.fallback is None else dataclasses.replace(self, fallback=None)

    @property
    def awaited(self) -> bool:
        """Calls are coroutines: an ``async def`` task, or a ``mode="process"`` task (its
        coroutine awaits the call in a worker process, :mod:`namu.runtime.processes`)."""
        return self.is_async or self.options.mode == "process"

    def __repr__(self) -> str:
        return f"<TaskBinding {self.key} ({self.name})>"


def input_splitter(kwnames: Sequence[str]) -> Callable[[tuple[Any, ...]], tuple[tuple[Any, ...], dict[str, Any]]]:
    """``split(inputs) -> (args, kwargs)``: the trailing inputs named in ``kwnames`` are keywords."""
    names = tuple(kwnames)
    n_kw = len(names)
    if not n_kw:
        return lambda inputs: (inputs, {})
    return lambda inputs: (inputs[:-n_kw], dict(zip(names, inputs[-n_kw:])))
