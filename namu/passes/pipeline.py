"""Run a sequence of registered passes over a model, with the pass name on every error."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence

import onnx_ir as ir

from namu.errors import NamuError, PassError
from namu.passes.registry import get, registered

__all__ = ["PassRecord", "default_pipeline", "run_passes"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PassRecord:
    """What one pass did: its name, whether it changed the model, and its time in seconds."""

    name: str
    modified: bool
    seconds: float


def default_pipeline() -> list[str]:
    """Names of the passes of the default pipeline, in order."""
    return [p.name for p in registered() if p.order is not None]


def run_passes(model: ir.Model, names: Sequence[str] | None = None) -> tuple[ir.Model, list[PassRecord]]:
    """Run the named passes (default: :func:`default_pipeline`) in order.

    Returns:
        The resulting model and one :class:`PassRecord` per pass.

    Raises:
        KeyError: a name is not a registered pass.
        NamuError: a pass rejected the model (e.g. IRVerificationError), unchanged.
        PassError: a pass failed unexpectedly; names the pass, cause chained.
    """
    records: list[PassRecord] = []
    for name in names if names is not None else default_pipeline():
        info = get(name)
        start = time.perf_counter()
        try:
            result = info.cls()(model)
        except NamuError:
            raise
        except Exception as exc:
            cause = exc.__cause__ if isinstance(exc, ir.passes.InvariantError) and exc.__cause__ else exc
            if isinstance(cause, NamuError):
                raise cause from None
            raise PassError(f"pass {name!r} failed: {type(cause).__name__}: {cause}") from cause
        model = result.model
        records.append(PassRecord(name, bool(result.modified), time.perf_counter() - start))
        logger.debug("pass %s: modified=%s", name, result.modified)
    return model, records
