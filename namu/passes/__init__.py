"""namu's compiler passes, built on ``onnx_ir.passes``.

Each pass lives in its own module as a ``VerbObjectPass`` class registered under a
kebab-case name, with the passes it runs after (:func:`namu.passes.registry.register`);
the pipeline is ordered from those declarations and runs the clean-up group to a
fixpoint (:mod:`namu.passes.pipeline`). Importing this package imports every pass
module, so a new pass is added by writing one module.
"""

from __future__ import annotations

import importlib
import pkgutil

from namu.passes.base import NamuPass, PassContext
from namu.passes.config import CompileConfig
from namu.passes.pipeline import PassRecord, default_pipeline, pipeline, run_passes
from namu.passes.registry import PassInfo, get, register, registered

__all__ = [
    "CompileConfig",
    "NamuPass",
    "PassContext",
    "PassInfo",
    "PassRecord",
    "default_pipeline",
    "get",
    "pipeline",
    "register",
    "registered",
    "run_passes",
]

_INFRASTRUCTURE = {"base", "config", "docs", "pipeline", "registry"}

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _INFRASTRUCTURE and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
