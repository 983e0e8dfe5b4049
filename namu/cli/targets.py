"""What a command works on: a workflow in a Python file (``FILE.py[:WORKFLOW]``), a saved
artifact (``ART.onnx``), and the tasks ``--slot`` names."""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import namu
from namu.cli.errors import fail, first_line
from namu.errors import ArtifactError, CompileError, NamuError, WorkflowSyntaxError

__all__ = ["compile_workflow", "existing_file", "load_artifact", "load_workflow", "slot_bindings", "target_artifact"]


def _split_target(spec: str) -> tuple[str, str | None]:
    """``FILE.py:NAME`` -> ``("FILE.py", "NAME")``; anything else -> ``(spec, None)``."""
    path, sep, name = spec.rpartition(":")
    if sep and path.lower().endswith(".py"):
        if not name.isidentifier():
            fail(f"invalid workflow name {name!r} in {spec!r} (expected FILE.py:WORKFLOW)")
        return path, name
    return spec, None


def existing_file(path: str) -> Path:
    """``path`` as a ``Path``, once it is known to name a file.

    Raises:
        CliError: ``path`` is missing, not a file, or cannot be reached.
    """
    p = Path(path)
    try:
        if not p.exists():
            fail(f"no such file: {path}")
        if not p.is_file():
            fail(f"not a file: {path}")
    except OSError as exc:  # a directory on the way cannot be searched
        fail(f"cannot access {path}: {exc.strerror or exc}")
    return p


def _import_file(path: Path) -> types.ModuleType:
    from namu.runtime.user_code import import_path

    try:
        return import_path(path)
    except SyntaxError as exc:
        where = f"{exc.filename or path}:{exc.lineno or 0}:{exc.offset or 0}"
        fail(f"{where}: {type(exc).__name__}: {exc.msg}")
    except WorkflowSyntaxError as exc:
        fail(first_line(exc))
    except NamuError as exc:
        fail(f"importing {path}: {type(exc).__name__}: {first_line(exc)}")
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's module failed
        fail(f"importing {path} raised {type(exc).__name__}: {first_line(exc)}")


def _code_names(code: types.CodeType) -> set[str]:
    """Global names a function (and the comprehensions and lambdas inside it) refers to."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _module_workflows(module: types.ModuleType) -> dict[str, namu.Workflow]:
    """The workflows defined in ``module`` (not imported into it), by name."""
    found: dict[str, namu.Workflow] = {}
    for attr, obj in vars(module).items():
        if isinstance(obj, namu.Workflow) and getattr(obj.fn, "__module__", None) == module.__name__:
            if obj not in found.values():
                found[obj.name] = obj
            if attr != obj.name:
                found.setdefault(attr, obj)
    return found


def _entry_workflows(module: types.ModuleType, workflows: dict[str, namu.Workflow]) -> list[namu.Workflow]:
    """The workflows that no other workflow of the module calls (the module's entry points)."""
    unique = list(dict.fromkeys(workflows.values()))
    called: set[int] = set()
    namespace = vars(module)
    for wf in unique:
        for name in _code_names(wf.fn.__code__):
            obj = namespace.get(name)
            if isinstance(obj, namu.Workflow) and obj is not wf:
                called.add(id(obj))
    return [wf for wf in unique if id(wf) not in called]


def load_workflow(spec: str) -> namu.Workflow:
    """Import ``FILE.py[:WORKFLOW]`` and pick the workflow (docs/cli.md: naming a workflow).

    Raises:
        CliError: the file is missing or fails to import, or names no single workflow.
    """
    path_text, name = _split_target(spec)
    path = existing_file(path_text)
    if path.suffix.lower() != ".py":
        fail(f"{path_text} is not a Python file (expected FILE.py or FILE.py:WORKFLOW)")
    module = _import_file(path)
    workflows = _module_workflows(module)
    names = sorted({wf.name for wf in workflows.values()})
    if name is not None:
        if name in workflows:
            return workflows[name]
        if not names:
            fail(f"no workflow named {name!r}: {path_text} defines no @namu.workflow")
        fail(f"no workflow named {name!r} in {path_text}; available: {', '.join(names)}")
    if not workflows:
        fail(f"{path_text} defines no @namu.workflow")
    if len(names) == 1:
        return next(iter(workflows.values()))
    entries = _entry_workflows(module, workflows)
    if len(entries) == 1:
        return entries[0]
    fail(
        f"{path_text} defines several workflows ({', '.join(names)}); "
        f"choose one with {path_text}:WORKFLOW"
    )


def compile_workflow(wf: namu.Workflow, **options: Any) -> namu.Artifact:
    """``namu.compile(wf, **options)``, its errors as one line.

    Raises:
        CliError: the workflow cannot be compiled.
    """
    try:
        return namu.compile(wf, **options)
    except WorkflowSyntaxError as exc:
        fail(first_line(exc))  # file:line:col: reason (the source excerpt follows in str())
    except CompileError as exc:
        fail(first_line(exc))  # file:line:col: reason
    except NamuError as exc:
        fail(f"cannot compile {wf.name}: {type(exc).__name__}: {first_line(exc)}")


def slot_bindings(specs: Sequence[str], wf: namu.Workflow) -> dict[str, Any]:
    """``--slot NAME=TASK`` pairs -> ``{NAME: Task}``. TASK is a ``@namu.task`` of the
    workflow's module, or ``FILE.py:TASK``.

    Raises:
        CliError: a pair is malformed, or TASK is not a task.
    """
    bindings: dict[str, Any] = {}
    for spec in specs:
        name, sep, target = spec.partition("=")
        name, target = name.strip(), target.strip()
        if not sep or not name or not target:
            fail(f"--slot expects NAME=TASK or NAME=FILE.py:TASK, got {spec!r}")
        path_text, attr = _split_target(target)
        if attr is not None:
            module = _import_file(existing_file(path_text))
            where = path_text
        else:
            module, attr, where = sys.modules[wf.fn.__module__], target, "the workflow's module"
        obj = getattr(module, attr, None)
        if not isinstance(obj, namu.Task):
            fail(f"--slot {name}: {attr!r} is not a @namu.task in {where}")
        bindings[name] = obj
    return bindings


def load_artifact(path_text: str) -> namu.Artifact:
    """``namu.load(path_text)``, its errors as one line.

    Raises:
        CliError: the file is missing, unreadable, or not a valid artifact.
    """
    existing_file(path_text)
    try:
        return namu.load(path_text)
    except ArtifactError as exc:
        fail(first_line(exc))


def target_artifact(spec: str) -> namu.Artifact:
    """The artifact of a ``.py`` workflow (compiled now) or a saved ``.onnx`` artifact:
    the one place that picks what to do with a target by its file suffix.

    Raises:
        CliError: the target cannot be loaded or compiled, or has another suffix.
    """
    path_text, _ = _split_target(spec)
    suffix = Path(path_text).suffix.lower()
    if suffix == ".py":
        return compile_workflow(load_workflow(spec))
    if suffix == ".onnx":
        return load_artifact(path_text)
    existing_file(path_text)
    fail(f"{path_text}: expected a workflow file (FILE.py[:WORKFLOW]) or an artifact (FILE.onnx)")
