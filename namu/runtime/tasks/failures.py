"""What a failed task call raises: :class:`~namu.errors.TaskError` naming the task and the
workflow line of the call, with the task's own exception chained."""

from __future__ import annotations

from namu.errors import TaskError, TaskTimeoutError, describe_exception
from namu.runtime.tasks.bindings import TaskBinding

__all__ = ["SkipItem", "SkipTimedOutItem", "fallback_error", "task_error"]


class SkipItem(TaskError):
    """Internal: a task with ``on_error="skip"`` failed; the enclosing fan-out drops the item."""


class SkipTimedOutItem(SkipItem, TaskTimeoutError):
    """Internal: a task with ``on_error="skip"`` timed out. A fan-out drops the item; outside
    a fan-out the run fails with :class:`~namu.errors.TaskTimeoutError`."""


def task_error(binding: TaskBinding, span: str, exc: Exception) -> TaskError:
    """The error a run raises when ``binding``'s task raised ``exc`` (chained as cause)."""
    opts = binding.options
    timed_out = isinstance(exc, TimeoutError) and bool(opts.timeout_s)
    cls: type[TaskError]
    if opts.on_error == "skip":  # a timeout is an error like any other for the skip policy
        cls = SkipTimedOutItem if timed_out else SkipItem
    else:
        cls = TaskTimeoutError if timed_out else TaskError
    message = f"task {binding.name!r} failed at {span}: {describe_exception(exc)}"
    error = cls(message, task=binding.name, span=span)
    error.__cause__ = exc
    return error


def fallback_error(binding: TaskBinding, span: str, exc: Exception, failed: TaskError) -> TaskError:
    """The error of a call whose fallback failed too: ``binding``'s task raised ``exc``, then
    its fallback's call raised ``failed``. ``binding``'s ``on_error`` decides the class
    (``SkipItem`` drops the fan-out item); the fallback's own exception is the cause."""
    cause = failed.__cause__ if isinstance(failed.__cause__, Exception) else failed
    cls = SkipItem if binding.options.on_error == "skip" else TaskError
    message = (
        f"task {binding.name!r} failed at {span}: {describe_exception(exc)}; "
        f"its fallback {failed.task!r} failed too: {describe_exception(cause)}"
    )
    error = cls(message, task=binding.name, span=span)
    error.__cause__ = cause
    return error
