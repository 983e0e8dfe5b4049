"""Exit codes and the one-line errors every ``namu`` command reports (docs/cli.md)."""

from __future__ import annotations

from typing import NoReturn

from namu.errors import first_line

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_RUN_FAILED",
    "EXIT_USAGE",
    "TRACEBACK_ENV",
    "CliError",
    "fail",
    "first_line",
    "joined",
]

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


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Stop the command with ``error: message`` and exit code ``code``.

    Raises:
        CliError: always.
    """
    raise CliError(message, code)


def joined(text: object) -> str:
    """All lines of ``text`` joined into one (for click's short usage messages)."""
    return " ".join(str(text).split())
