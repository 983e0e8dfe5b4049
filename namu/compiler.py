"""The compiler driver: workflow -> lowered IR -> passes -> :class:`~namu.runtime.artifact.Artifact`."""

from __future__ import annotations

from collections.abc import Sequence

import onnx_ir as ir

from namu._version import __version__
from namu.errors import TaskDefinitionError
from namu.frontend.lower import CompileContext, lower_workflow
from namu.frontend.workflow import Workflow
from namu.ir import metadata
from namu.ir.opsets import ONNX_OPSET, opset_imports
from namu.passes import default_pipeline, run_passes
from namu.runtime.artifact import Artifact

__all__ = ["IR_VERSION", "compile"]

#: ONNX IR version of the artifacts namu writes (opset 21 needs IR version 10).
IR_VERSION = 10


def compile(workflow: Workflow, *, passes: Sequence[str] | None = None) -> Artifact:  # noqa: A001
    """Compile a workflow into an :class:`Artifact`.

    Args:
        workflow: a function decorated with ``@namu.workflow``.
        passes: names of registered passes to run, in order (default: the default
            pipeline, see ``namu.passes.default_pipeline()``).

    Returns:
        The artifact, bound to the live task functions (so it runs without importing).

    Raises:
        TaskDefinitionError: ``workflow`` is not a ``@namu.workflow``.
        WorkflowSyntaxError: the body uses a construct namu cannot lower.
        IRVerificationError, PassError: a pass rejected or failed on the IR.
    """
    if not isinstance(workflow, Workflow):
        raise TaskDefinitionError(f"namu.compile needs a @namu.workflow, got {workflow!r}")
    ctx = CompileContext()
    graph, signature, workflow_digest = lower_workflow(workflow, ctx)
    model = ir.Model(
        graph,
        ir_version=IR_VERSION,
        producer_name="namu",
        producer_version=__version__,
        functions=list(ctx.functions.values()),
    )
    for function in model.functions.values():
        function.opset_imports.update(opset_imports())
    model.metadata_props[metadata.TASKS_KEY] = metadata.dump(metadata.TaskTable(tasks=ctx.task_table()))
    model.metadata_props[metadata.SIGNATURE_KEY] = metadata.dump(signature)
    names = list(passes) if passes is not None else default_pipeline()
    model, records = run_passes(model, names)
    passport = metadata.Passport(
        namu_version=__version__,
        workflow=workflow.name,
        workflow_digest=workflow_digest,
        passes=[r.name for r in records],
        onnx_opset=ONNX_OPSET,
    )
    model.metadata_props[metadata.PASSPORT_KEY] = metadata.dump(passport)
    return Artifact(model, tasks=dict(ctx.tasks))
