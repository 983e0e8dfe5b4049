"""``namu run``: run a workflow or a saved artifact and print its result."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import click
from pydantic.fields import FieldInfo

import namu
from namu.cli.errors import EXIT_OK, EXIT_RUN_FAILED, fail, first_line
from namu.cli.inputs import parse_inputs
from namu.cli.output import json_document, jsonable, out, out_text, render
from namu.cli.targets import target_artifact
from namu.errors import CacheError, CheckpointError, InputError, NamuError, TaskError
from namu.runtime.options import Flag, RunOptions

__all__ = ["run_command", "run_option_flags"]

F = TypeVar("F", bound=Callable[..., Any])


class _NameIn(click.ParamType):
    """One of the names ``names()`` gives when the command line is parsed, not when the
    command is defined (a registry may grow in between); as ``click.Choice`` otherwise."""

    name = "choice"

    def __init__(self, names: Callable[[], Sequence[str]]) -> None:
        self.names = names

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(self.names()) + "]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        names = self.names()
        if value not in names:
            self.fail(f"{value!r} is not one of {', '.join(map(repr, names))}.", param, ctx)
        return value


def _flag_type(field: FieldInfo, flag: Flag) -> click.ParamType:
    """The click type of a run option: its choices, a path, or an int range."""
    if flag.choices is not None:
        return _NameIn(flag.choices)
    if flag.path is not None:
        return click.Path(file_okay=flag.path == "file", dir_okay=flag.path == "dir")
    if get_origin(field.annotation) is Literal:
        return click.Choice(get_args(field.annotation))
    if int in (field.annotation, *get_args(field.annotation)):
        return click.IntRange(min=next((m.ge for m in field.metadata if hasattr(m, "ge")), None))
    return click.STRING


def run_option_flags(command: F) -> F:
    """Add one ``--NAME`` option per run option with a :class:`~namu.runtime.options.Flag`
    (in field order; the help is the field's description, the default its default)."""
    for name, field in reversed(RunOptions.model_fields.items()):
        flag = next((m for m in field.metadata if isinstance(m, Flag)), None)
        if flag is not None:
            command = click.option(
                f"--{name.replace('_', '-')}",
                name,
                type=_flag_type(field, flag),
                metavar=flag.metavar,
                default=field.default,
                show_default=field.default is not None,
                help=field.description,
            )(command)
    return command


@click.command("run", short_help="Run a workflow, an agent or an artifact and print its result.")
@click.argument("target", metavar="(FILE.py[:WORKFLOW] | AGENT.yaml | ART.onnx)")
@click.option(
    "-i",
    "--input",
    "inputs",
    metavar="NAME=VALUE",
    multiple=True,
    help="A workflow input (repeatable). For an agent, -i TEXT is the user message, "
    "unless TEXT is NAME=VALUE naming one of its template variables. VALUE is JSON when it is valid JSON "
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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document: {value, skipped, elapsed_s} (and resumed_calls with "
              "--checkpoint, rounds for a federated program); "
              "for an agent: {value (the answer), usage, iterations, tool_calls, stop, messages, run_id}.")
@click.option("--stream", is_flag=True, help="Agents: print the answer as it arrives (tool calls on stderr).")
@click.option("--override", "overrides", metavar="KEY=VALUE", multiple=True,
              help="Agents: set a key of the agent file (repeatable), validated like the file: --override llm.temperature=0.2")
@click.option("--dry-run", is_flag=True, help="Agents: validate, and print the plan (model, tools and schemas, limits, the first "
              "request's token count and estimated cost) without any network call.")
@click.option("--session", metavar="NAME", default=None, help="Agents: continue the conversation NAME (its earlier messages open the run).")
@click.option("--history", metavar="PATH", default=None, help="Agents: the run history file (default $NAMU_RUN_HISTORY, else "
              "~/.namu/runs.sqlite; NAMU_RUN_HISTORY=off records nothing).")
@run_option_flags
def run_command(
    target: str,
    inputs: tuple[str, ...],
    inputs_file: str | None,
    as_json: bool,
    stream: bool,
    overrides: tuple[str, ...],
    dry_run: bool,
    session: str | None,
    history: str | None,
    **options: Any,
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
      namu run calc.yaml -i "What is 25 * 47?"        # an agent: prints its answer
      namu run calc.yaml -i "What is 2**10?" --json --stream
      namu run support.yaml -i "Hi" -i customer=Ada --session ada --override llm.temperature=0.2
      namu run calc.yaml -i "What is 25 * 47?" --dry-run

    Ctrl+C stops the run cleanly (in-flight async calls are cancelled, worker threads
    joined) and says how many calls finished; the exit code is 130.
    """
    from namu.cli.agents import (
        AGENT_SUFFIXES,
        agent_inputs,
        is_agent_artifact,
        run_agent,
    )
    from namu.cli.agents import dry_run as agent_dry_run
    from namu.runtime.progress import ProgressHooks

    if dry_run and Path(target).suffix.lower() in AGENT_SUFFIXES:  # planned from the file: nothing compiled
        from namu.cli.targets import load_agent_file
        from namu.frontend.agents.config import signature_of

        agent = load_agent_file(target, overrides)
        return agent_dry_run(agent, agent_inputs(inputs, inputs_file, signature_of(agent.source)), as_json)
    art = target_artifact(target, overrides)
    _check_executor(options["executor"])
    if is_agent_artifact(art):
        kwargs = agent_inputs(inputs, inputs_file, art.signature)
        if dry_run:
            return agent_dry_run(art, kwargs, as_json)
        return run_agent(art, target, kwargs, as_json=as_json, stream=stream, session=session, history=history, options=options)
    agent_only = [flag for flag, given in (("--stream", stream), ("--dry-run", dry_run), ("--session", session), ("--history", history)) if given]
    if agent_only:
        fail(f"{agent_only[0]} applies to agents; {target} is a workflow")
    kwargs = parse_inputs(inputs, inputs_file, art.signature)
    # inputs are given by name; positional-only parameters are passed by position (up to
    # the first one not given: the rest take their defaults), and so is every positional
    # one before a given *args, whose items follow them; a given **kwargs adds its keys
    args = []
    params = art.signature.params
    varargs = next((p.name for p in params if p.kind == "var_positional" and p.name in kwargs), None)
    for param in params:
        by_position = param.kind == "positional_only" or (varargs is not None and param.kind == "positional_or_keyword")
        if not by_position or param.name not in kwargs:
            break
        args.append(kwargs.pop(param.name))
    if varargs is not None:
        args.extend(kwargs.pop(varargs))
    varkw = next((p.name for p in params if p.kind == "var_keyword" and p.name in kwargs), None)
    if varkw is not None:
        kwargs.update(kwargs.pop(varkw))
    rounds = None
    if art.handler_placements():  # a federated program: --json lists its rounds
        from namu.runtime.federation import RoundLog

        rounds = RoundLog()
    try:
        with ProgressHooks(art.name) as progress:
            # Off a terminal nothing is drawn: no hooks, so the run pays nothing for them.
            hooks = namu.runtime.hooks.compose(progress if progress.enabled else None, rounds if as_json else None)
            result = art.with_options(hooks=hooks, **options).run(*args, **kwargs)
    except InputError as exc:
        fail(first_line(exc))
    except (CacheError, CheckpointError) as exc:
        fail(first_line(exc))
    except TaskError as exc:
        fail(first_line(exc, mark_more=True), EXIT_RUN_FAILED)
    except NamuError as exc:
        fail(f"{type(exc).__name__}: {first_line(exc, mark_more=True)}", EXIT_RUN_FAILED)
    except Exception as exc:  # noqa: BLE001 - an op of the workflow body failed, as Python would
        # e.g. ZeroDivisionError from `x // 0`; the runtime notes the op and its span.
        notes = "; ".join(first_line(n) for n in getattr(exc, "__notes__", ()) if str(n).strip())
        fail(f"{type(exc).__name__}: {first_line(exc, mark_more=True)}" + (f" ({notes})" if notes else ""), EXIT_RUN_FAILED)
    if as_json:
        document = {
            "value": jsonable(result.value),
            "skipped": [jsonable(item) for item in result.skipped],
            "elapsed_s": result.elapsed_s,
        }
        if options["checkpoint"] is not None:
            document["resumed_calls"] = result.resumed_calls
        if rounds is not None:
            document["rounds"] = rounds.rounds
        out(json_document(document), nl=False)  # bytes: written as they are
        return EXIT_OK
    from rich.pretty import Pretty

    out_text(render(Pretty(result.value)))
    if result.resumed_calls:
        calls = "call" if result.resumed_calls == 1 else "calls"
        click.echo(click.style(f"resumed {result.resumed_calls} task {calls} from {options['checkpoint']}", dim=True), err=True)
    if result.skipped:
        click.echo(click.style(_skipped_summary(result.skipped), fg="yellow"), err=True)
    return EXIT_OK


def _check_executor(executor: str) -> None:
    if executor == "kernel" and importlib.util.find_spec("namu._kernel") is None:
        fail(
            "the native kernel (namu._kernel) is not built; build it with "
            "`maturin develop --release`, or run with --executor reference"
        )


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
