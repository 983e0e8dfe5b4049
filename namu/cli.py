"""The ``namu`` command line: compile, run and inspect workflows.

::

    namu compile examples/collatz.py -o collatz.onnx
    namu run examples/collatz.py --input limit=5000
    namu run collatz.onnx --json
    namu inspect collatz.onnx

Exit codes: 0 success; 1 the workflow ran and failed (a task raised, or the runtime
failed); 2 the command could not start: bad usage, a missing or unreadable file, an
unknown workflow, a workflow namu cannot compile, bad inputs, a stale artifact;
130 interrupted. Every error is exactly one line on stderr starting with ``error:``.
See ``docs/cli.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import sys
import traceback
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

import namu
from namu.errors import (
    ArtifactError,
    CacheError,
    CheckpointError,
    CompileError,
    InputError,
    NamuError,
    OutputPathError,
    RunCancelledError,
    TaskError,
    WorkflowSyntaxError,
)

__all__ = ["main", "cli"]

#: exit codes (documented in docs/cli.md).
EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: set this environment variable to see the traceback of an internal error.
TRACEBACK_ENV = "NAMU_TRACEBACK"


class CliError(Exception):
    """An error reported as one ``error: ...`` line with an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    raise CliError(message, code)


def _first_line(text: object, *, mark_more: bool = False) -> str:
    """The first non-blank line of ``text`` (error messages must stay on one line).

    With ``mark_more``, `` ...`` shows that lines were dropped (a task's own message).
    """
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    if not lines:
        return type(text).__name__ if isinstance(text, BaseException) else "unknown error"
    return lines[0] + (" ..." if mark_more and len(lines) > 1 else "")


def _joined(text: object) -> str:
    """All lines of ``text`` joined into one (for click's short usage messages)."""
    return " ".join(str(text).split())


# ---------------------------------------------------------------------- targets
def _split_target(spec: str) -> tuple[str, str | None]:
    """``FILE.py:NAME`` -> ``("FILE.py", "NAME")``; anything else -> ``(spec, None)``."""
    path, sep, name = spec.rpartition(":")
    if sep and path.lower().endswith(".py"):
        if not name.isidentifier():
            _fail(f"invalid workflow name {name!r} in {spec!r} (expected FILE.py:WORKFLOW)")
        return path, name
    return spec, None


def _existing_file(path: str) -> Path:
    p = Path(path)
    try:
        if not p.exists():
            _fail(f"no such file: {path}")
        if not p.is_file():
            _fail(f"not a file: {path}")
    except OSError as exc:  # a directory on the way cannot be searched
        _fail(f"cannot access {path}: {exc.strerror or exc}")
    return p


def _import_file(path: Path) -> types.ModuleType:
    from namu.runtime.modules import import_path

    try:
        return import_path(path)
    except SyntaxError as exc:
        where = f"{exc.filename or path}:{exc.lineno or 0}:{exc.offset or 0}"
        _fail(f"{where}: {type(exc).__name__}: {exc.msg}")
    except WorkflowSyntaxError as exc:
        _fail(_first_line(exc))
    except NamuError as exc:
        _fail(f"importing {path}: {type(exc).__name__}: {_first_line(exc)}")
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's module failed
        _fail(f"importing {path} raised {type(exc).__name__}: {_first_line(exc)}")


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


def _load_workflow(spec: str) -> namu.Workflow:
    """Import ``FILE.py[:WORKFLOW]`` and pick the workflow."""
    path_text, name = _split_target(spec)
    path = _existing_file(path_text)
    if path.suffix.lower() != ".py":
        _fail(f"{path_text} is not a Python file (expected FILE.py or FILE.py:WORKFLOW)")
    module = _import_file(path)
    workflows = _module_workflows(module)
    names = sorted({wf.name for wf in workflows.values()})
    if name is not None:
        if name in workflows:
            return workflows[name]
        if not names:
            _fail(f"no workflow named {name!r}: {path_text} defines no @namu.workflow")
        _fail(f"no workflow named {name!r} in {path_text}; available: {', '.join(names)}")
    if not workflows:
        _fail(f"{path_text} defines no @namu.workflow")
    if len(names) == 1:
        return next(iter(workflows.values()))
    entries = _entry_workflows(module, workflows)
    if len(entries) == 1:
        return entries[0]
    _fail(
        f"{path_text} defines several workflows ({', '.join(names)}); "
        f"choose one with {path_text}:WORKFLOW"
    )


