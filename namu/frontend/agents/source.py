"""Read an agent file: YAML with every key's position, ``${VAR}`` interpolation,
``--override`` edits, and validation whose errors name the file, line and column.

::

    calc.yaml:5:3: unknown key `max_token` in `llm` (did you mean `max_tokens`?)
    calc.yaml:6:15: `limits.max_iterations`: Input should be a valid integer, got 'eight'

``${VAR}`` and ``${VAR:-default}`` in a string value read the environment when the file
is loaded (``$${`` is a literal ``${``). The prompts are checked as Jinja2 templates.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from namu.errors import AgentSpecError

if typing.TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

    from namu.frontend.agents.spec import AgentSpec
    from namu.runtime.tools.base import ToolOptions

__all__ = ["AgentSource", "ToolEntry", "load_agent", "parse_agent", "parse_override"]

Path_ = tuple[str | int, ...]
#: environment variables never interpolated: their values are secrets, and an agent file's
#: values end up in its artifact
_SECRET_SUFFIXES = ("_API_KEY", "_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
_ENV = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclasses.dataclass(frozen=True)
class ToolEntry:
    """One entry of an agent's ``tools`` list, validated.

    Attributes:
        kind: the tool kind (``"calculator"``, ``"mcp"``, ...).
        options: its validated options.
        index: its position in the list.
    """

    kind: str
    options: ToolOptions
    index: int

    @property
    def slot(self) -> str:
        """The role-slot name of this entry (``tool.0.calculator``)."""
        return f"tool.{self.index}.{self.kind}"


@dataclasses.dataclass(frozen=True)
class AgentSource:
    """An agent file, read and validated.

    Attributes:
        spec: the validated agent.
        tools: its tool entries, validated by their kinds' option models.
        path: the file ("" for an agent given as a mapping).
        base_dir: the directory relative paths in the file are read from.
        digest: ``sha256:`` digest of the validated content (the artifact's passport).
        variables: the template variables other than ``input``, in order of first use,
            each with its default or None (required).
        lines: ``"dotted.key"`` -> (line, column) of each key of the file, 1-based.
    """

    spec: AgentSpec
    tools: tuple[ToolEntry, ...]
    path: str
    base_dir: str
    digest: str
    variables: tuple[tuple[str, str | None], ...]
    lines: Mapping[str, tuple[int, int]] = dataclasses.field(default_factory=dict)

    def line_of(self, key: str) -> tuple[int, int]:
        """(line, column) of ``key`` (dotted), of its nearest ancestor in the file, or (1, 1)."""
        parts = key.split(".")
        for n in range(len(parts), 0, -1):
            found = self.lines.get(".".join(parts[:n]))
            if found is not None:
                return found
        return (1, 1)


class _Positions:
    """Where each key and value of the document is: path -> (line, col), 1-based."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.keys: dict[Path_, tuple[int, int]] = {}
        self.values: dict[Path_, tuple[int, int]] = {}
        self.overridden: set[Path_] = set()

    def where(self, loc: Path_, *, key: bool = False) -> str:
        """``file:line:col`` of the key (or value) at ``loc``, of its nearest located
        ancestor if it has none; ``--override PATH`` for an overridden value."""
        for n in range(len(loc), -1, -1):
            prefix = loc[:n]
            if prefix in self.overridden:
                return f"--override {_dotted(prefix)}"
            table = self.keys if key or prefix not in self.values else self.values
            pos = table.get(prefix) or self.keys.get(prefix)
            if pos is not None:
                return f"{self.path or '<agent>'}:{pos[0]}:{pos[1]}"
        return self.path or "<agent>"

    def line_col(self, loc: Path_) -> tuple[int, int]:
        for n in range(len(loc), -1, -1):
            pos = self.keys.get(loc[:n]) or self.values.get(loc[:n])
            if pos is not None:
                return pos
        return (0, 0)


def _dotted(loc: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_agent(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> AgentSource:
    """Read and validate the agent file at ``path``.

    Args:
        path: a YAML file.
        overrides: ``"dotted.key=value"`` edits applied before validation (``value`` is
            read as YAML: ``0.2`` is a float, ``true`` a bool).

    Raises:
        AgentSpecError: the file cannot be read, is not YAML, or is not a valid agent
            (every problem on its own line, each located).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentSpecError(f"{os.fspath(path)}: cannot read the agent file: {getattr(exc, 'strerror', None) or exc}", path=os.fspath(path)) from None
    return parse_agent(text, path=os.fspath(path), base_dir=str(file.resolve().parent), overrides=overrides)


def parse_agent(
    text: str | Mapping[str, Any], *, path: str = "", base_dir: str = ".", overrides: Sequence[str] = ()
) -> AgentSource:
    """Validate an agent given as YAML text or as a mapping (see :func:`load_agent`).

    Raises:
        AgentSpecError: as :func:`load_agent`.
    """
    positions = _Positions(path)
    data = _compose(text, positions) if isinstance(text, str) else dict(text)
    if not isinstance(data, dict):
        raise AgentSpecError(f"{positions.where(())}: an agent file is a mapping of keys (name, llm, ...)", path=path)
    for override in overrides:
        loc, value = parse_override(override)
        _apply(data, loc, value, override)
        positions.overridden.add(loc)
    spec = _validate(data, positions)
    tools = tuple(_tool_entry(entry, i, positions) for i, entry in enumerate(spec.tools))
    variables = _template_variables(spec, positions)
    digest = "sha256:" + hashlib.sha256(spec.model_dump_json().encode()).hexdigest()
    lines = {_dotted(loc): pos for loc, pos in positions.keys.items()}
    return AgentSource(spec, tools, path, base_dir, digest, variables, lines)


def parse_override(text: str) -> tuple[Path_, Any]:
    """``"llm.temperature=0.2"`` -> ``(("llm", "temperature"), 0.2)``; the value is read
    as YAML, a numeric key segment indexes a list.

    Raises:
        AgentSpecError: not ``KEY=VALUE``, or the value is not YAML.
    """
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise AgentSpecError(f"--override {text!r}: expected KEY=VALUE, e.g. llm.temperature=0.2")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise AgentSpecError(f"--override {text!r}: the value is not YAML: {_first_line(str(exc))}") from None
    loc = tuple(int(p) if p.isdigit() else p for p in key.strip().split("."))
    return loc, value


def _apply(data: dict[str, Any], loc: Path_, value: Any, text: str) -> None:
    target: Any = data
    for i, part in enumerate(loc[:-1]):
        nxt = loc[i + 1]
        if isinstance(target, dict):
            target = target.setdefault(part, [] if isinstance(nxt, int) else {})
        elif isinstance(target, list) and isinstance(part, int) and part < len(target):
            target = target[part]
        else:
            raise AgentSpecError(f"--override {text}: `{_dotted(loc[: i + 1])}` is not a key of the agent")
    last = loc[-1]
    if isinstance(target, dict):
        target[last] = value
    elif isinstance(target, list) and isinstance(last, int) and last < len(target):
        target[last] = value
    else:
        raise AgentSpecError(f"--override {text}: `{_dotted(loc)}` is not a key of the agent")


# -- YAML with positions --------------------------------------------------------------


def _compose(text: str, positions: _Positions) -> Any:
    try:
        import jinja2  # noqa: F401 - checked here, used to check the prompts
        import yaml
    except ModuleNotFoundError as exc:
        raise AgentSpecError(f"agent files need the package {exc.name!r}: pip install 'namu[agents]'") from None

    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{positions.path or '<agent>'}:{mark.line + 1}:{mark.column + 1}" if mark else positions.path
        raise AgentSpecError(
            f"{where}: not valid YAML: {exc.problem or exc.context}",
            path=positions.path,
            line=mark.line + 1 if mark else 0,
            col=mark.column + 1 if mark else 0,
        ) from None
    except yaml.YAMLError as exc:
        raise AgentSpecError(f"{positions.path or '<agent>'}: not valid YAML: {_first_line(str(exc))}", path=positions.path) from None
    if node is None:
        raise AgentSpecError(f"{positions.path or '<agent>'}: the agent file is empty", path=positions.path)
    return _value(node, (), positions, yaml.SafeLoader(""))


def _value(node: Any, loc: Path_, positions: _Positions, constructor: Any) -> Any:
    import yaml

    positions.values[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node)
            if not isinstance(key, str):
                key = str(key)
            child = (*loc, key)
            if key in out:
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                raise AgentSpecError(f"{positions.path or '<agent>'}:{line}:{col}: duplicate key `{_dotted(child)}`", path=positions.path, line=line, col=col)
            positions.keys[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _value(value_node, child, positions, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            positions.keys[(*loc, i)] = (item.start_mark.line + 1, item.start_mark.column + 1)
            items.append(_value(item, (*loc, i), positions, constructor))
        return items
    value = constructor.construct_object(node)
    return _interpolate(value, loc, positions) if isinstance(value, str) else value


def _interpolate(value: str, loc: Path_, positions: _Positions) -> str:
    if "$" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name.upper().endswith(_SECRET_SUFFIXES):
            raise AgentSpecError(
                f"{positions.where(loc)}: ${{{name}}} would write a secret into the compiled agent; pass it at run "
                "time instead: `api_key_env` names the LLM's key variable, `inherit_env` an MCP server's",
                path=positions.path,
                line=positions.line_col(loc)[0],
                col=positions.line_col(loc)[1],
            )
        found = os.environ.get(name)
        if found is not None and (found or default is None):
            return found
        if default is not None:
            return default
        raise AgentSpecError(
            f"{positions.where(loc)}: environment variable {name} is not set (write ${{{name}:-default}} for a default)",
            path=positions.path,
            line=positions.line_col(loc)[0],
            col=positions.line_col(loc)[1],
        )

    return _ENV.sub(replace, value)


# -- validation -----------------------------------------------------------------------


def _validate(data: dict[str, Any], positions: _Positions) -> AgentSpec:
    from pydantic import ValidationError

    from namu.frontend.agents.spec import AgentSpec

    try:
        return AgentSpec.model_validate(data)
    except ValidationError as exc:
        _raise_located(exc, (), AgentSpec, positions)


def _raise_located(exc: ValidationError, prefix: Path_, model: type[BaseModel], positions: _Positions) -> typing.NoReturn:
    problems: list[tuple[tuple[int, int], str]] = []
    for error in exc.errors(include_url=False):
        loc: Path_ = tuple(p for p in error["loc"] if not (isinstance(p, str) and _is_union_tag(p)))
        full = (*prefix, *loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            where = positions.where(full, key=True)
            valid = _fields_at(model, loc[:-1])
            hint = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            suggestion = f" (did you mean `{hint[0]}`?)" if hint else (f"; valid keys: {', '.join(sorted(valid))}" if valid else "")
            parent = f" in `{_dotted(full[:-1])}`" if full[:-1] else ""
            message = f"{where}: unknown key `{key}`{parent}{suggestion}"
        elif kind == "missing":
            where = positions.where(full[:-1], key=True)
            parent = f"`{_dotted(full[:-1])}`" if full[:-1] else "the agent"
            message = f"{where}: {parent} needs the key `{loc[-1]}`"
        else:
            where = positions.where(full)
            got = error.get("input")
            shown = "" if isinstance(got, (dict, list)) or kind.startswith("value_error") else f", got {got!r}"
            message = f"{where}: `{_dotted(full)}`: {_reason(error['msg'])}{shown}"
        problems.append((positions.line_col(full), message))
    problems.sort(key=lambda p: p[0])
    line, col = problems[0][0]
    raise AgentSpecError("\n".join(m for _, m in problems), path=positions.path, line=line, col=col) from None


def _reason(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def _is_union_tag(part: str) -> bool:
    """pydantic names the member of a union an error is about (``str``, ``dict[str,any]``)."""
    return part in {"str", "int", "float", "bool"} or "[" in part


def _fields_at(model: type[BaseModel], loc: Path_) -> list[str]:
    """The keys the model expects at ``loc`` (for "did you mean")."""
    from pydantic import BaseModel

    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = current.model_fields.get(part)
            if field is None:
                return []
            current = field.annotation
        elif isinstance(part, int):
            args = typing.get_args(_unwrap(current))
            current = args[0] if args else None
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``; ``list[X]`` stays."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation


def _tool_entry(entry: str | dict[str, Any], index: int, positions: _Positions) -> ToolEntry:
    from pydantic import ValidationError

    from namu.runtime.tools.base import tool_kind_names, tool_options_class

    loc: Path_ = ("tools", index)
    kinds = tool_kind_names()
    if isinstance(entry, str):
        kind, raw = entry, None
    elif len(entry) == 1:
        kind, raw = next(iter(entry.items()))
        loc = (*loc, kind)
    else:
        raise AgentSpecError(
            f"{positions.where(loc)}: a tool entry is a kind's name or `{{kind: options}}` with one key, got keys {', '.join(entry)}",
            path=positions.path,
            line=positions.line_col(loc)[0],
            col=positions.line_col(loc)[1],
        )
    if kind not in kinds:
        hint = difflib.get_close_matches(kind, kinds, n=1, cutoff=0.6)
        suggestion = f" (did you mean `{hint[0]}`?)" if hint else f"; known: {', '.join(kinds)}"
        raise AgentSpecError(
            f"{positions.where(loc, key=True)}: unknown tool `{kind}`{suggestion}",
            path=positions.path,
            line=positions.line_col(loc)[0],
            col=positions.line_col(loc)[1],
        )
    options_class = tool_options_class(kind)
    if raw is None:
        raw = {}
    elif not isinstance(raw, dict):
        if options_class.shorthand is None:
            raise AgentSpecError(f"{positions.where(loc)}: the options of tool `{kind}` are a mapping of keys", path=positions.path)
        raw = {options_class.shorthand: raw}
    try:
        options = options_class.model_validate(raw)
    except ValidationError as exc:
        _raise_located(exc, loc, options_class, positions)
    return ToolEntry(kind, options, index)


def _template_variables(spec: AgentSpec, positions: _Positions) -> tuple[tuple[str, str | None], ...]:
    from jinja2 import TemplateSyntaxError, meta
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment()
    names: list[str] = []
    for key in ("system_prompt", "prompt"):
        try:
            parsed = env.parse(getattr(spec, key))
        except TemplateSyntaxError as exc:
            line, col = positions.line_col((key,))
            raise AgentSpecError(
                f"{positions.where((key,))}: `{key}` is not a valid template (line {exc.lineno} of it): {exc.message}",
                path=positions.path,
                line=line,
                col=col,
            ) from None
        names += [n for n in sorted(meta.find_undeclared_variables(parsed)) if n not in names]
    return tuple((n, spec.variables.get(n)) for n in names if n != "input")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text

