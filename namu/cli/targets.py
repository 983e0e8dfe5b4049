"""What a command works on: a workflow source (``FILE.py[:WORKFLOW]``, or a file of any
suffix a registered frontend reads), a saved artifact (``ART.onnx``), and the tasks
``--slot`` names. Which is which is the frontend registry's call
(:mod:`namu.frontend.registry`); this module turns its errors into ``error:`` lines."""

from __future__ import annotations

import contextlib
import inspect
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import namu
from namu.cli.errors import fail, first_line
from namu.errors import (
    AgentSpecError,
    ArtifactError,
    CompileError,
    NamuError,
    SourceError,
    WorkflowSyntaxError,
)
from namu.frontend import registry
from namu.frontend.registry import ARTIFACT_SUFFIXES, source_kind, split_target

__all__ = [
    "compile_workflow",
    "load_agent_file",
    "existing_file",
    "load_artifact",
    "load_source",
    "slot_bindings",
    "source_name",
    "target_artifact",
]


@contextlib.contextmanager
def _one_line() -> Iterator[None]:
    """Report a frontend's ``SourceError`` or ``WorkflowSyntaxError`` as one ``error:`` line."""
    try:
        yield
    except (SourceError, WorkflowSyntaxError) as exc:
        fail(first_line(exc))  # file:line:col: reason, for a syntax error
    except AgentSpecError as exc:
        from namu.cli.agents import spec_error_line

        fail(spec_error_line(exc))  # file:line:col of the key at fault


def existing_file(path: str) -> Path:
    """``path`` as a ``Path``, once it is known to name a file.

    Raises:
        CliError: ``path`` is missing, not a file, or cannot be reached.
    """
    with _one_line():
        return registry.existing_file(path)


def load_source(spec: str) -> Any:
    """The workflow source ``FILE.ext[:WORKFLOW]`` names, loaded by the frontend registered
    for ``.ext`` (for ``.py``: the file imported and the workflow picked, docs/cli.md:
    naming a workflow).

    Raises:
        CliError: the file is missing, is an artifact, has a suffix no frontend reads,
            fails to load, or names no single workflow.
    """
    with _one_line():
        path = registry.existing_file(split_target(spec)[0])  # "no such file" before the suffix
        if path.suffix.lower() in ARTIFACT_SUFFIXES:
            fail(f"{spec} is an artifact, compiled already: run it with `namu run`, or show it with `namu inspect`")
        return registry.load_source(spec)


def source_name(source: Any, spec: str) -> str:
    """The name of the workflow ``source`` (loaded from ``spec``), for the default output
    file names and messages: its ``name`` (a ``@namu.workflow``'s, or what its frontend
    gives), else the stem of its file."""
    name = getattr(source, "name", None)
    return name if isinstance(name, str) and name else split_target(spec)[0].stem


def compile_workflow(source: Any, name: str, **options: Any) -> namu.Artifact:
    """``namu.compile(source, **options)``, its errors as one line (``name``: the
    workflow's, from :func:`source_name`).

    Raises:
        CliError: the workflow cannot be compiled.
    """
    try:
        return namu.compile(source, **options)
    except AgentSpecError as exc:
        from namu.cli.agents import spec_error_line

        fail(spec_error_line(exc))
    except WorkflowSyntaxError as exc:
        fail(first_line(exc))  # file:line:col: reason (the source excerpt follows in str())
    except CompileError as exc:
        fail(first_line(exc))  # file:line:col: reason
    except NamuError as exc:
        fail(f"cannot compile {name}: {type(exc).__name__}: {first_line(exc)}")


def slot_bindings(specs: Sequence[str], source: Any) -> dict[str, Any]:
    """``--slot NAME=TASK`` pairs -> ``{NAME: Task}``. TASK is a ``@namu.task`` (or, for a
    role slot, a class) of the workflow's module (``source.fn``'s, for a
    ``@namu.workflow``), ``FILE.py:TASK`` or ``package.module:Class``.

    Raises:
        CliError: a pair is malformed, TASK is neither a task nor a class, cannot be
            imported, or is a bare name and the workflow has no Python module.
    """
    bindings: dict[str, Any] = {}
    for spec in specs:
        name, sep, target = spec.partition("=")
        name, target = name.strip(), target.strip()
        if not sep or not name or not target:
            fail(f"--slot expects NAME=TASK or NAME=FILE.py:TASK, got {spec!r}")
        with _one_line():
            path, attr = split_target(target)
            dotted, _, member = target.rpartition(":")
            if attr is not None and path.suffix.lower() == ".py":
                from namu.frontend.python import import_file

                module, where = import_file(registry.existing_file(path)), str(path)
            elif _MODULE.match(dotted) and member and not dotted.endswith(".py"):
                import importlib

                try:
                    module, attr, where = importlib.import_module(dotted), member, dotted
                except ImportError as exc:
                    fail(f"--slot {name}: cannot import {dotted}: {exc}")
            else:
                module, attr, where = _workflow_module(source), target, "the workflow's module"
                if module is None:
                    fail(f"--slot {name}: the workflow has no Python module to find {target!r} in; use {name}=FILE.py:{target}")
        obj = getattr(module, attr, None)
        if not isinstance(obj, namu.Task) and not inspect.isclass(obj):
            fail(f"--slot {name}: {attr!r} is not a @namu.task (or, for a role slot, a class) in {where}")
        bindings[name] = obj
    return bindings


#: a dotted module name (``--slot aggregator=namu.federated.aggregators:Median``)
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _workflow_module(source: Any) -> Any:
    """The module defining ``source``'s function (a ``@namu.workflow``'s), or None."""
    return sys.modules.get(getattr(getattr(source, "fn", None), "__module__", None) or "")


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


def load_agent_file(spec: str, overrides: Sequence[str] = ()) -> Any:
    """The agent of the file ``spec`` with ``--override`` edits applied (not compiled).

    Raises:
        CliError: ``spec`` is not an agent file, is missing, or is invalid.
    """
    if split_target(spec)[0].suffix.lower() not in (".yaml", ".yml"):
        fail("--override edits an agent file (AGENT.yaml)")
    with _one_line():
        return namu.agent(existing_file(spec), overrides=overrides)


def target_artifact(spec: str, overrides: Sequence[str] = ()) -> namu.Artifact:
    """The artifact of a workflow source (compiled now) or of a saved ``.onnx`` artifact;
    the frontend registry tells which by the file's suffix.

    Args:
        spec: the target.
        overrides: ``--override KEY=VALUE`` edits of an agent file.

    Raises:
        CliError: the target cannot be loaded or compiled, no frontend reads its suffix,
            or overrides are given for something other than an agent file.
    """
    with _one_line():
        registry.existing_file(split_target(spec)[0])  # "no such file" before the suffix
        if source_kind(spec) == "artifact":
            if overrides:
                fail("--override edits an agent file (AGENT.yaml), not a compiled artifact")
            return load_artifact(spec)
    if overrides:
        source = load_agent_file(spec, overrides)
        return compile_workflow(source, source.name)
    source = load_source(spec)
    return compile_workflow(source, source_name(source, spec))
