"""What the commands write: stdout (text, rich renderables, JSON documents), the
``error:`` line on stderr, and the checks that the standard streams can take them."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
from collections.abc import Iterator
from typing import Any

import click

from namu.cli.errors import EXIT_RUN_FAILED, fail

__all__ = [
    "error",
    "guard_stderr",
    "json_document",
    "jsonable",
    "out",
    "out_text",
    "render",
    "silence_stdout",
    "stdout_problem",
    "writing_stdout",
]

#: the console width off a terminal when lines must not wrap (``namu inspect | grep``).
_UNWRAPPED_WIDTH = 100_000


# ---------------------------------------------------------------------- stdout
@contextlib.contextmanager
def writing_stdout() -> Iterator[None]:
    """Report a failed write to stdout (a full disk, a device error) as what it is.

    Raises:
        CliError: stdout cannot take the output (exit 1: the command did its work).
        BrokenPipeError: the reader left (handled by :func:`namu.cli.run`).
    """
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        fail(f"cannot write to standard output: {exc.strerror or exc}", EXIT_RUN_FAILED)


def out(text: str | bytes = "", *, nl: bool = True) -> None:
    """Write to stdout now (what every command prints goes through here)."""
    with writing_stdout():
        click.echo(text, nl=nl)
        sys.stdout.flush()


def out_text(text: str) -> None:
    """Write ``text`` as it is (no newline added), encoded here, not by stdout's text
    layer: a lone surrogate (in a ``repr``, a file name) is written as a backslash escape
    (``\\ud800``) instead of failing the command or writing bad bytes."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    out(text.encode(encoding, "backslashreplace"), nl=False)


def render(*renderables: Any, wrap: bool = True) -> str:
    """``renderables`` (rich objects, or text) as rich prints them on stdout: styled
    only on a terminal (and as ``NO_COLOR``/``FORCE_COLOR`` say), one after the other.

    Args:
        renderables: what to print.
        wrap: off a terminal, wrap at ``$COLUMNS`` (default 80) as rich does; False
            keeps every line whole there, for tools that read it line by line.
    """
    from rich.console import Console

    console = Console()
    if not wrap and not console.is_terminal:
        console.width = _UNWRAPPED_WIDTH
    with writing_stdout(), console.capture() as captured:  # rich flushes stdout as the capture ends
        for renderable in renderables:
            console.print(renderable, soft_wrap=False)  # a repr that raises is shown as <repr-error ...>
    return captured.get()


# ---------------------------------------------------------------------- JSON
def jsonable(value: Any, depth: int = 0) -> Any:
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
        return {_json_key(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # field by field: dataclasses.asdict deep-copies the values, which may fail
        return {f.name: jsonable(getattr(value, f.name, None), depth + 1) for f in dataclasses.fields(value)}
    return _safe_repr(value)


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        scalar = jsonable(key)
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


def json_document(document: dict[str, Any]) -> bytes:
    """``document`` (made of :func:`jsonable` values) as one line of JSON, UTF-8 encoded.

    Text stays readable (``ensure_ascii=False``), but a string that is not valid Unicode
    (a lone surrogate, as ``os.fsdecode`` gives for a file name that is not UTF-8) has no
    UTF-8 encoding: each lone surrogate is written as the JSON escape ``\\udcff``, which
    is what the ``backslashreplace`` error handler writes for it (the only characters
    UTF-8 cannot encode are surrogates, and they occur only inside JSON strings). The
    result is valid UTF-8 whatever the locale, and ``json.loads`` gives back the same text.
    """
    return (json.dumps(document, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8", "backslashreplace")


# ---------------------------------------------------------------------- the standard streams
def error(message: str) -> None:
    """Write the ``error: message`` line on stderr."""
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


def stdout_problem() -> str | None:
    """Why stdout cannot take the command's output, or None when it can."""
    stream = sys.stdout
    if stream is None or getattr(stream, "closed", False):  # Python sets None when fd 1 was closed
        return "closed"
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # an in-memory stream (tests, a host program)
        return None
    return _unwritable(fd)


def guard_stderr() -> None:
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


def silence_stdout() -> None:
    """Point stdout at /dev/null, so flushing what is left cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