def _compile(wf: namu.Workflow, **options: Any) -> namu.Artifact:
    try:
        return namu.compile(wf, **options)
    except WorkflowSyntaxError as exc:
        _fail(_first_line(exc))  # file:line:col: reason (the source excerpt follows in str())
    except CompileError as exc:
        _fail(_first_line(exc))  # file:line:col: reason
    except NamuError as exc:
        _fail(f"cannot compile {wf.name}: {type(exc).__name__}: {_first_line(exc)}")


def _slot_bindings(specs: Sequence[str], wf: namu.Workflow) -> dict[str, Any]:
    """``--slot NAME=TASK`` pairs -> ``{NAME: Task}``. TASK is a ``@namu.task`` of the
    workflow's module, or ``FILE.py:TASK``."""
    bindings: dict[str, Any] = {}
    for spec in specs:
        name, sep, target = spec.partition("=")
        name, target = name.strip(), target.strip()
        if not sep or not name or not target:
            _fail(f"--slot expects NAME=TASK or NAME=FILE.py:TASK, got {spec!r}")
        path_text, attr = _split_target(target)
        if attr is not None:
            module = _import_file(_existing_file(path_text))
            where = path_text
        else:
            module, attr, where = sys.modules[wf.fn.__module__], target, "the workflow's module"
        obj = getattr(module, attr, None)
        if not isinstance(obj, namu.Task):
            _fail(f"--slot {name}: {attr!r} is not a @namu.task in {where}")
        bindings[name] = obj
    return bindings


def _load_artifact(path_text: str) -> namu.Artifact:
    _existing_file(path_text)
    try:
        return namu.load(path_text)
    except ArtifactError as exc:
        _fail(_first_line(exc))


def _target_artifact(spec: str) -> namu.Artifact:
    """A ``.py`` workflow (compiled now) or a saved ``.onnx`` artifact."""
    path_text, _ = _split_target(spec)
    suffix = Path(path_text).suffix.lower()
    if suffix == ".py":
        return _compile(_load_workflow(spec))
    if suffix == ".onnx":
        return _load_artifact(path_text)
    _existing_file(path_text)
    _fail(f"{path_text}: expected a workflow file (FILE.py[:WORKFLOW]) or an artifact (FILE.onnx)")


# ---------------------------------------------------------------------- inputs and output
def _parse_inputs(pairs: Sequence[str], inputs_file: str | None, signature: Any) -> dict[str, Any]:
    """The workflow's keyword arguments from ``--inputs FILE`` and ``-i NAME=VALUE`` pairs
    (which override the file's), each converted to its parameter's annotation.

    ``VALUE`` is text: JSON when it parses as JSON, else a string; for a ``str``
    parameter, the text itself unless it is a JSON string. ``@FILE`` (``@-``: stdin) is the
    JSON document in FILE. Then ``from_json`` converts to the annotation (``3`` -> ``3.0``
    for a ``float``, an array -> a tuple for a ``tuple``) or refuses.
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
            _fail(f"--inputs {source}: expected a JSON object mapping input names to values, got {_json_kind(document)}")
        for name, value in document.items():
            _known_input(name, signature, f" (in --inputs {source})")
            values[name] = (value, f" (from {source})")
    given: set[str] = set()
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            _fail(f"--input expects NAME=VALUE, got {pair!r}")
        _known_input(name, signature)
        if name in given:
            _fail(f"input {name!r} given twice")
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
        _fail(_first_line(exc))


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
        takes = ", ".join(_format_param(p) for p in signature.params) or "no inputs"
        _fail(f"unknown input {name!r}{where} for workflow {signature.name}; it takes: {takes}")


def _source_name(path: str) -> str:
    return "stdin" if path == "-" else path


class _StdinOnce:
    """Standard input, readable by one ``@-`` or ``--inputs -`` only."""

    def __init__(self) -> None:
        self.used = False

    def read(self) -> str:
        if self.used:
            _fail("standard input can be read once: give `@-` or `--inputs -` to one input only")
        self.used = True
        if sys.stdin is None:  # file descriptor 0 closed
            _fail("cannot read standard input: it is closed")
        try:
            return sys.stdin.read()
        except UnicodeDecodeError:
            _fail("cannot read standard input: not UTF-8 text")
        except (OSError, ValueError) as exc:  # unreadable, or closed
            _fail(f"cannot read standard input: {exc}")


def _read_file(path: str) -> str:
    """The text of an input file (``@FILE``, ``--inputs FILE``); one-line errors."""
    p = _existing_file(path)
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        _fail(f"cannot read {path}: not UTF-8 text")
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror or exc}")


def _load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"{what}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
    except RecursionError:
        _fail(f"{what}: JSON nested too deeply")


def _json_kind(value: Any) -> str:
    """The JSON name of a decoded value's kind (for messages)."""
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _format_param(p: Any) -> str:
    text = f"{p.name}: {p.type}"
    if p.has_default:
        text += f" = {json.dumps(p.default)}"
    return text


