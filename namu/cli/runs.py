"""``namu runs``: list and show the agent runs recorded in the run history
(:mod:`namu.runtime.llm.history`)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import click

from namu.cli.errors import EXIT_OK, fail, first_line
from namu.cli.output import json_document, jsonable, out, out_text, render

__all__ = ["runs_group"]

_STATUS_STYLES = {"ok": "green", "error": "red", "limit": "yellow", "cancelled": "magenta"}
_ROLE_STYLES = {"user": "bold blue", "assistant": "bold magenta", "tool": "bold yellow"}

_history_option = click.option(
    "--history",
    metavar="PATH",
    type=click.Path(dir_okay=False),
    default=None,
    help="The run history file. Default: $NAMU_RUN_HISTORY, else ~/.namu/runs.sqlite.",
)


@click.group("runs", short_help="List and show the recorded agent runs.")
def runs_group() -> None:
    """List and show the agent runs recorded in the run history.

    Every agent run is recorded when it ends: its inputs, transcript, tool calls,
    usage, cost, duration and status. The history is $NAMU_RUN_HISTORY, else
    ~/.namu/runs.sqlite (--history PATH reads another).

    \b
    Examples:
      namu runs list
      namu runs list --agent calculator --limit 5
      namu runs show 3f2a9c          # a prefix of the id is enough
      namu runs show 3f2a9c --json
    """


@runs_group.command("list")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Show at most this many runs.")
@click.option("--agent", metavar="NAME", default=None, help="Only the runs of this agent.")
@click.option("--session", metavar="NAME", default=None, help="Only the runs of this session (--session of namu run).")
@click.option("--json", "as_json", is_flag=True, help='Print one JSON document: {"runs": [RUN, ...]}, each run as `show --json` prints it.')
@_history_option
def list_command(limit: int, agent: str | None, session: str | None, as_json: bool, history: str | None) -> int:
    """List the recorded runs, the most recent first.

    One line per run: id, agent, status, iterations, tokens (a trailing + when the
    provider did not report them all), cost in USD (? when the model's price is
    unknown), duration and start time (UTC).

    \b
    Examples:
      namu runs list
      namu runs list --agent support --session alice -n 5
      namu runs list --json | jq '.runs[].usage'
      namu runs list --history ./runs.sqlite
    """
    from namu.errors import RunHistoryError

    path = _history_path(history)
    try:
        runs = _open(path).list(limit=limit, agent=agent, session=session) if path.exists() else []
    except RunHistoryError as exc:
        fail(first_line(exc))
    if as_json:
        out(json_document({"runs": [jsonable(run.to_json()) for run in runs]}), nl=False)
        return EXIT_OK
    if not runs:
        out(f"no runs recorded in {path}")
        return EXIT_OK
    _out_rendered(_runs_table(runs), wrap=False)
    return EXIT_OK


@runs_group.command("show")
@click.argument("run_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the run as one JSON document.")
@_history_option
def show_command(run_id: str, as_json: bool, history: str | None) -> int:
    """Show one run: its facts, inputs, transcript with tool calls and results, usage
    and cost.

    ID is a run's id or the start of one (enough of it to name one run).

    \b
    Examples:
      namu runs show 3f2a9c1b7d4e
      namu runs show 3f2a --json
    """
    from namu.errors import RunHistoryError

    path = _history_path(history)
    if not path.exists():
        fail(f"no run {run_id!r}: the run history {path} does not exist")
    try:
        run = _open(path).get(run_id)
    except KeyError as exc:
        fail(str(exc.args[0]))
    except RunHistoryError as exc:
        fail(first_line(exc))
    if as_json:
        out(json_document(jsonable(run.to_json())), nl=False)
        return EXIT_OK
    _out_rendered(*_run_sections(run))
    return EXIT_OK


def _out_rendered(*renderables: Any, wrap: bool = True) -> None:
    """Print rich renderables without the spaces that pad their lines to the width."""
    text = render(*renderables, wrap=wrap)
    out_text("".join(line.rstrip() + "\n" for line in text.splitlines()))


def _history_path(history: str | None) -> Path:
    """The history file: ``--history``, else the default.

    Raises:
        CliError: no ``--history`` and ``$NAMU_RUN_HISTORY`` turns the history off.
    """
    from namu.errors import RunHistoryError
    from namu.runtime.llm.history import default_history_path

    if history:
        return Path(history).expanduser()
    try:
        return default_history_path()
    except RunHistoryError as exc:
        fail(first_line(exc))


def _open(path: Path) -> Any:
    from namu.runtime.llm.history import RunHistory

    return RunHistory(path)


def _runs_table(runs: list[Any]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="dim", padding=(0, 1), pad_edge=False)
    for header, justify in (
        ("id", "left"), ("agent", "left"), ("status", "left"), ("iterations", "right"),
        ("tokens", "right"), ("cost", "right"), ("duration", "right"), ("started (UTC)", "left"),
    ):  # fmt: skip
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for run in runs:
        table.add_row(
            Text(run.id),
            Text(run.agent),
            Text(run.status, style=_STATUS_STYLES.get(run.status, "")),
            Text(str(run.iterations)),
            Text(_tokens(run.usage)),
            Text(_cost(run.cost_usd)),
            Text(_duration(run.duration_s)),
            Text(_started(run.started_at)),
        )
    return table


def _run_sections(run: Any) -> list[Any]:
    """The rich renderables of ``namu runs show``: facts, inputs, transcript, answer."""
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    facts = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
    facts.add_column(style="dim")
    facts.add_column(overflow="fold")
    usage = run.usage
    rows = [
        ("agent", run.agent),
        ("artifact", run.artifact or "-"),
        ("session", run.session or "-"),
        ("model", run.model or "-"),
        ("started", f"{_started(run.started_at)} UTC"),
        ("duration", _duration(run.duration_s)),
        ("stop", run.stop or "-"),
        ("iterations", str(run.iterations)),
        ("tool calls", str(len(run.tool_calls))),
        ("usage", f"{usage.input_tokens:,} input, {usage.output_tokens:,} output, "
                  f"{usage.cache_creation_input_tokens:,} cache write, {usage.cache_read_input_tokens:,} cache read"
                  + ("" if usage.complete else " (incomplete: the provider did not report all usage)")),
        ("cost", _cost(run.cost_usd) + (" (the model's price is unknown)" if run.cost_usd is None else "")),
    ]  # fmt: skip
    if run.error:
        rows.append(("error", run.error))
    for name, value in rows:
        facts.add_row(name, Text(value))
    title = Text.assemble(("run ", "bold"), (run.id, "bold"), "  ", (run.status, _STATUS_STYLES.get(run.status, "")))
    sections: list[Any] = [title, Padding(facts, (0, 0, 0, 2), expand=False)]
    if run.inputs:
        inputs = json.dumps(jsonable(dict(run.inputs)), ensure_ascii=False, indent=2)
        sections += ["", Text("inputs", style="bold"), Padding(Text(inputs), (0, 0, 0, 2), expand=False)]
    sections += ["", Text(f"transcript ({len(run.messages)} messages)", style="bold")]
    for message in run.messages:
        sections.append(Padding(_message(message), (0, 0, 0, 2), expand=False))
    if run.answer:
        sections += ["", Text("answer", style="bold"), Padding(Text(run.answer), (0, 0, 0, 2), expand=False)]
    return sections


def _message(message: Any) -> Any:
    """One message: its role, then its text and its tool calls or results, indented."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text

    body = Text()
    if message.content:
        body.append(message.content + "\n")
    for call in message.tool_calls:
        arguments = json.dumps(jsonable(call.arguments), ensure_ascii=False)
        body.append(f"-> {call.name}({arguments})", style="cyan")
        body.append(f"  [{call.id}]\n", style="dim")
    for result in message.tool_results:
        style = "red" if result.is_error else "green"
        body.append(f"<- {result.name}{' error' if result.is_error else ''}", style=style)
        body.append(f" [{result.call_id}]: ", style="dim")
        body.append(result.content + "\n")
    body.rstrip()
    role = Text(message.role, style=_ROLE_STYLES.get(message.role, "bold"))
    return Group(role, Padding(body, (0, 0, 0, 2), expand=False))


def _tokens(usage: Any) -> str:
    return f"{usage.total_tokens:,}" + ("" if usage.complete else "+")


def _cost(cost_usd: float | None) -> str:
    return "?" if cost_usd is None else f"${cost_usd:.4f}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def _started(started_at: str) -> str:
    """``started_at`` (ISO 8601) as ``YYYY-MM-DD HH:MM:SS`` in UTC, or as it is when it
    cannot be read."""
    try:
        moment = datetime.datetime.fromisoformat(started_at)
    except ValueError:
        return started_at
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")
