"""Frontends by registration: what turns a source into namu's IR, found by type or suffix.

A *source* is what a user hands to ``namu.compile`` or names on the command line: a
Python object (a ``@namu.workflow``) or a file (``flow.py``, ``flow.py:train``). A
*frontend* lowers sources of some kinds to an IR model before any pass runs (a
:class:`Lowered`). Each frontend is one registration: its name, the file suffixes and
the Python classes it claims, and the frontend object or where to import it from::

    register_frontend("chain", "my_package.chain:FRONTEND", suffixes=[".chain"], types=["my_package.chain.Chain"])

Naming the object and the classes by import path keeps registration free: nothing is
imported until a source of that kind is compiled (so ``import namu`` does not load the
Python ``ast`` lowering either). A path of a compiled artifact (``.onnx``) is the other
kind of target: :func:`source_kind` tells the two apart in one call, for the CLI.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from namu.errors import SourceError, TaskDefinitionError
from namu.frontend.reads import NameReads

if TYPE_CHECKING:
    import onnx_ir as ir

    from namu.frontend.task import Task
    from namu.ir.metadata import Signature

__all__ = [
    "ARTIFACT_SUFFIXES",
    "Frontend",
    "FrontendEntry",
    "Lowered",
    "existing_file",
    "frontend_for",
    "frontends",
    "load_source",
    "lower",
    "register_frontend",
    "source_kind",
    "split_target",
    "unregister_frontend",
]

#: Suffixes of compiled artifacts, which ``namu.load`` reads (no frontend involved).
ARTIFACT_SUFFIXES = (".onnx",)


@dataclasses.dataclass(frozen=True)
class Lowered:
    """A source lowered to IR, before any pass runs: what a frontend gives the compiler.

    Attributes:
        model: the main graph and the sub-workflow functions, with the task table, the
            signature and a provisional passport (name and digest, no passes yet) in its
            metadata (built by :meth:`CompileContext.lowered
            <namu.frontend.context.CompileContext.lowered>`).
        tasks: the live task objects called, by task key (the passes read their options;
            the artifact runs them without importing).
        signature: the workflow's parameters and return shape (also in the metadata).
        digest: ``sha256:`` digest of the source lowered, for the passport.
        reads: the names the lowering resolved in the source's namespaces; while
            ``reads.current()`` holds, lowering again gives the same model (empty for a
            source that reads no Python names).
        slots: the role-slot bindings the source brings (an agent binds its LLM and
            tool slots to namu's tasks); the compile's own ``slots`` override them.
        placement: the default placement the source asks for
            (``@namu.workflow(placement=...)``), used when the compile sets none.
    """

    model: ir.Model
    tasks: dict[str, Task]
    signature: Signature
    digest: str
    reads: NameReads = dataclasses.field(default_factory=NameReads)
    slots: dict[str, Any] = dataclasses.field(default_factory=dict)
    placement: str | None = None

    @property
    def name(self) -> str:
        """The workflow's name (the signature's), for the passport and file names."""
        return self.signature.name


class Frontend(Protocol):
    """What a frontend does; what it claims is said when it is registered
    (:func:`register_frontend`)."""

    def load(self, path: Path, name: str | None) -> Any:
        """The source held by the file at ``path``: an object of a class this frontend
        claims, so that :meth:`lower` takes it.

        Args:
            path: an existing file with one of the frontend's suffixes.
            name: which of the file's workflows (``FILE.py:NAME``), or None for its only
                one (or its only entry point).

        Raises:
            SourceError: the file cannot be read or holds no such workflow.
            WorkflowSyntaxError: the file's own syntax is wrong, at its line.
        """
        ...

    def lower(self, source: Any) -> Lowered:
        """Lower ``source`` (an object of a class this frontend claims) to IR.

        Raises:
            WorkflowSyntaxError: the source uses a construct namu cannot lower, at its line.
            TaskDefinitionError: the source is malformed in a way no line shows.
        """
        ...


@dataclasses.dataclass(frozen=True)
class FrontendEntry:
    """One registered frontend.

    Attributes:
        name: a short name (``"python"``), unique, used in messages.
        suffixes: the file suffixes it reads, lower case with the dot (``".py"``).
        types: the classes of the objects it lowers, as ``"module.QualName"`` (an object
            of a subclass is claimed too).
        target: the frontend, or ``"module:attribute"`` where it is, imported on first use.
        named: a file may hold several sources, picked by ``FILE.ext:NAME``; False: a
            file is one source (an agent file).
    """

    name: str
    suffixes: tuple[str, ...]
    types: tuple[str, ...]
    target: Frontend | str
    named: bool = True

    def frontend(self) -> Frontend:
        """The frontend object, imported now if it was registered by path."""
        if not isinstance(self.target, str):
            return self.target
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)  # type: ignore[no-any-return]


_ENTRIES: dict[str, FrontendEntry] = {}
_BY_SUFFIX: dict[str, FrontendEntry] = {}
_BY_TYPE: dict[str, FrontendEntry] = {}


def register_frontend(
    name: str,
    frontend: Frontend | str,
    *,
    suffixes: Sequence[str] = (),
    types: Sequence[type | str] = (),
    named: bool = True,
) -> FrontendEntry:
    """Register a frontend for the file suffixes and object classes it claims.

    Args:
        name: the frontend's name, unique.
        frontend: the frontend, or ``"module:attribute"`` naming it (imported the first
            time a source of its kind is compiled).
        suffixes: file suffixes with the dot (``".chain"``); matched without case.
        types: the classes of the source objects it lowers, or their ``"module.QualName"``
            (which does not import the module).
        named: its files may hold several sources, picked by ``FILE.ext:NAME``.

    Returns:
        The registration.

    Raises:
        ValueError: the name, a suffix or a class is already claimed, a suffix has no
            leading dot or is an artifact's.
    """
    entry = FrontendEntry(
        name=name,
        suffixes=tuple(s.lower() for s in suffixes),
        types=tuple(t if isinstance(t, str) else _type_name(t) for t in types),
        target=frontend,
        named=named,
    )
    if name in _ENTRIES:
        raise ValueError(f"a frontend named {name!r} is already registered")
    for suffix in entry.suffixes:
        if not suffix.startswith(".") or suffix in ARTIFACT_SUFFIXES:
            raise ValueError(f"frontend {name!r}: {suffix!r} cannot be a source suffix")
        if suffix in _BY_SUFFIX:
            raise ValueError(f"frontend {name!r}: {suffix} files are read by frontend {_BY_SUFFIX[suffix].name!r}")
    for type_name in entry.types:
        if type_name in _BY_TYPE:
            raise ValueError(f"frontend {name!r}: {type_name} is lowered by frontend {_BY_TYPE[type_name].name!r}")
    _ENTRIES[name] = entry
    _BY_SUFFIX.update(dict.fromkeys(entry.suffixes, entry))
    _BY_TYPE.update(dict.fromkeys(entry.types, entry))
    return entry


def unregister_frontend(name: str) -> None:
    """Remove the frontend registered as ``name``.

    Raises:
        KeyError: no frontend has that name.
    """
    entry = _ENTRIES.pop(name)
    for suffix in entry.suffixes:
        del _BY_SUFFIX[suffix]
    for type_name in entry.types:
        del _BY_TYPE[type_name]


def frontends() -> list[FrontendEntry]:
    """The registered frontends, in registration order."""
    return list(_ENTRIES.values())


def frontend_for(source: Any) -> Frontend:
    """The frontend that lowers ``source``: the one claiming its class or a base class.

    Raises:
        TaskDefinitionError: no frontend claims it (the message lists what is accepted).
    """
    for cls in type(source).__mro__:
        entry = _BY_TYPE.get(_type_name(cls))
        if entry is not None:
            return entry.frontend()
    accepted = ", ".join(f"a {t} ({e.name} frontend)" for t, e in _BY_TYPE.items())
    raise TaskDefinitionError(
        f"namu.compile needs a workflow source, got {source!r}: it takes {accepted}, "
        f"or the path of a source file ({_source_forms()})"
    )


def split_target(target: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """``"FILE.ext:NAME"`` -> ``(Path("FILE.ext"), "NAME")`` when a frontend reads
    ``.ext`` files; any other target -> ``(Path(target), None)``.

    Raises:
        SourceError: ``NAME`` is not an identifier.
    """
    text = os.fspath(target)
    path, sep, name = text.rpartition(":")
    entry = _BY_SUFFIX.get(Path(path).suffix.lower()) if sep else None
    if entry is not None and entry.named:
        if not name.isidentifier():
            raise SourceError(f"invalid workflow name {name!r} in {text!r} (expected {path}:WORKFLOW)")
        return Path(path), name
    return Path(text), None


def source_kind(path: str | os.PathLike[str]) -> Literal["artifact", "source"]:
    """Whether the file at ``path`` is a compiled artifact (for ``namu.load``) or a source
    a frontend reads (for :func:`load_source` and ``namu.compile``), by its suffix; a
    ``FILE.ext:NAME`` target is a source. The file is not opened.

    Raises:
        SourceError: no frontend reads files with its suffix and it is no artifact
            (the message lists the accepted forms).
    """
    suffix = split_target(path)[0].suffix.lower()
    if suffix in ARTIFACT_SUFFIXES:
        return "artifact"
    if suffix in _BY_SUFFIX:
        return "source"
    raise SourceError(f"{os.fspath(path)}: expected a workflow file ({_source_forms()}) or an artifact (FILE.onnx)")


def load_source(target: str | os.PathLike[str]) -> Any:
    """The source object in the file ``target`` names (``FILE.ext`` or ``FILE.ext:NAME``),
    loaded by the frontend that reads its suffix; :func:`lower` or ``namu.compile`` take it.

    Raises:
        SourceError: the file is missing or not a file, is an artifact, has a suffix no
            frontend reads, or does not hold the workflow named (or holds several and
            none is named).
        WorkflowSyntaxError: the file's own syntax is wrong, at its line.
    """
    path, name = split_target(target)
    entry = _BY_SUFFIX.get(path.suffix.lower())
    if entry is None:
        kind = "a compiled artifact (load it with namu.load)" if path.suffix.lower() in ARTIFACT_SUFFIXES else "not a workflow file"
        raise SourceError(f"{path} is {kind}; expected {_source_forms()}")
    return entry.frontend().load(existing_file(path), name)


def existing_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a ``Path``, once it is known to name a file (messages show ``path`` as given).

    Raises:
        SourceError: ``path`` is missing, not a file, or cannot be reached.
    """
    file = Path(path)
    try:
        if not file.exists():
            raise SourceError(f"no such file: {os.fspath(path)}")
        if not file.is_file():
            raise SourceError(f"not a file: {os.fspath(path)}")
    except OSError as exc:  # a directory on the way cannot be searched
        raise SourceError(f"cannot access {os.fspath(path)}: {exc.strerror or exc}") from None
    return file


def lower(source: Any) -> Lowered:
    """Lower ``source`` with its frontend: an object a frontend claims, or the path of a
    source file (``str`` or ``os.PathLike``, ``FILE.ext[:NAME]``) loaded first.

    Raises:
        TaskDefinitionError: no frontend claims the object.
        SourceError: as :func:`load_source`, for a path.
        WorkflowSyntaxError: the source uses a construct namu cannot lower, at its line.
    """
    if isinstance(source, (str, os.PathLike)):
        source = load_source(source)
    return frontend_for(source).lower(source)


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _source_forms() -> str:
    forms = [f"FILE{suffix}[:WORKFLOW]" if entry.named else f"FILE{suffix}" for suffix, entry in _BY_SUFFIX.items()]
    return ", ".join(forms) or "no frontend reads files"


register_frontend(
    "python",
    "namu.frontend.python:FRONTEND",
    suffixes=[".py"],
    types=["namu.frontend.workflow.Workflow"],
)
register_frontend(
    "agent",
    "namu.frontend.agents.agent:FRONTEND",
    suffixes=[".yaml", ".yml"],
    types=["namu.frontend.agents.agent.Agent"],
    named=False,
)
