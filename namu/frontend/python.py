"""The Python frontend: ``@namu.workflow`` functions, and the ``.py`` files defining them.

Registered in :mod:`namu.frontend.registry` for :class:`~namu.frontend.workflow.Workflow`
objects and ``.py`` files; the lowering itself is :mod:`namu.frontend.lower`.
"""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

from namu.errors import NamuError, SourceError, WorkflowSyntaxError, first_line
from namu.frontend.calls import code_names
from namu.frontend.context import CompileContext
from namu.frontend.lower import lower_workflow
from namu.frontend.registry import Lowered
from namu.frontend.workflow import Workflow

__all__ = ["FRONTEND", "PythonFrontend", "entry_workflows", "import_file", "module_workflows"]


class PythonFrontend:
    """Lowers ``@namu.workflow`` functions; loads them from ``.py`` files by importing them."""

    def load(self, path: Path, name: str | None) -> Workflow:
        """The workflow ``name`` defined in the file at ``path``; with no name, its only
        workflow, or the only one no other workflow of the file calls.

        Raises:
            SourceError: importing the file failed, or it defines no such workflow, or
                several and none is named (the message lists them).
            WorkflowSyntaxError: a workflow compiled while the file was imported cannot be
                lowered.
        """
        module = import_file(path)
        workflows = module_workflows(module)
        names = sorted({wf.name for wf in workflows.values()})
        if name is not None:
            if name in workflows:
                return workflows[name]
            if not names:
                raise SourceError(f"no workflow named {name!r}: {path} defines no @namu.workflow")
            raise SourceError(f"no workflow named {name!r} in {path}; available: {', '.join(names)}")
        if not workflows:
            raise SourceError(f"{path} defines no @namu.workflow")
        if len(names) == 1:
            return next(iter(workflows.values()))
        entries = entry_workflows(module, workflows)
        if len(entries) == 1:
            return entries[0]
        raise SourceError(f"{path} defines several workflows ({', '.join(names)}); choose one with {path}:WORKFLOW")

    def lower(self, source: Workflow) -> Lowered:
        """Lower the workflow ``source`` and the sub-workflows it calls.

        Raises:
            WorkflowSyntaxError: the body uses a construct namu cannot lower.
            TaskDefinitionError: the workflow's source cannot be read.
        """
        ctx = CompileContext()
        graph, signature, digest = lower_workflow(source, ctx)
        return dataclasses.replace(ctx.lowered(graph, signature, digest), placement=getattr(source, "placement", None))


#: The registered instance.
FRONTEND = PythonFrontend()


def import_file(path: Path) -> types.ModuleType:
    """Import the Python file at ``path`` as ``python FILE.py`` would (its directory
    first on ``sys.path``), for its workflows and tasks.

    Raises:
        SourceError: the file has a Python syntax error (at its line), or importing it
            raised (the exception chained; the message has its first line).
        WorkflowSyntaxError: a workflow compiled at import time cannot be lowered.
    """
    from namu.runtime.user_code import import_path

    try:
        return import_path(path)
    except SyntaxError as exc:
        where = f"{exc.filename or path}:{exc.lineno or 0}:{exc.offset or 0}"
        raise SourceError(f"{where}: {type(exc).__name__}: {exc.msg}") from exc
    except WorkflowSyntaxError:
        raise
    except NamuError as exc:
        raise SourceError(f"importing {path}: {type(exc).__name__}: {first_line(exc)}") from exc
    except (Exception, SystemExit) as exc:  # the user's module failed
        raise SourceError(f"importing {path} raised {type(exc).__name__}: {first_line(exc)}") from exc


def module_workflows(module: types.ModuleType) -> dict[str, Workflow]:
    """The workflows defined in ``module`` (not imported into it), by name and by the
    attribute holding each."""
    found: dict[str, Workflow] = {}
    for attr, obj in vars(module).items():
        if isinstance(obj, Workflow) and getattr(obj.fn, "__module__", None) == module.__name__:
            if obj not in found.values():
                found[obj.name] = obj
            if attr != obj.name:
                found.setdefault(attr, obj)
    return found


def entry_workflows(module: types.ModuleType, workflows: dict[str, Workflow]) -> list[Workflow]:
    """The workflows of ``workflows`` that no other workflow of ``module`` calls (its entry points)."""
    unique = list(dict.fromkeys(workflows.values()))
    called: set[int] = set()
    namespace = vars(module)
    for wf in unique:
        for name in code_names(wf.fn.__code__):
            obj = namespace.get(name)
            if isinstance(obj, Workflow) and obj is not wf:
                called.add(id(obj))
    return [wf for wf in unique if id(wf) not in called]
