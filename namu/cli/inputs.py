"""A workflow's inputs from the command line: ``-i NAME=VALUE``, ``NAME=@FILE`` and
``--inputs FILE|-`` (docs/cli.md: inputs)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from namu.cli.errors import fail, first_line
from namu.cli.targets import existing_file
from namu.errors import InputError

__all__ = ["format_param", "format_params", "parse_inputs"]


def parse_inputs(pairs: Sequence[str], inputs_file: str | None, signature: Any) -> dict[str, Any]:
    """The workflow's keyword arguments from ``--inputs FILE`` and ``-i NAME=VALUE`` pairs
    (which override the file's), each converted to its parameter's annotation.

    ``VALUE`` is text: JSON when it parses as JSON, else a string; for a ``str``
    parameter, the text itself unless it is a JSON string. ``@FILE`` (``@-``: stdin) is the
    JSON document in FILE. Then ``from_json`` converts to the annotation (``3`` -> ``3.0``
    for a ``float``, an array -> a tuple for a ``tuple``) or refuses.

    Args:
        pairs: the ``-i`` options, in order.
        inputs_file: the ``--inputs`` file, ``"-"`` for stdin, or None.
        signature: the workflow's :class:`~namu.ir.metadata.Signature`.

    Raises:
        CliError: a pair is malformed, a name unknown or given twice, a file unreadable
            or not JSON, or a value does not fit its parameter.
    """
    from namu.ir.types import parse_type
    from namu.runtime.inputs import from_json

    types = {p.name: parse_type(p.type) for p in signature.params}
    stdin = _StdinOnce()
    values: dict[str, tuple[Any, str]] = {}  # name -> (JSON value, where it came from)
    if inputs_file is not None:
        source = _source_name(inputs_file)
        document = _load_json(stdin.read() if inputs_file == "-" else _read_file(inputs_file), f"--inputs {source}")
        if not isinstance(document, dict):
            fail(f"--inputs {source}: expected a JSON object mapping input names to values, got {_json_kind(document)}")
        for name, value in document.items():
            _known_input(name, signature, f" (in --inputs {source})")
            values[name] = (value, f" (from {source})")
    given: set[str] = set()
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            fail(f"--input expects NAME=VALUE, got {pair!r}")
        _known_input(name, signature)
        if name in given:
            fail(f"input {name!r} given twice")
        given.add(name)
        if raw.startswith("@"):
            source = _source_name(raw[1:])
            text = stdin.read() if raw == "@-" else _read_file(raw[1:])
            values[name] = (_load_json(text, f"input {name!r} from {source}"), f" (from {source})")
        else:
            values[name] = (_text_value(raw, types[name].kind == "str"), "")
    try:
        return {name: from_json(v, types[name], f"{signature.name}(): parameter `{name}`{where}") for name, (v, where) in values.items()}
    except InputError as exc:
        fail(first_line(exc))


def _text_value(raw: str, is_str: bool) -> Any:
    """The value of ``-i NAME=TEXT``: JSON when TEXT is JSON, else TEXT itself; for a
    ``str`` parameter TEXT itself unless it is a JSON string (``name=3`` is ``"3"``)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return raw if is_str and not isinstance(value, str) else value


def _known_input(name: str, signature: Any, where: str = "") -> None:
    if name not in {p.name for p in signature.params}:
        takes = format_params(signature.params) or "no inputs"
        fail(f"unknown input {name!r}{where} for workflow {signature.name}; it takes: {takes}")


def _source_name(path: str) -> str:
    return "stdin" if path == "-" else path


class _StdinOnce:
    """Standard input, readable by one ``@-`` or ``--inputs -`` only."""

    def __init__(self) -> None:
        self.used = False

    def read(self) -> str:
        if self.used:
            fail("standard input can be read once: give `@-` or `--inputs -` to one input only")
        self.used = True
        if sys.stdin is None:  # file descriptor 0 closed
            fail("cannot read standard input: it is closed")
        try:
            return sys.stdin.read()
        except UnicodeDecodeError:
            fail("cannot read standard input: not UTF-8 text")
        except (OSError, ValueError) as exc:  # unreadable, or closed
            fail(f"cannot read standard input: {exc}")


def _read_file(path: str) -> str:
    """The text of an input file (``@FILE``, ``--inputs FILE``); one-line errors."""
    p = existing_file(path)
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        fail(f"cannot read {path}: not UTF-8 text")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")


def _load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{what}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
    except RecursionError:
        fail(f"{what}: JSON nested too deeply")


def _json_kind(value: Any) -> str:
    """The JSON name of a decoded value's kind (for messages)."""
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def format_param(p: Any) -> str:
    """``name: type = default`` of a signature parameter (a default as JSON); ``*name`` and
    ``**name`` for ``*args`` and ``**kwargs``."""
    if p.kind in ("var_positional", "var_keyword"):
        return ("*" if p.kind == "var_positional" else "**") + p.name
    text = f"{p.name}: {p.type}"
    if p.has_default:
        text += f" = {json.dumps(p.default)}"
    return text


def format_params(params: list[Any]) -> str:
    """A signature's parameter list as Python writes it, with ``/`` after the
    positional-only ones and ``*`` before keyword-only ones that follow no ``*args``."""
    parts: list[str] = []
    for index, p in enumerate(params):
        before = params[index - 1].kind if index else None
        if before == "positional_only" and p.kind != "positional_only":
            parts.append("/")
        if p.kind == "keyword_only" and before not in ("keyword_only", "var_positional"):
            parts.append("*")
        parts.append(format_param(p))
    if params and params[-1].kind == "positional_only":
        parts.append("/")
    return ", ".join(parts)
