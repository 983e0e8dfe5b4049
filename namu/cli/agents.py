"""The agent side of the command line: ``namu run AGENT.yaml`` (and an agent's
artifact), ``namu validate`` and ``namu schema agent``.

An agent's run takes its user message from ``-i/--input TEXT`` (``NAME=VALUE`` sets a
template variable instead, when NAME is one), prints the answer (``--stream``: as it
arrives), and records the run in the run history (``namu runs``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from namu.cli.errors import EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, fail
from namu.cli.output import json_document, jsonable, out
from namu.errors import (
    AgentLimitError,
    AgentSpecError,
    InputError,
    NamuError,
    TaskError,
    first_line,
)

__all__ = ["agent_inputs", "is_agent_artifact", "run_agent", "schema_command", "spec_error_line", "validate_command"]

AGENT_SUFFIXES = (".yaml", ".yml")


def spec_error_line(exc: AgentSpecError) -> str:
    """An invalid agent file's error as one line: the first problem, and how many more."""
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    more = len(lines) - 1
    return lines[0] + (f" (and {more} more problem{'s' if more > 1 else ''}: `namu validate {exc.path}` lists them)" if more and exc.path else "")


def is_agent_artifact(art: Any) -> bool:
    """Whether the artifact ``art`` is an agent's (its result is made by ``namu.AgentFinish``)."""
    outputs = art.model.graph.outputs
    producer = outputs[0].producer() if len(outputs) == 1 else None
    return producer is not None and producer.op_type == "AgentFinish"


def agent_inputs(texts: Sequence[str], inputs_file: str | None, signature: Any) -> dict[str, Any]:
    """An agent's inputs: each ``-i TEXT`` is the user message, unless it is
    ``NAME=VALUE`` naming a template variable (or ``input``); ``--inputs FILE`` is a
    JSON object of them.

    Raises:
        CliError: two user messages, an unknown name in the file, or a bad file.
    """
    names = {p.name for p in signature.params}
    values: dict[str, Any] = {}
    if inputs_file is not None:
        from namu.cli.inputs import parse_inputs

        values = parse_inputs((), inputs_file, signature)
    message: str | None = None
    for text in texts:
        name, sep, value = text.partition("=")
        name = name.strip()
        if sep and name in names:
            values[name] = value  # every input of an agent is text: the value as written
        elif message is not None:
            fail("the user message is given twice (-i TEXT); set a template variable with -i NAME=VALUE")
        else:
            message = text
    if message is not None:
        if "input" in values:
            fail("the user message is given twice (-i TEXT and input=...)")
        values["input"] = message
    return values


def run_agent(
    art: Any,
    target: str,
    kwargs: dict[str, Any],
    *,
    as_json: bool,
    stream: bool,
    session: str | None,
    history: str | None,
    options: dict[str, Any],
) -> int:
    """Run an agent artifact and print its answer (``--json``: one document).

    Returns:
        The exit code: 0, or 1 when the run failed or a limit ended it (the reason on one line).
    """
    from namu.runtime.llm.react import EVENT_SINK
    from namu.runtime.llm.recording import recording

    token = EVENT_SINK.set(_StreamPrinter() if stream else None)
    try:
        with recording(history=history, session=session, artifact=target):
            result = art.with_options(**options).run(**kwargs).value
    except InputError as exc:
        fail(first_line(exc))
    except AgentLimitError as exc:
        fail(first_line(exc), EXIT_RUN_FAILED)
    except TaskError as exc:
        cause = exc.__cause__
        if isinstance(cause, AgentLimitError):
            fail(first_line(cause), EXIT_RUN_FAILED)
        if isinstance(cause, NamuError):
            fail(f"{type(cause).__name__}: {first_line(cause, mark_more=True)} ({exc.span})", EXIT_RUN_FAILED)
        fail(first_line(exc, mark_more=True), EXIT_RUN_FAILED)
    except NamuError as exc:
        fail(f"{type(exc).__name__}: {first_line(exc, mark_more=True)}", EXIT_RUN_FAILED)
    finally:
        EVENT_SINK.reset(token)
    if as_json:
        document = result.to_json()
        document = {"value": document.pop("answer"), **document}
        out(json_document(jsonable(document)), nl=False)
    elif stream:
        out("")  # the answer was printed as it arrived
    else:
        out(result.answer)
    if result.stop in ("max_tokens", "refusal"):
        click.echo(click.style(f"note: the model stopped with {result.stop}", fg="yellow"), err=True)
    return EXIT_OK


