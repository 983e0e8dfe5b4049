"""``expand-defaults``: write every task call's run-time options onto its node."""

from __future__ import annotations

import logging

import onnx_ir as ir

from namu.ir.attrs import attributes_of
from namu.ir.metadata import TaskOptions, TaskTable
from namu.ir.opsets import NAMU_DOMAIN
from namu.ir.scopes import walk
from namu.passes.base import Example, NamuPass
from namu.passes.config import CompileConfig
from namu.passes.registry import register

__all__ = ["ExpandDefaultsPass", "task_defaults"]

logger = logging.getLogger(__name__)


@register(
    "expand-defaults",
    "every task call carries its retries, timeout_s, cache, priority and placement as attributes",
    after=("inline-functions",),
    level=0,
)
class ExpandDefaultsPass(NamuPass):
    """Fill the run-time options of every ``namu.Task`` node from its task and the compile.

    Each option comes from the task's own ``@namu.task`` options where the user set it
    explicitly (the task table stores only those: ``model_fields_set`` of the loaded
    ``TaskOptions``), else from the compile's ``CompileConfig``. Attributes a node
    already has are kept, so the pass is idempotent and a later pass (or a hand-written
    model) may override them.

    A key missing from the task table gets the compile's defaults. The attributes:

    - ``retries`` (int): retries after a failing call;
    - ``timeout_s`` (float, seconds; ``0.0`` = no limit): the limit of one call (a
      float32 ONNX attribute);
    - ``cache`` (int 0/1): results are memoized by input; ``pure=True`` tasks are always
      cached, as the runtime does;
    - ``priority`` (int): added to the call's critical-path priority;
    - ``placement`` (string): where the call runs (``CompileConfig.placement``,
      ``"local"``, unless the task names one).

    Passes that add or inspect task calls later (``resolve-slots``, ``fuse-tasks``,
    ``insert-resilience-gates``) take the same values from :func:`task_defaults`.

    Guarantees:
        Every ``namu.Task`` node, in every graph, subgraph and function, has the five
            attributes above; the values a node already had are unchanged.
    """

    EXAMPLE = Example(
        before="""
        g (int64 x) => (int64 y) { a = namu.Task <task = "square"> (x)  y = namu.Task <task = "log"> (a) }""",
        after="""
        g (int64 x) => (int64 y) {
          a = namu.Task <task = "square", retries = 2, timeout_s = 30.0, cache = 1, priority = 0, placement = "local"> (x)
          y = namu.Task <task = "log", retries = 2, timeout_s = 30.0, cache = 0, priority = 0, placement = "local"> (a)
        }""",
        pure_tasks=("square",),
        impure_tasks=("log",),
        config={"retries": 2, "timeout_s": 30.0},
        note="The defaults come from `CompileConfig(retries=2, timeout_s=30.0)`; "
        "`square` is pure, so its calls are cached. A task's own `@namu.task(retries=...)` would win.",
    )

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        config = self.context.config
        defaults = {t.key: task_defaults(t.options, config) for t in TaskTable.of(model).tasks}
        fallback = task_defaults(TaskOptions(), config)
        filled = 0
        for node in walk(model):
            if node.op_type != "Task" or node.domain != NAMU_DOMAIN:
                continue
            attributes = attributes_of(node)
            missing = False
            for attr in defaults.get(attributes["task"].value, fallback):
                if attr.name not in attributes:
                    attributes[attr.name] = attr  # Attr is immutable: shared safely
                    missing = True
            filled += missing
        logger.debug("filled the defaults of %d task calls", filled)
        self.changed(filled)
        return self.result(model)

    def ensures(self, model: ir.Model) -> None:
        names = [attr.name for attr in task_defaults(TaskOptions(), self.context.config)]
        for node in walk(model):
            if node.op_type == "Task" and node.domain == NAMU_DOMAIN:
                missing = [name for name in names if name not in node.attributes]
                if missing:
                    self.broken(f"a task call has no {', '.join(missing)} attribute", node)


def task_defaults(options: TaskOptions, config: CompileConfig) -> list[ir.Attr]:
    """The run-time option attributes of a call of a task with ``options``.

    Args:
        options: the task's options as loaded from the task table; its
            ``model_fields_set`` says which the user set explicitly.
        config: the compile's options, giving every default the task does not set.

    Returns:
        ``retries``, ``timeout_s`` (``0.0``: no limit), ``cache`` (0/1), ``priority``
        and ``placement`` attributes, in that order.
    """
    explicit = options.model_fields_set
    retries = options.retries if "retries" in explicit else config.retries
    # An explicit `timeout_s=None` means "no limit", overriding the compile's default.
    timeout_s = options.timeout_s if "timeout_s" in explicit else config.timeout_s
    cache = options.pure or (options.cache if "cache" in explicit else config.cache)
    # `priority=None` and `placement=None` mean "the compile's default".
    priority = options.priority if options.priority is not None else config.priority
    placement = options.placement if options.placement is not None else config.placement
    return [
        ir.AttrInt64("retries", retries),
        ir.AttrFloat32("timeout_s", float(timeout_s or 0.0)),
        ir.AttrInt64("cache", int(cache)),
        ir.AttrInt64("priority", priority),
        ir.AttrString("placement", placement),
    ]
