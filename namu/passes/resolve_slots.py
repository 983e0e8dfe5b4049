"""``resolve-slots``: bind every role-slot call to the task given for it at compile time."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from typing import Any

import onnx_ir as ir

from namu.errors import IRVerificationError, RoleBindingError, TypeCheckError, UnboundSlotError
from namu.frontend.task import Task
from namu.ir.constants import string_tensor
from namu.ir.metadata import TASKS_KEY, TaskTable, dump
from namu.ir.opsets import NAMU_DOMAIN, PARTITION_DOMAIN
from namu.ir.scopes import walk
from namu.ir.task_keys import TaskKeys
from namu.ir.types import type_of
from namu.passes.base import Example, NamuPass, PassContext, fail
from namu.passes.expand_defaults import task_defaults
from namu.passes.infer_placement import placement_of
from namu.passes.infer_types import check_task_call
from namu.passes.registry import register
from namu.passes.resolve_symbols import task_symbol

__all__ = ["ResolveSlotsPass"]

logger = logging.getLogger(__name__)


@register(
    "resolve-slots",
    "no namu.Slot remains: each slot call is a call of the task bound to it in its partition",
    after=("partition", "expand-defaults", "resolve-symbols", "infer-types"),
    level=0,
)
class ResolveSlotsPass(NamuPass):
    """Replace every ``namu.Slot <slot="name">`` call by a ``namu.Task`` call of its binding.

    A role slot (``llm = namu.slot("llm")``) is a placeholder a workflow calls without
    knowing what implements it: an agent's LLM, a federated Module's aggregator. The
    compile binds it to a ``@namu.task``: ``namu.compile(wf, slots={"llm": ask_claude})``,
    ``CompileConfig.slots`` or ``namu compile --slot llm=ask_claude``. Bindings apply per
    partition: in the partition of placement ``P``, the key ``"P/llm"`` wins over
    ``"llm"``, so one workflow can call a large model on ``gpu`` and a small one locally.
    (The same late binding of roles as dependency-injection containers, or DSPy's
    modules whose language model is configured at run time.)

    The call keeps its inputs, keyword names, result and the policy attributes it carries
    (``retries``, ``timeout_s``, ... set by a frontend at the call site, as the agent
    frontend does for an LLM call); the bound task joins the task
    table (``namu.tasks``, built as the frontend builds it) and the compile's live tasks,
    so the artifact runs it. The new call then gets what the earlier passes of the
    pipeline give every task call, through their own helpers: ``expand-defaults``' run-time
    option attributes (placed in the slot's partition), ``resolve-symbols``'
    ``namu.symbol`` and ``namu.digest``, and ``infer-types``' check of its arguments
    against the bound task's annotations. So ``insert-resilience-gates`` gates a bound
    task with retries like any other call.

    A slot declared with a ``role`` (``namu.slot("aggregator", role="Aggregator",
    default=FedAvg)``) is bound to a **class** instead: the class must implement the
    role's contract (:data:`namu.federated.roles.ROLES`: every method, callable with the
    role's arguments, and every attribute), and the call becomes a ``Constant``, the
    class's import path ``"module:QualName"``, which tasks turn back into the class
    (``namu.federated.bound``). The slot's ``default`` is the binding when the compile
    gives none.

    Guarantees:
        no ``namu.Slot`` remains in any graph, body or function;
        every task called is in the task table and among the compile's live tasks;
        a call that replaced a slot has the attributes, metadata and checked argument
            types of the passes before this one in the pipeline (those of them among
            ``expand-defaults``, ``resolve-symbols`` and ``infer-types``).

    Raises:
        UnboundSlotError: a slot has no binding in its partition (names the slot, the
            partition and the line of the call).
        CompileError: a binding is not a ``@namu.task``, cannot take the call's
            arguments, or is placed (``@namu.task(placement=...)``) elsewhere than the
            partition it would run in.
        RoleBindingError: a role slot's binding is not a module-level class, or does not
            implement the role (names the slot, the role and the missing method or
            attribute); at the slot call's line.
        TypeCheckError: the slot declares a return type (``returns=``) that the bound
            task's annotation contradicts, or (with ``infer-types`` in the pipeline) an
            argument of the call is not accepted by the bound task's annotation; at the
            slot call's line.
    """

    EXAMPLE = Example(
        before="""
        g (string q) => (string a) { a = namu.Slot <slot = "llm"> (q) }""",
        error="UnboundSlotError: slot 'llm' has no implementation in partition 'local'",
        note="With `slots={\"llm\": ask_claude}` the call becomes "
        '`a = namu.Task <task = "ask_claude"> (q)`.',
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        calls = list(_slot_calls(model, self.context.config.placement))
        if not calls:
            return self.result(model)
        binder = _Binder(model, self.context)
        for node, partition in calls:
            binder.bind(node, partition)
            self.changed()
        binder.finish()
        logger.debug("bound %d slot calls", len(calls))
        return self.result(model)

    def ensures(self, model: ir.Model) -> None:
        table = TaskTable.of(model).by_key()
        for node in walk(model):
            if node.domain != NAMU_DOMAIN:
                continue
            if node.op_type == "Slot":
                self.broken(f"slot {node.attributes['slot'].as_string()!r} is left", node)
            if node.op_type == "Task" and node.attributes["task"].as_string() not in table:
                self.broken(f"task {node.attributes['task'].as_string()!r} is not in the task table", node)


def _slot_calls(model: ir.Model, default: str) -> Iterator[tuple[ir.Node, str]]:
    """Every ``namu.Slot`` node of the model, with the partition it runs in."""
    owners: list[tuple[ir.Graph, str | None]] = [(model.graph, None)]
    owners += [(f.graph, f.name if f.domain == PARTITION_DOMAIN else None) for f in model.functions.values()]
    for graph, partition in owners:
        for node in walk(graph):
            if node.op_type == "Slot" and node.domain == NAMU_DOMAIN:
                yield node, partition or placement_of(node, default)


class _Binder:
    """Binds slot calls of one model and adds their tasks to its task table."""

    def __init__(self, model: ir.Model, context: PassContext) -> None:
        self.model = model
        self.context = context
        self.config = context.config
        self.table = TaskTable.of(model)
        self.table_keys = {entry.key for entry in self.table.tasks}
        # The task keys, given the compile's tasks in their order, are assigned again,
        # so new keys are picked exactly as lowering would pick them.
        self.builder = TaskKeys()
        for task in context.tasks.values():
            self.builder.task_key(task)
        self.known = set(self.builder.tasks)
        #: what the passes before this one give every task call
        self.fill_defaults = "expand-defaults" in context.pipeline
        self.stamp_symbols = "resolve-symbols" in context.pipeline
        self.check_types = "infer-types" in context.pipeline
        #: the calls made so far, with their task keys
        self.bound: list[tuple[ir.Node, str]] = []

    def bind(self, node: ir.Node, partition: str) -> None:
        """Turn the ``namu.Slot`` ``node`` of ``partition`` into a call of its binding."""
        name = node.attributes["slot"].as_string()
        impl = self.config.slots.get(f"{partition}/{name}", self.config.slots.get(name))
        if impl is None:
            fail(
                node,
                f"slot {name!r} has no implementation in partition {partition!r}: bind it at compile time "
                f"(namu.compile(wf, slots={{{name!r}: some_task}}), or `namu compile --slot {name}=TASK`; "
                f"a key {partition + '/' + name!r} binds it in this partition only)",
                error=UnboundSlotError,
            )
        role = node.attributes.get("role")
        if role is not None:
            self._bind_role(node, name, role.as_string(), impl)
            return
        if not isinstance(impl, Task):
            fail(node, f"slot {name!r} is bound to {impl!r}, which is not a @namu.task")
        self._check(node, name, impl, partition)
        key = self.builder.task_key(impl)
        if key not in self.known and key in self.table_keys:
            raise IRVerificationError(
                f"cannot add task {impl.name!r} for slot {name!r}: key {key!r} is already in the task table "
                "and the compile's live tasks do not say which task it is"
            )
        del node.attributes["slot"]
        node.op_type = "Task"
        node.attributes["task"] = ir.AttrString("task", key)
        if self.fill_defaults:  # a policy the call site carries (an agent's LLM call) wins
            for attr in task_defaults(impl.options, self.config):
                if attr.name not in node.attributes:
                    node.attributes[attr.name] = ir.AttrString("placement", partition) if attr.name == "placement" else attr
        self.bound.append((node, key))

    def _bind_role(self, node: ir.Node, name: str, role: str, impl: Any) -> None:
        """A role slot: check ``impl`` (a class) against the role's contract and make the
        call its import path, a ``Constant`` string."""
        from namu.federated.roles import check_binding

        if not inspect.isclass(impl) or "<locals>" in impl.__qualname__:
            fail(node, f"slot {name!r} (role {role}) is bound to {impl!r}: bind a class defined at module level",
                 error=RoleBindingError)
        try:
            check_binding(name, role, impl)
        except RoleBindingError as exc:
            fail(node, str(exc), error=RoleBindingError)
        path = f"{impl.__module__}:{impl.__qualname__}"
        tensor = string_tensor(path)
        node.domain, node.op_type = "", "Constant"
        for attr in list(node.attributes):
            del node.attributes[attr]
        node.attributes["value"] = ir.AttrTensor("value", tensor)

    def _check(self, node: ir.Node, name: str, impl: Task, partition: str) -> None:
        kwnames_attr = node.attributes.get("kwnames")
        kwnames = list(kwnames_attr.as_strings()) if kwnames_attr is not None else []
        placeholders = [object()] * (len(node.inputs) - len(kwnames))
        try:
            impl.signature.bind(*placeholders, **{k: object() for k in kwnames})
        except TypeError as exc:
            fail(node, f"slot {name!r} is bound to task {impl.name!r}, which cannot take this call: {exc}")
        declared, returned = type_of(node.outputs[0]), impl.return_type
        if declared.is_onnx and returned.is_onnx and declared != returned:
            fail(
                node,
                f"slot {name!r} returns {declared}, but the task bound to it, {impl.name!r}, returns {returned}",
                error=TypeCheckError,
            )
        if impl.options.placement is not None and impl.options.placement != partition:
            fail(
                node,
                f"slot {name!r} runs in partition {partition!r}, but the task bound to it, {impl.name!r}, is "
                f"placed on {impl.options.placement!r}: bind a task without a placement for this partition "
                f"(the key {partition + '/' + name!r} binds one here only)",
            )

    def finish(self) -> None:
        """Add the bound tasks to the task table and to the compile's live tasks, then
        stamp and check each new call as ``resolve-symbols`` and ``infer-types`` would.

        Raises:
            TypeCheckError: a call's argument is not accepted by its task's annotation.
        """
        built = self.builder.task_table()
        added = [entry for entry in built if entry.key not in self.known]
        if added:
            self.model.metadata_props[TASKS_KEY] = dump(TaskTable(tasks=[*self.table.tasks, *added]))
            for entry in added:
                self.context.tasks[entry.key] = self.builder.tasks[entry.key]
        entries = {**{entry.key: entry for entry in built}, **self.table.by_key()}
        for node, key in self.bound:
            if self.stamp_symbols:
                node.metadata_props.update(task_symbol(entries[key]))
            if self.check_types:
                check_task_call(node, entries[key])
