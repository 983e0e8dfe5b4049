"""``resolve-symbols``: bind every task call and sub-workflow call to its definition."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import onnx_ir as ir

from namu.ir.attrs import attributes_of
from namu.ir.metadata import DIGEST_KEY, SYMBOL_KEY, TaskEntry, TaskTable
from namu.ir.opsets import NAMU_DOMAIN, WORKFLOW_DOMAIN
from namu.ir.scopes import walk
from namu.passes.base import Example, NamuPass, fail
from namu.passes.registry import register

if TYPE_CHECKING:
    from namu.frontend.task import Task

__all__ = ["ResolveSymbolsPass", "task_symbol"]

logger = logging.getLogger(__name__)


@register(
    "resolve-symbols",
    "every task call names a task of the task table and every sub-workflow call a function of the model",
    after=("verify-structure",),
    level=0,
)
class ResolveSymbolsPass(NamuPass):
    """Bind every ``namu.Task`` call and sub-workflow call to its definition.

    The binding is stamped on the call node, so the runtime, the printer and later
    passes can name the code a node runs without the task table at hand.

    A model without a task table has no tasks: any task call in it is unknown.

    Guarantees:
        Every ``namu.Task`` node (in the main graph, every subgraph and every function)
            names a task of the task table (``namu.tasks``) and carries the node
            metadata ``namu.symbol`` (the task's ``module.qualname``) and
            ``namu.digest`` (the ``sha256:`` digest of its source).
        Every ``namu.workflow`` call names a function of the model and carries
            ``namu.symbol`` (the function's name).
        When the compile has the live tasks, each called task's recorded digest is
            the live task's: the artifact describes the code that will run.

    Raises:
        CompileError: a task call names no task of the table, a sub-workflow call no
            function of the model, or a task's recorded digest differs from the live
            task's; at the call's source line.
    """

    EXAMPLE = Example(
        before="""
        g (int64 x) => (int64 y) { a = namu.Task <task = "inc"> (x)  y = namu.Task <task = "ghost"> (a) }""",
        error="CompileError: task 'ghost' is not in the task table",
        impure_tasks=("inc",),
        note="Resolved calls gain `namu.symbol` and `namu.digest` metadata (not shown in ONNX text).",
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        binder = _Binder(TaskTable.of(model).by_key(), set(model.functions), self.context.tasks)
        for node in walk(model):
            binder.bind(node)
        logger.debug("resolved %d calls, stamped %d", binder.calls, binder.stamped)
        self.changed(binder.stamped)
        return self.result(model)

    def ensures(self, model: ir.Model) -> None:
        table = TaskTable.of(model).by_key()
        for node in walk(model):
            metadata = node.metadata_props
            if node.op_type == "Task" and node.domain == NAMU_DOMAIN:
                key = node.attributes["task"].as_string()
                if key not in table or SYMBOL_KEY not in metadata or DIGEST_KEY not in metadata:
                    self.broken(f"the call of task {key!r} is not bound to a task of the task table", node)
            elif node.domain == WORKFLOW_DOMAIN and SYMBOL_KEY not in metadata:
                self.broken(f"the call of sub-workflow {node.op_type!r} is not bound", node)


def task_symbol(entry: TaskEntry) -> dict[str, str]:
    """The node metadata this pass stamps on a call of the task ``entry``: ``namu.symbol``
    (``module.qualname``) and ``namu.digest`` (its source digest)."""
    return {SYMBOL_KEY: f"{entry.module}.{entry.qualname}", DIGEST_KEY: entry.digest}


class _Binder:
    """Checks one call node at a time and stamps its binding."""

    def __init__(self, table: dict[str, TaskEntry], functions: set[ir.OperatorIdentifier], live: Mapping[str, Task]) -> None:
        self.table = table
        self.functions = functions
        self.live = live
        #: task key -> the metadata its calls get (digest checked when first added)
        self.bindings: dict[str, dict[str, str]] = {}
        self.calls = 0
        self.stamped = 0

    def bind(self, node: ir.Node) -> None:
        if node.op_type == "Task" and node.domain == NAMU_DOMAIN:
            key = attributes_of(node)["task"].value
            entry = self.table.get(key)
            if entry is None:
                fail(node, f"task {key!r} is not in the task table")
            binding = self.bindings.get(key)
            if binding is None:
                self.check_digest(node, key, entry)
                binding = self.bindings[key] = task_symbol(entry)
            self.stamp(node, binding)
        elif node.domain == WORKFLOW_DOMAIN:
            if node.op_identifier() not in self.functions:
                fail(node, f"call to unknown sub-workflow {node.op_type!r}")
            self.stamp(node, {SYMBOL_KEY: node.op_type})

    def check_digest(self, node: ir.Node, key: str, entry: TaskEntry) -> None:
        task = self.live.get(key)
        if task is not None and task.digest != entry.digest:
            fail(
                node,
                f"task {key!r} ({entry.module}.{entry.qualname}) does not match the task table: "
                f"its source digest is {task.digest}, the table records {entry.digest}",
            )

    def stamp(self, node: ir.Node, binding: dict[str, str]) -> None:
        self.calls += 1
        metadata = node.metadata_props
        for k, v in binding.items():
            if metadata.get(k) != v:
                metadata.update(binding)
                self.stamped += 1
                return