def _jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` made JSON-serializable; what JSON cannot hold becomes its ``repr``
    (:func:`_safe_repr`), and an int too long for Python to print (more than
    ``sys.get_int_max_str_digits()`` digits) a string of its digits."""
    if depth > 100:
        return _safe_repr(value)
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return _json_int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {_json_key(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # field by field: dataclasses.asdict deep-copies the values, which may fail
        return {f.name: _jsonable(getattr(value, f.name, None), depth + 1) for f in dataclasses.fields(value)}
    return _safe_repr(value)


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        scalar = _jsonable(key)
        return scalar if isinstance(scalar, str) else json.dumps(scalar)
    return _safe_repr(key)


def _json_int(value: int) -> int | str:
    limit = sys.get_int_max_str_digits()
    if limit and value.bit_length() >= 3 * limit:  # below that it has fewer than 0.91 * limit digits
        try:
            int.__repr__(value)
        except ValueError:  # too many digits for int -> str; decimal has no such limit
            import decimal

            return str(decimal.Decimal(value))
    return value


def _safe_repr(value: Any) -> str:
    """``repr(value)``, or ``<unrepresentable TYPE object>`` when that raises: printing a
    result must never lose it."""
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ is the user's bug, not a failed run
        return f"<unrepresentable {type(value).__name__} object>"


def _json_document(document: dict[str, Any]) -> bytes:
    """``document`` (made of :func:`_jsonable` values) as one line of JSON, UTF-8 encoded.

    Text stays readable (``ensure_ascii=False``), but a string that is not valid Unicode
    (a lone surrogate, as ``os.fsdecode`` gives for a file name that is not UTF-8) has no
    UTF-8 encoding: each lone surrogate is written as the JSON escape ``\\udcff``, which
    is what the ``backslashreplace`` error handler writes for it (the only characters
    UTF-8 cannot encode are surrogates, and they occur only inside JSON strings). The
    result is valid UTF-8 whatever the locale, and ``json.loads`` gives back the same text.
    """
    return (json.dumps(document, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8", "backslashreplace")


def _skipped_summary(skipped: Sequence[namu.SkippedItem]) -> str:
    """One line: how many items were skipped, by task and exception type, and the first error."""
    counts: dict[tuple[str, str], int] = {}
    for item in skipped:
        kind = item.error.split(":", 1)[0]
        counts[(item.task, kind)] = counts.get((item.task, kind), 0) + 1
    groups = ", ".join(f"{n} x {task} ({kind})" for (task, kind), n in counts.items())
    first = skipped[0]
    error = " ".join(first.error.split())  # a task's message may span lines
    error = error if len(error) <= 120 else error[:117] + "..."
    noun = "item" if len(skipped) == 1 else "items"
    return f"skipped {len(skipped)} {noun}: {groups}; first: {first.task}[{first.index}]: {error} (--json lists all)"


def _check_executor(executor: str) -> None:
    if executor == "kernel" and importlib.util.find_spec("namu._kernel") is None:
        _fail(
            "the native kernel (namu._kernel) is not built; build it with "
            "`maturin develop --release`, or run with --executor reference"
        )


# ---------------------------------------------------------------------- commands
@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(namu.__version__, "-V", "--version", prog_name="namu", message="%(prog)s %(version)s")
def cli() -> None:
    """namu: compile Python workflows to ONNX IR, run them, inspect artifacts.

    \b
    Examples:
      namu compile examples/collatz.py -o collatz.onnx
      namu run examples/collatz.py --input limit=5000
      namu run collatz.onnx --json
      namu inspect collatz.onnx

    Exit codes: 0 success, 1 the run failed (a task raised), 2 bad usage or
    input (the error is one line on stderr), 130 interrupted.
    """


@cli.command("compile", short_help="Compile a workflow into an ONNX artifact.")
@click.argument("target", metavar="FILE.py[:WORKFLOW]", required=False)
@click.option(
    "-o",
    "--output",
    metavar="OUT.onnx",
    type=click.Path(dir_okay=False),
    help="Where to write the artifact. Default: WORKFLOW.onnx in the current directory.",
)
@click.option(
    "-O",
    "--opt-level",
    type=click.Choice(["0", "1", "2"]),
    default="2",
    show_default=True,
    help="0: verification, inlining, partitioning and lowering only; 1: also constant "
    "folding, CSE and dead-code elimination; 2: every pass.",
)
@click.option("--disable-pass", "disabled", metavar="PASS", multiple=True, help="Leave an optional pass out (repeatable).")
@click.option(
    "--dump-after",
    metavar="PASS",
    multiple=True,
    help="Write the IR after PASS (repeatable; `all` for every pass) as ONNX text into "
    "--dump-dir, one file NN-PASS.onnxtxt per pass.",
)
@click.option(
    "--dump-dir",
    metavar="DIR",
    type=click.Path(file_okay=False),
    default=None,
    help="Where --dump-after writes. Default: WORKFLOW.ir/ in the current directory.",
)
@click.option("--timings", is_flag=True, help="Print each pass's time and change count.")
@click.option("--print-passes", is_flag=True, help="List the pipeline of the -O level with summaries, and exit.")
@click.option(
    "--slot",
    "slots",
    metavar="NAME=TASK",
    multiple=True,
    help="Bind a role slot to a @namu.task of the workflow's file, or FILE.py:TASK "
    "(repeatable; `PLACEMENT/NAME=...` binds it in one partition only).",
)
def compile_command(
    target: str | None,
    output: str | None,
    opt_level: str,
    disabled: tuple[str, ...],
    dump_after: tuple[str, ...],
    dump_dir: str | None,
    timings: bool,
    print_passes: bool,
    slots: tuple[str, ...],
) -> int:
    """Compile a workflow into an ONNX artifact.

    FILE.py is imported (as `python FILE.py` would, with its directory on sys.path)
    and WORKFLOW is the name of a @namu.workflow defined in it. WORKFLOW may be left
    out when the file defines one workflow, or one that no other workflow calls.
    The artifact is written atomically: a failed compile leaves no file behind.

    The optimizer runs the pipeline of passes listed by --print-passes (see
    docs/passes.md); -O, --disable-pass, --dump-after and --timings control and
    inspect it.

    \b
    Examples:
      namu compile examples/collatz.py                  # writes ./collatz.onnx
      namu compile pipeline.py:train -o build/train.onnx
      namu compile --print-passes -O1
      namu compile wf.py --timings --dump-after fold-constants
      namu compile agent.py --slot llm=ask_claude
    """
    from namu.ir.printer import count_nodes
    from namu.passes import get, pipeline
    from namu.runtime.atomic_write import resolve_output

    level = int(opt_level)
    for name in (*disabled, *(d for d in dump_after if d != "all")):
        try:
            get(name)
        except KeyError as exc:
            _fail(_joined(exc.args[0]))
    try:
        names = pipeline(level, disabled)
    except ValueError as exc:
        _fail(str(exc))
    if print_passes:
        _print_passes(names, level)
        return EXIT_OK
    if target is None:
        _fail("missing FILE.py[:WORKFLOW] (or use --print-passes)")
    for name in dump_after:
        if name != "all" and name not in names:
            _fail(f"--dump-after {name}: the pass does not run at -O{level} with these options")
    wf = _load_workflow(target)
    out = Path(output) if output else Path.cwd() / f"{wf.name}.onnx"
    try:
        resolve_output(out)  # a device, FIFO or directory is refused before any work
    except OutputPathError as exc:
        _fail(str(exc))
    dump_path = Path(dump_dir) if dump_dir else Path.cwd() / f"{wf.name}.ir"
    after = _ir_dumper(dump_path, set(dump_after)) if dump_after else None
    art = _compile(wf, opt_level=level, disable=disabled, slots=_slot_bindings(slots, wf), after_pass=after)
    try:
        written = art.save(out)
    except OutputPathError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror or exc}")
    if timings:
        _print_timings(art.pass_records)
    if dump_after:
        _out(f"IR dumps -> {dump_path}")
    _out(f"compiled {wf.name}: {count_nodes(art.model)} ops, {len(art.task_table.tasks)} tasks -> {written}")
    return EXIT_OK


def _print_passes(names: Sequence[str], level: int) -> None:
    from namu.passes import get

    width = max(len(n) for n in names)
    _out(f"pipeline at -O{level} ({len(names)} passes):")
    for i, name in enumerate(names, 1):
        info = get(name)
        tag = "required" if info.required else f"-O{info.level}"
        _out(f"{i:3d}. {name:<{width}}  {tag:<8}  {info.summary}")


def _print_timings(records: Sequence[Any]) -> None:
    width = max((len(r.name) for r in records), default=4)
    _out(f"{'pass':<{width}}  {'time ms':>9}  {'changes':>7}")
    for r in records:
        _out(f"{r.name:<{width}}  {r.seconds * 1000:9.2f}  {r.changes:7d}")
    total = sum(r.seconds for r in records)
    _out(f"{'total':<{width}}  {total * 1000:9.2f}  {sum(r.changes for r in records):7d}")


def _ir_dumper(directory: Path, wanted: set[str]) -> Any:
    """An ``after_pass`` hook writing the IR after the wanted passes as ONNX text."""
    import onnx.printer

    from namu.ir.serde import to_proto
    from namu.runtime.atomic_write import write_atomic

    def dump(name: str, index: int, model: Any) -> None:
        if "all" not in wanted and name not in wanted:
            return
        path = directory / f"{index + 1:02d}-{name}.onnxtxt"
        try:
            write_atomic(path, (onnx.printer.to_text(to_proto(model)) + "\n").encode())
        except OutputPathError as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(f"cannot write IR dump into {directory}: {exc.strerror or exc}")

    return dump


@cli.command("run", short_help="Run a workflow or an artifact and print its result.")
@click.argument("target", metavar="(FILE.py[:WORKFLOW] | ART.onnx)")
@click.option(
    "-i",
    "--input",
    "inputs",
    metavar="NAME=VALUE",
    multiple=True,
    help="A workflow input (repeatable). VALUE is JSON when it is valid JSON "
    '(3, 2.5, true, [1,2], "text"), else a string (for a str input: the text itself); '
    "NAME=@FILE reads the JSON in FILE (@- reads stdin), for values too long for a "
    "command line. It is then converted to the input's annotation (3 is 3.0 for a "
    "float, [1,2] a tuple for a tuple) or refused.",
)
@click.option(
    "--inputs",
    "inputs_file",
    metavar="FILE|-",
    default=None,
    help='A JSON object of inputs, {"NAME": value, ...}, from FILE or stdin (-); '
    "-i options override its keys.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document: {value, skipped, elapsed_s} (and resumed_calls with --checkpoint).")
@click.option(
    "--executor",
    type=click.Choice(["kernel", "reference"]),
    default="kernel",
    show_default=True,
    help="kernel: the native Rust scheduler; reference: the pure-Python interpreter.",
)
@click.option(
    "--cache-dir",
    metavar="DIR",
    type=click.Path(file_okay=False),
    default=None,
    help="Keep the results of cache=True / pure=True tasks in DIR (a SQLite file, created "
    "if missing), so later runs reuse them. Default: $NAMU_CACHE_DIR, else memory only.",
)
@click.option(
    "--checkpoint",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    default=None,
    help="Record every completed task call in FILE (SQLite, created if missing). Running "
    "again with the same FILE and inputs resumes: recorded calls are not run again.",
)
@click.option(
    "--task-mode",
    type=click.Choice(["inline", "thread"]),
    default="inline",
    show_default=True,
    help="How sync tasks without their own mode run on the kernel: inline (called by the "
    "scheduler) or thread (a work-stealing pool, for tasks that release the GIL).",
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Most async task calls in flight at once.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Threads of the worker pool for thread-mode tasks.  [default: number of CPUs]",
)
def run_command(
    target: str,
    inputs: tuple[str, ...],
    inputs_file: str | None,
    as_json: bool,
    executor: str,
    cache_dir: str | None,
    checkpoint: str | None,
    task_mode: str,
    max_concurrency: int,
    workers: int | None,
) -> int:
    """Run a workflow (compiling it first) or a saved artifact, and print its result.

    A progress bar is drawn on stderr while the workflow runs (only on a terminal).
    The result goes to stdout, pretty-printed, or as JSON with --json. Items dropped
    by on_error="skip" tasks are summarized on stderr (listed in full with --json).

    \b
    Examples:
      namu run examples/collatz.py --input limit=2000
      namu run examples/stdlib_stats.py:stdlib_stats -i top=5 --json
      namu run wf.py -i ratio=0.5 -i flag=true -i 'xs=[1,2]' -i 'name=Ada Lovelace'
      namu run wf.py -i docs=@docs.json              # the JSON in docs.json
      namu run wf.py --inputs params.json -i n=10    # n overrides the file's n
      produce_json | namu run wf.py --inputs -
      namu run collatz.onnx --executor reference
      namu run pipeline.py --checkpoint run.ckpt     # run again to resume after a crash
      namu run pipeline.py --cache-dir ~/.cache/namu
      namu run fetch.py --max-concurrency 64 --task-mode thread --workers 8

    Ctrl+C stops the run cleanly (in-flight async calls are cancelled, worker threads
    joined) and says how many calls finished; the exit code is 130.
    """
    from namu.runtime.progress import ProgressObserver

    art = _target_artifact(target)
    kwargs = _parse_inputs(inputs, inputs_file, art.signature)
    _check_executor(executor)
    try:
        with ProgressObserver(art.name) as progress:
            result = art.with_options(
                executor=executor,
                observer=progress,
                cache_dir=cache_dir,
                checkpoint=checkpoint,
                task_mode=task_mode,
                max_concurrency=max_concurrency,
                workers=workers,
            ).run(**kwargs)
    except InputError as exc:
        _fail(_first_line(exc))
    except (CacheError, CheckpointError) as exc:
        _fail(_first_line(exc))
    except TaskError as exc:
        _fail(_first_line(exc, mark_more=True), EXIT_RUN_FAILED)
    except NamuError as exc:
        _fail(f"{type(exc).__name__}: {_first_line(exc, mark_more=True)}", EXIT_RUN_FAILED)
    except Exception as exc:  # noqa: BLE001 - an op of the workflow body failed, as Python would
        # e.g. ZeroDivisionError from `x // 0`; the runtime notes the op and its span.
        notes = "; ".join(_first_line(n) for n in getattr(exc, "__notes__", ()) if str(n).strip())
        _fail(f"{type(exc).__name__}: {_first_line(exc, mark_more=True)}" + (f" ({notes})" if notes else ""), EXIT_RUN_FAILED)
    if as_json:
        document = {
            "value": _jsonable(result.value),
            "skipped": [_jsonable(item) for item in result.skipped],
            "elapsed_s": result.elapsed_s,
        }
        if checkpoint is not None:
            document["resumed_calls"] = result.resumed_calls
        _out(_json_document(document), nl=False)  # bytes: written as they are
        return EXIT_OK
    from rich.console import Console
    from rich.pretty import Pretty

    console = Console()
    with _writing_stdout(), console.capture() as captured:  # rich flushes stdout as the capture ends
        console.print(Pretty(result.value), soft_wrap=False)  # a repr that raises is shown as <repr-error ...>
    # Encoded here, not by stdout's text layer: a repr holding a lone surrogate is written
    # as a backslash escape (\ud800) instead of failing the command or writing bad bytes.
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    _out(captured.get().encode(encoding, "backslashreplace"), nl=False)
    if result.resumed_calls:
        calls = "call" if result.resumed_calls == 1 else "calls"
        click.echo(click.style(f"resumed {result.resumed_calls} task {calls} from {checkpoint}", dim=True), err=True)
    if result.skipped:
        click.echo(click.style(_skipped_summary(result.skipped), fg="yellow"), err=True)
    return EXIT_OK


