"""Task-table keys: one unique key per task object, and the task table they make.

A ``namu.Task`` node names the task it calls by its key in the model's task table
(``namu.tasks``). Whatever adds task calls to a model -- a frontend lowering a source,
``resolve-slots`` binding a slot -- takes the keys from one :class:`TaskKeys`, so a key
is the task's name, suffixed (``name_2``) only when another task took it, and the
same task object always gets the same key.
"""

from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING

from namu.ir.metadata import Parameter, TaskEntry
from namu.ir.types import from_annotation

if TYPE_CHECKING:
    from namu.frontend.task import Task

__all__ = ["TaskKeys"]


class TaskKeys:
    """Allocates the task-table keys of one model and builds its task table.

    Attributes:
        tasks: the tasks keyed so far, by key, in the order they were first keyed.
    """

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self._task_keys: dict[int, str] = {}  # id(Task) -> key

    def task_key(self, task: Task) -> str:
        """The key of ``task`` in the task table, which it joins (with its fallback) on
        first use: its name, suffixed when another task took it."""
        key = self._task_keys.get(id(task))
        if key is None:
            key = task.name
            i = 1
            while key in self.tasks:
                i += 1
                key = f"{task.name}_{i}"
            self.tasks[key] = task
            self._task_keys[id(task)] = key
            if task.fallback is not None:  # a fallback is called by the runtime: table it too
                self.task_key(task.fallback)
        return key

    def task_table(self) -> list[TaskEntry]:
        """One :class:`TaskEntry` per task keyed, with its parameter and return types."""
        entries = []
        for key, task in self.tasks.items():
            fn = task.fn
            try:
                file = inspect.getsourcefile(fn) or ""
            except TypeError:
                file = ""
            try:
                hints = inspect.get_annotations(fn, eval_str=True)
            except Exception:  # noqa: BLE001 - unresolvable string annotations are opaque
                hints = {}
            prefix = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}
            params = [
                Parameter(
                    name=prefix.get(p.kind, "") + p.name,
                    type=str(from_annotation(hints.get(p.name, inspect.Parameter.empty))),
                    has_default=p.default is not inspect.Parameter.empty,
                )
                for p in task.signature.parameters.values()
            ]
            entries.append(
                TaskEntry(
                    key=key,
                    module=fn.__module__,
                    qualname=fn.__qualname__,
                    file=os.path.abspath(file) if file else "",
                    digest=task.digest,
                    is_async=task.is_async,
                    options=task.options if task.fallback is None else task.options.model_copy(
                        update={"fallback": self._task_keys[id(task.fallback)]}
                    ),
                    params=params,
                    returns=str(task.return_type),
                )
            )
        return entries
