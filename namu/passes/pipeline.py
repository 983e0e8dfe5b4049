"""Choose and run a sequence of registered passes, with the pass name on every error.

The canonical pipeline is every registered pass with an ``order``, in order; ``-O0``
keeps the required ones (verification, inlining, partitioning, lowering), ``-O1`` adds
the cheap clean-ups, ``-O2`` runs everything (see ``docs/passes.md``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

import onnx_ir as ir

from namu.errors import NamuError, PassError
from namu.passes.base import NamuPass, PassContext
from namu.passes.registry import get, registered

__all__ = ["PassRecord", "default_pipeline", "pipeline", "run_passes"]

logger = logging.getLogger(__name__)

#: called after each pass with the pass name, its index in the run and the model.
AfterPass = Callable[[str, int, ir.Model], None]


@dataclasses.dataclass(frozen=True)
class PassRecord:
    """What one pass did.

    Attributes:
        name: the pass.
        modified: whether it changed the model.
        changes: how many rewrites it made (``modified`` as 0/1 for passes that do not count).
        seconds: wall time of the pass.
    """

    name: str
    modified: bool
    seconds: float
    changes: int = 0


def pipeline(opt_level: int = 2, disabled: Sequence[str] = ()) -> list[str]:
    """Names of the passes the pipeline runs at ``opt_level``, in order.

    Args:
        opt_level: 0, 1 or 2 (``-O0`` .. ``-O2``).
        disabled: names of optional passes to leave out.

    Raises:
        ValueError: ``opt_level`` is not 0, 1 or 2, or a disabled pass is required.
        KeyError: a disabled name is not a registered pass.
    """
    if opt_level not in (0, 1, 2):
        raise ValueError(f"opt_level must be 0, 1 or 2, got {opt_level!r}")
    for name in disabled:
        if get(name).required:
            raise ValueError(f"pass {name!r} is required (it verifies or lowers the IR) and cannot be disabled")
    skip = set(disabled)
    return [p.name for p in registered() if p.order is not None and p.level <= opt_level and p.name not in skip]


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

    Args:
        model: the IR; passes change it in place.
        names: registered pass names.
        context: what namu's passes may read (config, live tasks); default: defaults.
        after_pass: called after each pass (``--dump-after``).

    Returns:
        The resulting model and one :class:`PassRecord` per pass.

    Raises:
        KeyError: a name is not a registered pass.
        NamuError: a pass rejected the model (e.g. CompileError), unchanged.
        PassError: a pass failed unexpectedly; names the pass, cause chained.
    """
    names = list(names) if names is not None else default_pipeline()
    if context is None:
        context = PassContext(pipeline=tuple(names))
    elif not context.pipeline:
        context = dataclasses.replace(context, pipeline=tuple(names))
    records: list[PassRecord] = []
    for index, name in enumerate(names):
        info = get(name)
        start = time.perf_counter()
        instance = info.cls(context) if issubclass(info.cls, NamuPass) else info.cls()
        try:
            result = instance(model)
        except NamuError:
            raise
        except Exception as exc:
            cause = exc.__cause__ if isinstance(exc, ir.passes.InvariantError) and exc.__cause__ else exc
            if isinstance(cause, NamuError):
                raise cause from None
            raise PassError(f"pass {name!r} failed: {type(cause).__name__}: {cause}") from cause
        model = result.model
        modified = bool(result.modified)
        changes = instance.changes if isinstance(instance, NamuPass) else int(modified)
        records.append(PassRecord(name, modified, time.perf_counter() - start, changes))
        logger.debug("pass %s: modified=%s changes=%d", name, modified, changes)
        if after_pass is not None:
            after_pass(name, index, model)
    return model, records
