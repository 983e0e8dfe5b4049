"""``namu.load``: read an artifact and bind its task table to importable code."""

from __future__ import annotations

import importlib
import logging
import os
import stat
import threading
from pathlib import Path, PurePath
from types import ModuleType

import onnx
import onnx_ir as ir
from google.protobuf.message import DecodeError

from namu.errors import (
    ArtifactError,
    StaleArtifactError,
    TaskResolutionError,
    first_line,
)
from namu.frontend.task import Task
from namu.ir import metadata
from namu.ir.serde import from_proto
from namu.runtime.artifact import Artifact
from namu.runtime.tasks import TaskBinding
from namu.runtime.user_code import import_path, lookup_qualname

__all__ = ["decode_model", "load", "read_model"]


def read_model(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Read and sanity-check a namu artifact without importing any of its tasks.

    Raises:
        ArtifactError: missing, unreadable (permissions) or not a regular file, not
            ONNX, or an ONNX model namu did not build.
    """
    p = Path(path)
    try:
        if not stat.S_ISREG(p.stat().st_mode):
            raise ArtifactError(f"{p} is not a file")
        data = p.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise ArtifactError(f"no such artifact: {p}") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read artifact {p}: {exc.strerror or exc}") from None
    try:
        proto = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{p} is not a valid ONNX file ({type(exc).__name__})") from None
    props = {prop.key for prop in proto.metadata_props}
    missing = set(metadata.ArtifactMetadata.KEYS) - props
    if missing:
        raise ArtifactError(f"{p} is an ONNX model but not a namu artifact (no compile passport)")
    return proto


def decode_model(proto: onnx.ModelProto, path: str | os.PathLike[str]) -> tuple[ir.Model, metadata.ArtifactMetadata]:
    """The IR of an artifact read by :func:`read_model`, checked before anything runs it.

    The graph must be well formed (onnx_ir's deserializer finds every value a node
    reads; it would otherwise log a warning and invent the value) and the metadata must
    pass :func:`~namu.ir.metadata.verify_artifact` (compiled by this namu or an older
    one, signature and task table consistent with the graph). No task code is imported.

    Args:
        proto: the model.
        path: the file it was read from, for messages.

    Returns:
        The model and its parsed metadata.

    Raises:
        ArtifactError: the first problem found, in one line starting with ``path``.
    """
    with _DeserializerComplaints() as complaints:
        try:
            model = from_proto(proto)
        except Exception as exc:  # noqa: BLE001 - any decoding failure means a broken artifact
            raise ArtifactError(f"{path} has a damaged graph: {type(exc).__name__}: {first_line(exc)}") from None
    if complaints.messages:  # onnx_ir repairs an invalid graph with a warning; namu refuses it
        reason = first_line(complaints.messages[0]).split(". The model is invalid")[0]
        raise ArtifactError(f"{path} has a damaged graph: {reason}")
    try:
        return model, metadata.verify_artifact(model)
    except ArtifactError as exc:
        raise ArtifactError(f"{path}: {exc}") from None


class _DeserializerComplaints(logging.Filter):
    """Collects (and keeps off stderr) what onnx_ir's deserializer logs in this thread
    while in the ``with`` block: it logs an invalid graph instead of raising."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.messages: list[str] = []
        self.logger = logging.getLogger(ir.serde.__name__)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread or record.levelno < logging.WARNING:
            return True
        self.messages.append(record.getMessage())
        return False

    def __enter__(self) -> _DeserializerComplaints:
        self.logger.addFilter(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.logger.removeFilter(self)


def load(path: str | os.PathLike[str], *, strict: bool = True) -> Artifact:
    """Load a compiled workflow; the result is callable like the workflow.

    Before any task is imported, the artifact is checked (:func:`decode_model`): a
    well-formed graph, compiled by this namu or an older one, its metadata consistent
    with its graph. Each task is then resolved by its module name, falling back to the
    file it was defined in, then to that file's place relative to the artifact (so a
    project moved along with its artifact loads without ``PYTHONPATH``); its source
    digest must match the one recorded at compile time.

    Args:
        path: the ``.onnx`` artifact.
        strict: raise :class:`StaleArtifactError` when a task's source changed since
            compiling (``False`` runs the current code anyway).

    Raises:
        ArtifactError: the file is missing, unreadable, corrupt, not a namu artifact,
            compiled by a newer namu, or its graph or metadata is damaged.
        TaskResolutionError: a task's module or definition cannot be found.
        StaleArtifactError: a task changed since compiling (with ``strict=True``).
    """
    model, meta = decode_model(read_model(path), path)
    bindings: dict[str, TaskBinding] = {}
    for entry in meta.task_table.tasks:
        task = _resolve(entry, Path(path))
        if strict and task.digest != entry.digest:
            raise StaleArtifactError(
                f"task {entry.qualname!r} ({entry.module}) changed since {path} was compiled; "
                "recompile it, or load with strict=False to run the current code",
                task=entry.qualname,
            )
        # The digest of the code that runs: the recorded one (equal under strict=True), or
        # the current one when a stale task runs anyway, so caches never mix the two.
        digest = entry.digest if strict else task.digest
        bindings[entry.key] = TaskBinding.of(entry.key, task, options=entry.options, digest=digest)
    return Artifact(model, bindings)


def _resolve(entry: metadata.TaskEntry, artifact: Path) -> Task:
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
    candidates = _beside_artifact(entry, artifact)
    for candidate in candidates:
        try:
            module = import_path(candidate, module_name=entry.module)
        except Exception as exc:  # noqa: BLE001 - the user's module failed to import
            errors.append(f"importing {candidate} raised {type(exc).__name__}: {exc}")
            continue
        found = _task_in(module, entry, errors, str(candidate))
        if found is not None:
            return found
    if not candidates:
        errors.append(f"no {_relative_file(entry).name} next to {artifact} or in a directory above it")
    raise TaskResolutionError(f"cannot find task {entry.key!r}: " + "; ".join(errors))


def _relative_file(entry: metadata.TaskEntry) -> PurePath:
    """The task's file without its root: the recorded path, else one made from the module name."""
    if entry.file:
        path = PurePath(entry.file)
        return path.relative_to(path.anchor) if path.anchor else path
    *package, name = entry.module.split(".")
    return PurePath(*package, f"{name}.py")


def _beside_artifact(entry: metadata.TaskEntry, artifact: Path) -> list[Path]:
    """The files that may hold the task in a project moved along with its artifact.

    The project keeps its layout, so the task's file is where the recorded path, cut to
    its last N parts, leads from the artifact's directory or a directory above it. For
    ``/old/proj/src/tasks.py`` and ``/new/proj/build/wf.onnx``: ``/new/proj/build`` is
    searched for ``old/proj/src/tasks.py``, ``proj/src/tasks.py``, ``src/tasks.py``,
    ``tasks.py``, then ``/new/proj`` (finding ``/new/proj/src/tasks.py``), and so on up
    -- nearest directory first, longest match first. The artifact's own directory is
    taken both as given and with symlinks resolved.

    Returns:
        The existing files, in that order, except the recorded path itself.
    """
    parts = _relative_file(entry).parts
    tails = [PurePath(*parts[-n:]) for n in range(len(parts), 0, -1)]
    starts = dict.fromkeys([artifact.absolute().parent, artifact.resolve().parent])
    found: dict[Path, None] = {}
    for start in starts:
        for directory in (start, *start.parents):
            for tail in tails:
                candidate = directory / tail
                if os.path.isfile(candidate) and str(candidate) != entry.file:
                    found[candidate] = None
    return list(found)


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