@contextlib.contextmanager
def _writing_stdout() -> Iterator[None]:
    """Report a failed write to stdout (a full disk, a device error) as what it is.

    Raises:
        CliError: stdout cannot take the output (exit 1: the command did its work).
        BrokenPipeError: the reader left (handled by :func:`run`).
    """
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        _fail(f"cannot write to standard output: {exc.strerror or exc}", EXIT_RUN_FAILED)


def _out(text: str | bytes = "", *, nl: bool = True) -> None:
    """Write to stdout now (what every command prints goes through here)."""
    with _writing_stdout():
        click.echo(text, nl=nl)
        sys.stdout.flush()


@cli.command("inspect", short_help="Show an artifact's passport, tasks and graph.")
@click.argument("artifact", metavar="ART.onnx")
@click.option("--onnx-text", is_flag=True, help="Print only the ONNX textual form (onnx.printer.to_text).")
def inspect_command(artifact: str, onnx_text: bool) -> int:
    """Show an artifact: passport, signature, task table and the graph listing.

    No task code is imported: inspecting is safe on any artifact. The listing has one
    line per node (`%y = namu.Task[task=add](%x, %c)  # wf.py:12:9`), with If/Loop/Map
    bodies indented under their node.

    \b
    Examples:
      namu inspect collatz.onnx
      namu inspect collatz.onnx --onnx-text > collatz.txt
    """
    from namu.runtime.loader import read_model

    _existing_file(artifact)
    try:
        proto = read_model(artifact)
    except ArtifactError as exc:
        _fail(_first_line(exc))
    if onnx_text:
        import onnx

        _out(onnx.printer.to_text(proto))
        return EXIT_OK
    for line in _inspect_lines(artifact, proto):
        _out(line)
    return EXIT_OK


