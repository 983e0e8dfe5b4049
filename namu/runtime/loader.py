"""``namu.load``: read an artifact and bind its task table to importable code."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import onnx
from google.protobuf.message import DecodeError

from namu.errors import ArtifactError, StaleArtifactError, TaskResolutionError
from namu.frontend.task import Task
from namu.ir import metadata
from namu.ir.serde import from_proto
from namu.runtime.artifact import Artifact
from namu.runtime.modules import import_path, lookup_qualname
from namu.runtime.tasks import TaskBinding

__all__ = ["load", "read_model"]


def read_model(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Read and sanity-check a namu artifact without importing any of its tasks.

    Raises:
        ArtifactError: missing file, not ONNX, or an ONNX model namu did not build.
    """
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"no such artifact: {p}")
    try:
        proto = onnx.load_model_from_string(p.read_bytes())
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{p} is not a valid ONNX file ({type(exc).__name__})") from None
    props = {prop.key for prop in proto.metadata_props}
    missing = {metadata.PASSPORT_KEY, metadata.TASKS_KEY, metadata.SIGNATURE_KEY} - props
    if missing:
        raise ArtifactError(f"{p} is an ONNX model but not a namu artifact (no compile passport)")
    return proto


def load(path: str | os.PathLike[str], *, strict: bool = True) -> Artifact:
    """Load a compiled workflow; the result is callable like the workflow.

    Each task is resolved by its module name, falling back to the file it was defined
    in; its source digest must match the one recorded at compile time.

    Args:
        path: the ``.onnx`` artifact.
        strict: raise :class:`StaleArtifactError` when a task's source changed since
            compiling (``False`` runs the current code anyway).

    Raises:
        ArtifactError: the file is missing, corrupt or not a namu artifact.
        TaskResolutionError: a task's module or definition cannot be found.
        StaleArtifactError: a task changed since compiling (with ``strict=True``).
    """
    proto = read_model(path)
    try:
        model = from_proto(proto)
        artifact_tasks = metadata.TaskTable.model_validate_json(model.metadata_props[metadata.TASKS_KEY])
    except Exception as exc:  # noqa: BLE001 - any decoding failure means a broken artifact
        raise ArtifactError(f"{path} has corrupt namu metadata: {exc}") from None
    bindings: dict[str, TaskBinding] = {}
    for entry in artifact_tasks.tasks:
        task = _resolve(entry)
        if strict and task.digest != entry.digest:
            raise StaleArtifactError(
                f"task {entry.qualname!r} ({entry.module}) changed since {path} was compiled; "
                "recompile it, or load with strict=False to run the current code",
                task=entry.qualname,
            )
        # The digest of the code that runs: the recorded one (equal under strict=True), or
        # the current one when a stale task runs anyway, so caches never mix the two.
        digest = entry.digest if strict else task.digest
        bindings[entry.key] = TaskBinding(entry.key, task.name, task.fn, entry.options, entry.is_async, digest)
    return Artifact(model, bindings)


def _resolve(entry: metadata.TaskEntry) -> Task:
    where = f"{entry.module}.{entry.qualname}"
    if "<locals>" in entry.qualname:
        raise TaskResolutionError(
            f"task {where} was defined inside a function; define tasks at module level to load them from an artifact"
        )
    errors: list[str] = []
    try:
        module = importlib.import_module(entry.module)
    except ImportError as exc:
        errors.append(f"cannot import module {entry.module!r} ({exc})")
    except Exception as exc:  # noqa: BLE001 - the user's module failed to import
        errors.append(f"importing {entry.module!r} raised {type(exc).__name__}: {exc}")
    else:
        found = _task_in(module, entry, errors, f"module {entry.module!r}")
        if found is not None:
            return found
    if entry.file and os.path.isfile(entry.file):
        try:
            module = import_path(entry.file, module_name=entry.module)
        except Exception as exc:  # noqa: BLE001 - the user's module failed to import
            errors.append(f"importing {entry.file} raised {type(exc).__name__}: {exc}")
        else:
            found = _task_in(module, entry, errors, entry.file)
            if found is not None:
                return found
    elif entry.file:
        errors.append(f"file {entry.file} no longer exists")
    raise TaskResolutionError(f"cannot find task {entry.key!r}: " + "; ".join(errors))


def _task_in(module: ModuleType, entry: metadata.TaskEntry, errors: list[str], where: str) -> Task | None:
    """``module.<qualname>`` if it is a task; otherwise record why not and return None."""
    try:
        obj = lookup_qualname(module, entry.qualname)
    except AttributeError:
        errors.append(f"{where} has no {entry.qualname!r}")
        return None
    if not isinstance(obj, Task):
        errors.append(f"{where}: {entry.qualname} is not a @namu.task")
        return None
    return obj
