"""Choose and run a sequence of registered passes, with the pass name on every error.

The canonical pipeline is every pass that declares its place (``after=``/``before=``),
in the order of those constraints (:func:`namu.passes.registry.canonical_order`);
``-O0`` keeps the required ones (verification, inlining, partitioning, lowering),
``-O1`` adds the cheap clean-ups, ``-O2`` runs everything (see ``docs/passes.md``).

Consecutive passes of one clean-up group (``group="cleanup"``: constant folding, CSE,
dead-code elimination, control-flow simplification) run as a fixpoint loop, as
onnxscript's optimizer runs its rewrites and folding with onnx_ir's
``PassManager(steps, early_stop=True)``: the group repeats, in order, until every pass of
it has seen the model as it is and left it unchanged (at most :data:`MAX_ROUNDS`
rounds). One pass folds what another's rewrite exposed, and dead-code elimination
sweeps what the others leave unread. A pass is not rerun right after its own change:
each reaches its own fixpoint in one run; and a change that only removes unread nodes
(``only_removes_unread``: the sweep) reruns no other pass, since it gives them nothing
new to rewrite.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

import onnx_ir as ir

from namu.errors import NamuError, PassError
from namu.ir import metadata
from namu.passes.base import NamuPass, PassContext
from namu.passes.registry import PassInfo, canonical_order, get

__all__ = ["MAX_ROUNDS", "PassRecord", "default_pipeline", "pipeline", "run_passes"]

logger = logging.getLogger(__name__)

#: called after the first run of each pass of the list, and after every later run of it
#: (in a group's repeats) that changed the model, with the pass name, its index in the
#: list and the model: ``--dump-after`` shows the IR as the pass last left it.
AfterPass = Callable[[str, int, ir.Model], None]

#: most rounds a clean-up group runs; a group still changing the model then stops (logged).
MAX_ROUNDS = 8


@dataclasses.dataclass(frozen=True)
class PassRecord:
    """What one pass of the list did, over all its runs (a group's repeats merged).

    Attributes:
        name: the pass.
        modified: whether any run changed the model.
        seconds: wall time of its runs.
        changes: how many rewrites its runs made (``modified`` as 0/1 per run for passes
            that do not count).
        runs: how many times it ran (more than 1 only in a clean-up group).
    """

    name: str
    modified: bool
    seconds: float
    changes: int = 0
    runs: int = 1


def pipeline(opt_level: int = 2, disabled: Sequence[str] = ()) -> list[str]:
    """Names of the passes the pipeline runs at ``opt_level``, in order.

    Args:
        opt_level: 0, 1 or 2 (``-O0`` .. ``-O2``).
        disabled: names of optional passes to leave out.

    Raises:
        ValueError: ``opt_level`` is not 0, 1 or 2, a disabled pass is required, or the
            passes' ordering constraints name an unknown pass or form a cycle.
        KeyError: a disabled name is not a registered pass.
    """
    if opt_level not in (0, 1, 2):
        raise ValueError(f"opt_level must be 0, 1 or 2, got {opt_level!r}")
    for name in disabled:
        if get(name).required:
            raise ValueError(f"pass {name!r} is required (it verifies or lowers the IR) and cannot be disabled")
    skip = set(disabled)
    return [p.name for p in canonical_order() if p.level <= opt_level and p.name not in skip]


def default_pipeline() -> list[str]:
    """Names of the passes of the default (``-O2``) pipeline, in order."""
    return pipeline(2)


def run_passes(
    model: ir.Model,
    names: Sequence[str] | None = None,
    *,
    context: PassContext | None = None,
    after_pass: AfterPass | None = None,
) -> tuple[ir.Model, list[PassRecord]]:
    """Run the named passes (default: :func:`default_pipeline`) in order.

    Consecutive passes of one clean-up group repeat until none of them changes the
    model. With ``context.config.check_guarantees``, each run of a namu pass is
    followed by its ``ensures(model)``. Afterwards the model's passport (when it has
    one) records the capabilities the passes that ran provide
    (``Passport.capabilities``).

    Args:
        model: the IR; passes change it in place.
        names: registered pass names.
        context: what namu's passes may read (config, live tasks); default: defaults.
        after_pass: called after each pass (``--dump-after``; see :data:`AfterPass`).

    Returns:
        The resulting model and one :class:`PassRecord` per name of ``names``.

    Raises:
        KeyError: a name is not a registered pass.
        ValueError: ``names`` is None and the passes' ordering constraints name an
            unknown pass or form a cycle.
        NamuError: a pass rejected the model (e.g. CompileError), message unchanged;
            its ``pass_name`` is the pass, and a note names it.
        PassError: a pass failed unexpectedly, or (checking guarantees) broke one;
            names the pass, cause chained.
    """
    names = list(names) if names is not None else default_pipeline()
    infos = [get(name) for name in names]
    if context is None:
        context = PassContext(pipeline=tuple(names))
    elif not context.pipeline:
        context = dataclasses.replace(context, pipeline=tuple(names))
    records: list[PassRecord] = []
    start = 0
    while start < len(infos):
        group = infos[start].group
        end = start + 1
        while group is not None and end < len(infos) and infos[end].group == group:
            end += 1
        model, stage = _run_stage(model, infos[start:end], start, context, after_pass)
        records += stage
        start = end
    _stamp_capabilities(model, {c for info in infos for c in info.provides})
    return model, records


def _run_stage(
    model: ir.Model, infos: list[PassInfo], first_index: int, context: PassContext, after_pass: AfterPass | None
) -> tuple[ir.Model, list[PassRecord]]:
    """Run one pass, or the consecutive passes of one group until none changes the model."""
    records = [PassRecord(info.name, False, 0.0, 0, 0) for info in infos]
    stale = [True] * len(infos)  # the pass has not seen the model as it is now
    rounds = 0
    while any(stale):
        if rounds == MAX_ROUNDS:
            logger.info("group %r still changed the model after %d rounds; stopping", infos[0].group, rounds)
            break
        rounds += 1
        for i, info in enumerate(infos):
            if not stale[i]:
                continue
            model, record = _run_one(model, info, context)
            total = records[i]
            records[i] = PassRecord(
                info.name,
                total.modified or record.modified,
                total.seconds + record.seconds,
                total.changes + record.changes,
                total.runs + 1,
            )
            if record.modified and not info.only_removes_unread:
                stale = [True] * len(infos)
            stale[i] = False
            logger.debug("pass %s: modified=%s changes=%d", info.name, record.modified, record.changes)
            if after_pass is not None and (record.modified or total.runs == 0):
                after_pass(info.name, first_index + i, model)
    return model, records


def _run_one(model: ir.Model, info: PassInfo, context: PassContext) -> tuple[ir.Model, PassRecord]:
    """Run the pass ``info`` once on ``model``, naming it on any error."""
    name = info.name
    start = time.perf_counter()
    instance = info.cls(context) if issubclass(info.cls, NamuPass) else info.cls()
    try:
        result = instance(model)
    except NamuError as exc:
        _name_pass(exc, name)
        raise
    except Exception as exc:  # noqa: BLE001 - any other failure becomes a PassError naming the pass
        # onnx_ir's PassBase reports a failing requires()/ensures() as an InvariantError
        cause = exc.__cause__ if isinstance(exc, ir.passes.InvariantError) and exc.__cause__ else exc
        if isinstance(cause, NamuError):
            raise _name_pass(cause, name) from None
        failure = PassError(f"pass {name!r} failed: {type(cause).__name__}: {cause}")
        failure.pass_name = name
        raise failure from cause
    modified = bool(result.modified)
    changes = instance.changes if isinstance(instance, NamuPass) else int(modified)
    return result.model, PassRecord(name, modified, time.perf_counter() - start, changes)


def _name_pass(exc: NamuError, name: str) -> NamuError:
    """``exc``, raised inside the pass ``name``: its ``pass_name`` is set and a note names
    the pass (its message, which users and tests match, stays as it is)."""
    if exc.pass_name is None:
        exc.pass_name = name
        exc.add_note(f"in compiler pass {name!r}")
    return exc


def _stamp_capabilities(model: ir.Model, provided: set[str]) -> None:
    """Add ``provided`` to the capabilities of the model's passport, if it has one."""
    passport = metadata.Passport.stored_in(model)
    if passport is None:
        return
    capabilities = sorted(provided.union(passport.capabilities or ()))
    if capabilities != passport.capabilities:
        passport = passport.model_copy(update={"capabilities": capabilities})
        model.metadata_props[metadata.PASSPORT_KEY] = metadata.dump(passport)