class _StreamPrinter:
    """``--stream``: the answer's text on stdout as it arrives, tool calls on stderr."""

    def __call__(self, event: Any) -> None:
        kind = event.kind
        if kind == "text_delta":
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif kind == "tool_call":
            args = json.dumps(event.call.arguments, ensure_ascii=False)
            click.echo(click.style(f"\n-> {event.call.name}({args})", dim=True), err=True)
        elif kind == "tool_result":
            mark = "!!" if event.result.is_error else "<-"
            click.echo(click.style(f"{mark} {first_line(event.result.content)[:200]}", dim=True), err=True)


def dry_run(target: Any, kwargs: dict[str, Any], as_json: bool) -> int:
    """``--dry-run``: the plan of the agent's first request, made without any network
    call. ``target`` is an agent's artifact, or an :class:`~namu.frontend.agents.agent.Agent`
    (its file, not compiled: no onnx is imported)."""
    from namu.runtime.llm.plan import dry_run_plan, plan_of

    try:
        if hasattr(target, "source"):
            from namu.frontend.agents.config import agent_json, llm_json, tools_json

            source = target.source
            plan = plan_of(agent_json(source), llm_json(source), [json.loads(e) for e in tools_json(source)], kwargs)
        else:
            plan = dry_run_plan(target, kwargs)
    except (InputError, AgentSpecError) as exc:
        fail(first_line(exc))
    if as_json:
        out(json_document(jsonable(plan)), nl=False)
        return EXIT_OK
    from rich.table import Table

    from namu.cli.output import out_text, render

    llm = plan["llm"]
    head = Table.grid(padding=(0, 2))
    head.add_row("agent", plan["agent"])
    head.add_row("model", f"{llm['provider']}/{llm['model']}  (base_url {llm['base_url'] or 'default'})")
    head.add_row("limits", ", ".join(f"{k}={v}" for k, v in plan["limits"].items() if v is not None))
    head.add_row("first request", f"~{plan['estimated_input_tokens']} input tokens (estimated, no tokenizer)")
    cost = plan["estimated_cost_usd"]
    head.add_row("estimated cost", "unknown (no price for this model)" if cost is None else f"${cost:.6f} at most for the first call")
    tools = Table("tool", "description", "input schema", title="tools", title_justify="left")
    for tool in plan["tools"]:
        tools.add_row(tool["name"], tool["description"], json.dumps(tool["input_schema"]))
    for note in plan["notes"]:
        tools.caption = note
    out_text(render(head, tools))
    return EXIT_OK


@click.command("validate", short_help="Check agent files.")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
def validate_command(files: tuple[str, ...]) -> int:
    """Check agent files: keys, types, templates and tools, as `namu run` would.

    Prints "ok: FILE" per valid file; stops at the first invalid one with every
    problem it has, each as FILE:LINE:COL: message, and exit code 2.

    \b
    Examples:
      namu validate agents/*.yaml
      namu validate calc.yaml && namu run calc.yaml -i "What is 25 * 47?"
    """
    from namu.frontend.agents.source import load_agent

    for file in files:
        try:
            load_agent(file)
        except AgentSpecError as exc:
            for line in str(exc).splitlines():
                click.echo(f"error: {line}", err=True)
            return EXIT_USAGE
        out(f"ok: {file}")
    return EXIT_OK


@click.command("schema", short_help="Print the JSON Schema of a file format.")
@click.argument("kind", type=click.Choice(["agent"]))
def schema_command(kind: str) -> int:
    """Print the JSON Schema of a file format, for editors to complete and check files.

    \b
    Examples:
      namu schema agent > agent.schema.json
      # VS Code (YAML extension): "yaml.schemas": {"agent.schema.json": "agents/*.yaml"}
    """
    from namu.frontend.agents.spec import agent_json_schema

    out(json.dumps(agent_json_schema(), indent=2))
    return EXIT_OK