def _inspect_lines(path: str, proto: Any) -> Iterator[str]:
    from namu.ir.printer import count_nodes, format_graph
    from namu.ir.types import type_of
    from namu.runtime.loader import decode_model

    try:
        model, (signature, passport, table) = decode_model(proto, path)
    except ArtifactError as exc:  # a damaged graph or metadata, or a newer namu's artifact
        _fail(_first_line(exc))
    listing = format_graph(model)

    bold = _styler(bold=True)
    outputs = list(model.graph.outputs)
    if signature.returns == "dict":
        returns = "{" + ", ".join(f"{k!r}: {type_of(v)}" for k, v in zip(signature.return_keys, outputs)) + "}"
    elif signature.returns == "tuple":
        returns = "tuple[" + ", ".join(str(type_of(v)) for v in outputs) + "]"
    else:
        returns = str(type_of(outputs[0])) if outputs else "None"
    params = ", ".join(_format_param(p) for p in signature.params)

    yield bold("passport")
    rows = [
        ("artifact", str(Path(path))),
        ("workflow", f"{passport.workflow}  ({signature.file})"),
        ("namu", f"{passport.namu_version}  (onnx opset {passport.onnx_opset}, ir_version {model.ir_version})"),
        ("passes", " -> ".join(passport.passes) or "(none)"),
        ("digest", passport.workflow_digest),
        ("size", f"{count_nodes(model)} ops, {len(table.tasks)} tasks, {len(model.functions)} functions"),
    ]
    for key, value in rows:
        yield f"  {key:<9} {value}"
    yield ""
    yield bold("signature")
    yield f"  {signature.name}({params}) -> {returns}"
    yield ""
    yield bold(f"tasks ({len(table.tasks)})")
    yield from _task_table(table)
    yield ""
    yield bold("graph")
    yield listing


