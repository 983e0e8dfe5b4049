"""The compiler driver: source -> its frontend's IR -> passes -> :class:`~namu.runtime.artifact.Artifact`."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from namu.frontend.reads import NameReads
from namu.frontend.registry import lower
from namu.frontend.workflow import Workflow
from namu.ir import metadata
from namu.passes import CompileConfig, PassContext, pipeline, run_passes
from namu.passes.pipeline import AfterPass
from namu.runtime.artifact import Artifact

__all__ = ["compile", "compile_tracking_reads", "lower"]


def compile(  # noqa: A001
    source: Any,
    *,
    passes: Sequence[str] | None = None,
    opt_level: int | None = None,
    disable: Sequence[str] = (),
    slots: Mapping[str, Any] | None = None,
    config: CompileConfig | None = None,
    after_pass: AfterPass | None = None,
) -> Artifact:
    """Compile a workflow into an :class:`Artifact`.

    Args:
        source: a function decorated with ``@namu.workflow``, another object a registered
            frontend lowers (:mod:`namu.frontend.registry`), or the path of a source
            file (``str`` or ``os.PathLike``; ``"FILE.py:NAME"`` picks a workflow).
        passes: names of registered passes to run, in order, instead of the pipeline of
            ``opt_level`` (start from ``namu.passes.pipeline()`` to insert your own).
        opt_level: 0, 1 or 2 (default: ``config.opt_level``, 2).
        disable: optional passes to leave out of the pipeline.
        slots: role-slot bindings (``{"llm": my_task}``), merged over ``config.slots``.
        config: the compile's options (:class:`~namu.passes.config.CompileConfig`).
        after_pass: called with ``(pass name, index, model)`` after each pass.

    Returns:
        The artifact, bound to the live task functions (so it runs without importing);
        ``artifact.pass_records`` holds each pass's time and change count.

    Raises:
        TaskDefinitionError: no frontend lowers ``source`` (the message lists what does).
        SourceError: ``source`` is a path that no frontend reads, or a file that cannot
            be imported or does not hold the workflow named.
        WorkflowSyntaxError: the body uses a construct namu cannot lower.
        CompileError: a pass rejected the workflow at a source line (a type mismatch,
            an unbound slot, ...).
        IRVerificationError, PassError: a pass rejected or failed on the IR.
        ValueError, KeyError: a bad ``opt_level``, or an unknown or required pass in
            ``disable``.
    """
    config = config or CompileConfig()
    updates: dict[str, Any] = {}
    if opt_level is not None:
        updates["opt_level"] = opt_level
    if disable:
        updates["disabled_passes"] = tuple(disable)
    if slots:
        updates["slots"] = {**config.slots, **slots}
    if updates:
        config = CompileConfig.model_validate({**config.model_dump(exclude_unset=True), **updates})
    names = list(passes) if passes is not None else pipeline(config.opt_level, config.disabled_passes)
    return _compile(source, config, names, after_pass)[0]


def compile_tracking_reads(workflow: Workflow) -> tuple[Artifact, NameReads]:
    """Compile a workflow with the default options, as ``workflow(...)`` does, and say what
    the compile read: the tasks, sub-workflows and constants its names resolved to.

    Returns:
        The artifact, and the reads; while ``reads.current()`` holds, compiling again
        would give the same artifact.

    Raises:
        TaskDefinitionError, WorkflowSyntaxError, CompileError, IRVerificationError,
            PassError: as :func:`compile`.
    """
    config = CompileConfig()
    return _compile(workflow, config, pipeline(config.opt_level, config.disabled_passes), None)


def _compile(
    source: Any, config: CompileConfig, names: list[str], after_pass: AfterPass | None
) -> tuple[Artifact, NameReads]:
    with _cyclic_gc_paused():
        lowered = lower(source)
        if lowered.slots:  # the source's own bindings (an agent's), under the compile's
            config = config.model_copy(update={"slots": {**lowered.slots, **config.slots}})
        if lowered.placement and "placement" not in config.model_fields_set:
            config = config.model_copy(update={"placement": lowered.placement})
        context = PassContext(config=config, tasks=lowered.tasks, pipeline=tuple(names))
        model, records = run_passes(lowered.model, names, context=context, after_pass=after_pass)
    passport = metadata.Passport.stored_in(model)  # the frontend's provisional one, at least
    if passport is not None and not passport.provides(metadata.CAPABILITY_VERIFIED):
        # no pass completed the passport (a custom pass list): complete it here
        passport = passport.model_copy(update={"passes": [r.name for r in records], "options": config.summary()})
        model.metadata_props[metadata.PASSPORT_KEY] = metadata.dump(passport)
    artifact = Artifact(model, tasks=dict(lowered.tasks))
    artifact.pass_records = records
    return artifact, lowered.reads


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a compile builds the IR.

    An IR of 100,000 nodes is millions of live objects (nodes, values, attributes point
    at each other), and every full collection rescans them all: with the collector on,
    compile time grows faster than the IR (measured 2x at 100,000 ops). Compiling makes
    little cyclic garbage, and what it makes is collected once the pause ends. Reference
    counting still frees everything else at once.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

