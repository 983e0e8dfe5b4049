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

One module per concern: :mod:`~namu.cli.targets` (which workflow or artifact),
:mod:`~namu.cli.inputs` (``-i``/``--inputs``), :mod:`~namu.cli.output` (stdout, JSON,
the standard streams), :mod:`~namu.cli.errors` (exit codes, the ``error:`` line), and
one per command: :mod:`~namu.cli.compile`, :mod:`~namu.cli.execute` (``namu run``),
:mod:`~namu.cli.inspect`, :mod:`~namu.cli.runs` (``namu runs``, the agent run history),
:mod:`~namu.cli.agents` (``namu validate``, ``namu schema``). A command's module is
imported only when the command runs or shows its own help (:data:`COMMANDS` names it and
its one-line help), so ``namu --help`` imports none of them; heavy modules (the
compiler's passes, pydantic, rich) are imported by the command that needs them.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NamedTuple, NoReturn

import click

import namu
from namu.cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_USAGE,
    TRACEBACK_ENV,
    CliError,
    first_line,
    joined,
)
from namu.cli.output import error, guard_stderr, out, silence_stdout, stdout_problem
from namu.errors import RunCancelledError

__all__ = ["COMMANDS", "cli", "main", "run"]


class LazyCommand(NamedTuple):
    """A command of ``namu``, known by name before its module is imported.

    Attributes:
        target: ``"module:attribute"``, the ``click.Command`` (or group) itself.
        short_help: its line in ``namu --help`` (the command's own ``short_help``;
            a test keeps the two equal).
    """

    target: str
    short_help: str


#: the commands of ``namu``, by name.
COMMANDS = {
    "compile": LazyCommand("namu.cli.compile:compile_command", "Compile a workflow or an agent into an ONNX artifact."),
    "federated": LazyCommand("namu.cli.federated:federated_group", "Run a federated program's server or one of its clients."),
    "inspect": LazyCommand("namu.cli.inspect:inspect_command", "Show an artifact's passport, tasks and graph."),
    "run": LazyCommand("namu.cli.execute:run_command", "Run a workflow, an agent or an artifact and print its result."),
    "runs": LazyCommand("namu.cli.runs:runs_group", "List and show the recorded agent runs."),
    "schema": LazyCommand("namu.cli.agents:schema_command", "Print the JSON Schema of a file format."),
    "validate": LazyCommand("namu.cli.agents:validate_command", "Check agent files."),
}


class _LazyGroup(click.Group):
    """The ``namu`` group: lists :data:`COMMANDS` from their names and short helps, and
    imports a command's module only to run it or show its help (click's lazily loaded
    subcommands pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, _, attribute = entry.target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = click.utils.make_str(args[0])
        if name not in COMMANDS and not name.startswith("-") and not ctx.resilient_parsing:
            # as click words it, whose own suggestions read the commands it holds (none here)
            close = sorted(difflib.get_close_matches(name, COMMANDS))
            listed = ", ".join(map(repr, close))
            hint = {0: "", 1: f" Did you mean {listed}?"}.get(len(close), f" (Did you mean one of: {listed}?)")
            raise click.UsageError(f"No such command {name!r}.{hint}", ctx)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name].short_help) for name in self.list_commands(ctx)])


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(namu.__version__, "-V", "--version", prog_name="namu", message="%(prog)s %(version)s")
def cli() -> None:
    """namu: compile Python workflows to ONNX IR, run them, inspect artifacts.

    \b
    Examples:
      namu compile examples/collatz.py -o collatz.onnx
      namu run examples/collatz.py --input limit=5000
      namu run collatz.onnx --json
      namu inspect collatz.onnx
      namu run agents/calc.yaml -i "What is 25 * 47?"
      namu validate agents/*.yaml

    Exit codes: 0 success, 1 the run failed (a task raised), 2 bad usage or
    input (the error is one line on stderr), 130 interrupted.
    """



def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    Every command writes its result to stdout: with stdout closed (``>&-``) or not open
    for writing, nothing runs and the exit code is 2.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    problem = stdout_problem()
    if problem is not None:
        error(f"standard output is {problem}: namu writes its results there; redirect it to a file or to /dev/null instead")
        return EXIT_USAGE
    try:
        if not args:
            out(cli.get_help(click.Context(cli, info_name="namu")))
            return EXIT_OK
        # Not cli.main(): click would print a blank line on Ctrl+C before our error line.
        with cli.make_context("namu", args) as ctx:
            rv = cli.invoke(ctx)
    except click.exceptions.Exit as exc:  # --help, --version
        return exc.exit_code
    except BrokenPipeError:  # `namu ... | head`: the reader left; say nothing more
        silence_stdout()
        return EXIT_RUN_FAILED
    except CliError as exc:
        error(exc.message)
        return exc.code
    except click.exceptions.Abort as exc:
        # click turns Ctrl+C into Abort; a run stopped by it says how far it got.
        cause = exc.__cause__ or exc.__context__
        error(str(cause) if isinstance(cause, RunCancelledError) else "aborted")
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        error(joined(exc.format_message()))
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        # A run stopped by Ctrl+C says how far it got; anything else was just interrupted.
        error(str(exc) if isinstance(exc, RunCancelledError) else "interrupted")
        if isinstance(exc, RunCancelledError) and exc.abandoned:
            global _abandoned_calls
            _abandoned_calls = True
        return EXIT_INTERRUPTED
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_RUN_FAILED
    except Exception as exc:  # noqa: BLE001 - a bug: still one line, traceback on request
        if os.environ.get(TRACEBACK_ENV):
            traceback.print_exc()
        error(
            f"internal error: {type(exc).__name__}: {first_line(exc)} "
            f"(set {TRACEBACK_ENV}=1 to see the traceback)"
        )
        return EXIT_RUN_FAILED
    return rv if isinstance(rv, int) else EXIT_OK


#: set when a second Ctrl+C abandoned task calls still running in worker threads
_abandoned_calls = False


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``namu`` console script: run the CLI and exit with its code.

    After a second Ctrl+C abandoned task calls that are still running, the process
    leaves at once (``os._exit``) instead of finalizing the interpreter under them.
    """
    guard_stderr()
    code = run(argv)
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:  # `namu ... | head`: the reader left; that is not an error
        silence_stdout()
    except OSError as exc:  # a full disk, a device error: what was written is incomplete
        error(f"cannot write to standard output: {exc.strerror or exc}")
        silence_stdout()
        code = code or EXIT_RUN_FAILED
    if _abandoned_calls:
        if sys.stderr is not None:
            sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