def _styler(**style: Any) -> Any:
    return lambda text: click.style(text, **style)


def _task_table(table: Any) -> Iterator[str]:
    from namu.ir.metadata import TaskOptions

    defaults = TaskOptions().model_dump()
    header = ("key", "task", "file", "digest", "options")
    rows = []
    for entry in table.tasks:
        options = entry.options.model_dump()
        changed = ", ".join(f"{k}={v!r}" for k, v in options.items() if v != defaults[k])
        if entry.is_async:
            changed = ", ".join(filter(None, ["async", changed]))
        rows.append((
            entry.key,
            f"{entry.module}.{entry.qualname}",
            _display_path(entry.file),
            entry.digest.removeprefix("sha256:")[:12],
            changed or "-",
        ))
    if not rows:
        yield "  (no tasks)"
        return
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row: Sequence[str]) -> str:
        return "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()

    yield click.style(fmt(header), dim=True)
    for row in rows:
        yield fmt(row)


def _display_path(file: str) -> str:
    if not file:
        return "?"
    try:
        rel = os.path.relpath(file)
    except ValueError:  # another drive on Windows
        return file
    return rel if not rel.startswith("..") else file


# ---------------------------------------------------------------------- entry point
def _error(message: str) -> None:
    click.echo(click.style("error:", fg="red", bold=True) + " " + message, err=True)


