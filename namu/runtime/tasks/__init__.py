"""Turn a ``namu.Task`` node into the callable the executors run.

The callable applies the task's options (retries with exponential backoff and jitter,
timeout, result cache, async), serves and records calls in the run's checkpoint
journal, and turns a failure into :class:`~namu.errors.TaskError` naming the task and
the workflow line of the call, with the task's own exception chained.

Order of a wrapped call: split keyword inputs -> look the call up in the store of the
run's hooks (the checkpoint journal of a checkpointed run), then in the task's caches
(``cache``/``pure`` tasks: memory, then disk) -> on a miss run it (with retries, each
attempt under the timeout) -> keep the result in the caches and the hooks' store ->
report it to the run's hooks. A call that still fails calls the task's fallback, if it
has one (:meth:`TaskBinding.with_policy`).

=================  ==================================================================
module             holds
=================  ==================================================================
``bindings``       :class:`TaskBinding`: a task resolved for execution, under a policy
``retries``        the attempts of one call: backoff, retries, timeouts; :func:`guarded`
``failures``       the :class:`~namu.errors.TaskError` a failed call raises
``bookkeeping``    per-call hooks (the journal is one), result caches
``flights``        single flight: equal cached calls in flight run once
``sync_calls``     :func:`task_node`, :func:`task_callable`: synchronous calls
``async_calls``    :func:`task_coroutine_fn`: ``async def`` and process-mode calls
=================  ==================================================================
"""

from __future__ import annotations

from namu.runtime.tasks.async_calls import task_coroutine_fn
from namu.runtime.tasks.bindings import TaskBinding
from namu.runtime.tasks.failures import SkipItem
from namu.runtime.tasks.retries import (
    RETRY_BASE_DELAY_S,
    RETRY_MAX_DELAY_S,
    guarded,
    retry_delay_s,
)
from namu.runtime.tasks.sync_calls import task_callable, task_node

__all__ = [
    "RETRY_BASE_DELAY_S",
    "RETRY_MAX_DELAY_S",
    "SkipItem",
    "TaskBinding",
    "guarded",
    "retry_delay_s",
    "task_callable",
    "task_coroutine_fn",
    "task_node",
]
