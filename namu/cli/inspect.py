"""``namu inspect``: show an artifact's passport, signature, tasks and graph, without
importing any of its code."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from namu.cli.errors import EXIT_OK, fail, first_line
from namu.cli.inputs import format_params
from namu.cli.output import out, out_text, render
from namu.cli.targets import existing_file
from namu.errors import ArtifactError

__all__ = ["inspect_command"]


@click.command("inspect", short_help="Show an artifact's passport, tasks and graph.")
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

    existing_file(artifact)
    try:
        proto = read_model(artifact)
    except ArtifactError as exc:
        fail(first_line(exc))
    if onnx_text:
        import onnx

        out(onnx.printer.to_text(proto))
        return EXIT_OK
    text = render(*_sections(artifact, proto), wrap=False)
    out_text("".join(line.rstrip() + "\n" for line in text.splitlines()))  # no padding after the last column
    return EXIT_OK


def _sections(path: str, proto: Any) -> list[Any]:
    """The rich renderables of the listing: passport, signature, tasks, graph."""
    from rich.text import Text

    from namu.ir.printer import count_nodes, format_graph
    from namu.runtime.loader import decode_model

    try:
        model, (signature, passport, table) = decode_model(proto, path)
    except ArtifactError as exc:  # a damaged graph or metadata, or a newer namu's artifact
        fail(first_line(exc))
    facts = _table(
        None,
        ("artifact", str(Path(path))),
        ("workflow", f"{passport.workflow}  ({signature.file})"),
        ("namu", f"{passport.namu_version}  (onnx opset {passport.onnx_opset}, ir_version {model.ir_version})"),
        ("passes", " -> ".join(passport.passes) or "(none)"),
        ("digest", passport.workflow_digest),
        ("size", f"{count_nodes(model)} ops, {len(table.tasks)} tasks, {len(model.functions)} functions"),
    )
    return [
        Text("passport", style="bold"),
        _indented(facts),
        "",
        Text("signature", style="bold"),
        *_signature(signature, list(model.graph.outputs)),
        "",
        Text(f"tasks ({len(table.tasks)})", style="bold"),
        _indented(_task_table(table)),
        "",
        Text("graph", style="bold"),
        Text(format_graph(model), no_wrap=True, overflow="ignore"),  # long lines stay whole
    ]


def _table(headers: tuple[str, ...] | None, *rows: tuple[str, ...]) -> Any:
    """A borderless table of text (never markup), two spaces between columns, with a
    dim header row unless ``headers`` is None."""
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, show_header=headers is not None, header_style="dim", padding=(0, 1), pad_edge=False)
    for header in headers or rows[0]:
        table.add_column(header if headers else "", overflow="fold")
    for row in rows:
        table.add_row(*map(Text, row))
    return table


def _indented(renderable: Any) -> Any:
    from rich.padding import Padding

    return Padding(renderable, (0, 0, 0, 2), expand=False)


def _signature(signature: Any, outputs: list[Any]) -> list[Any]:
    """The one-line Python signature, then a table of the inputs and outputs."""
    from rich.text import Text

    from namu.ir.types import type_of

    if signature.returns == "dict":
        results = [(k, str(type_of(v))) for k, v in zip(signature.return_keys, outputs)]
        returns = "{" + ", ".join(f"{k!r}: {t}" for k, t in results) + "}"
    elif signature.returns == "tuple":
        results = [(f"[{i}]", str(type_of(v))) for i, v in enumerate(outputs)]
        returns = "tuple[" + ", ".join(t for _, t in results) + "]"
    else:
        results = [("", str(type_of(outputs[0])) if outputs else "None")]
        returns = results[0][1]
    params = format_params(signature.params)
    rows = _table(
        ("", "name", "type", "default"),
        *(("input", p.name, p.type, json.dumps(p.default) if p.has_default else "") for p in signature.params),
        *(("output", name, type_, "") for name, type_ in results),
    )
    return [_indented(Text(f"{signature.name}({params}) -> {returns}")), _indented(rows)]


def _task_table(table: Any) -> Any:
    from rich.text import Text

    from namu.ir.metadata import TaskOptions

    if not table.tasks:
        return Text("(no tasks)")
    defaults = TaskOptions().model_dump()
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
    return _table(("key", "task", "file", "digest", "options"), *rows)


def _display_path(file: str) -> str:
    if not file:
        return "?"
    try:
        rel = os.path.relpath(file)
    except ValueError:  # another drive on Windows
        return file
    return rel if not rel.startswith("..") else file