def _unwritable(fd: int) -> str | None:
    """``"closed"`` or ``"not open for writing"`` when file descriptor ``fd`` cannot be
    written to, else None."""
    try:
        import fcntl
    except ImportError:  # not POSIX: only ask whether it is open
        try:
            os.fstat(fd)
        except OSError:
            return "closed"
        return None
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError:
        return "closed"
    return "not open for writing" if flags & os.O_ACCMODE == os.O_RDONLY else None


def _stdout_problem() -> str | None:
    """Why stdout cannot take the command's output, or None when it can."""
    stream = sys.stdout
    if stream is None or getattr(stream, "closed", False):  # Python sets None when fd 1 was closed
        return "closed"
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # an in-memory stream (tests, a host program)
        return None
    return _unwritable(fd)


def _guard_stderr() -> None:
    """With stderr closed (``2>&-``) or not open for writing, put ``/dev/null`` there.

    Error lines are then lost (the exit code still tells), but no file the run opens can
    take descriptor 2 and receive what a task or a subprocess writes to stderr, and a
    task's ``print(..., file=sys.stderr)`` does not land in stdout (``print`` writes to
    stdout when ``sys.stderr`` is None).
    """
    if _unwritable(2) is None:
        return
    null = os.open(os.devnull, os.O_WRONLY)
    if null != 2:
        os.dup2(null, 2)
        os.close(null)
    if sys.stderr is None:
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    Every command writes its result to stdout: with stdout closed (``>&-``) or not open
    for writing, nothing runs and the exit code is 2.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    problem = _stdout_problem()
    if problem is not None:
        _error(f"standard output is {problem}: namu writes its results there; redirect it to a file or to /dev/null instead")
        return EXIT_USAGE
    try:
        if not args:
            _out(cli.get_help(click.Context(cli, info_name="namu")))
            return EXIT_OK
        # Not cli.main(): click would print a blank line on Ctrl+C before our error line.
        with cli.make_context("namu", args) as ctx:
            rv = cli.invoke(ctx)
    except click.exceptions.Exit as exc:  # --help, --version
        return exc.exit_code
    except BrokenPipeError:  # `namu ... | head`: the reader left; say nothing more
        _silence_stdout()
        return EXIT_RUN_FAILED
    except CliError as exc:
        _error(exc.message)
        return exc.code
    except click.exceptions.Abort as exc:
        # click turns Ctrl+C into Abort; a run stopped by it says how far it got.
        cause = exc.__cause__ or exc.__context__
        _error(str(cause) if isinstance(cause, RunCancelledError) else "aborted")
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        _error(_joined(exc.format_message()))
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        # A run stopped by Ctrl+C says how far it got; anything else was just interrupted.
        _error(str(exc) if isinstance(exc, RunCancelledError) else "interrupted")
        if isinstance(exc, RunCancelledError) and exc.abandoned:
            global _abandoned_calls
            _abandoned_calls = True
        return EXIT_INTERRUPTED
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_RUN_FAILED
    except Exception as exc:  # noqa: BLE001 - a bug: still one line, traceback on request
        if os.environ.get(TRACEBACK_ENV):
            traceback.print_exc()
        _error(
            f"internal error: {type(exc).__name__}: {_first_line(exc)} "
            f"(set {TRACEBACK_ENV}=1 to see the traceback)"
        )
        return EXIT_RUN_FAILED
    return rv if isinstance(rv, int) else EXIT_OK


#: set when a second Ctrl+C abandoned task calls still running in worker threads
_abandoned_calls = False


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so flushing what is left cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``namu`` console script: run the CLI and exit with its code.

    After a second Ctrl+C abandoned task calls that are still running, the process
    leaves at once (``os._exit``) instead of finalizing the interpreter under them.
    """
    _guard_stderr()
    code = run(argv)
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:  # `namu ... | head`: the reader left; that is not an error
        _silence_stdout()
    except OSError as exc:  # a full disk, a device error: what was written is incomplete
        _error(f"cannot write to standard output: {exc.strerror or exc}")
        _silence_stdout()
        code = code or EXIT_RUN_FAILED
    if _abandoned_calls:
        if sys.stderr is not None:
            sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
