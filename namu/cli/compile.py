"""``namu compile``: compile a workflow into an ONNX artifact; list the pass pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from namu.cli.errors import EXIT_OK, fail, joined
from namu.cli.output import out
from namu.cli.targets import compile_workflow, load_source, slot_bindings, source_name
from namu.errors import OutputPathError

__all__ = ["compile_command"]


@click.command("compile", short_help="Compile a workflow or an agent into an ONNX artifact.")
@click.argument("target", metavar="(FILE.py[:WORKFLOW] | AGENT.yaml)", required=False)
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
@click.option("--fanout-deadline-s", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Federated: how long a round's requests to clients may take (default 300); the round then "
              "closes with the answers it has.")
@click.option("--min-replies", type=click.IntRange(min=0), default=None, metavar="N",
              help="Federated: answers a round needs by its deadline (default 1); fewer fail the run naming the missing peers.")
@click.option("--peer-max-failures", type=click.IntRange(min=1), default=None, metavar="N",
              help="Federated: failures in a row after which a peer is not asked until it speaks again (default 3).")
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
    fanout_deadline_s: float | None,
    min_replies: int | None,
    peer_max_failures: int | None,
) -> int:
    """Compile a workflow into an ONNX artifact.

    FILE.py is imported (as `python FILE.py` would, with its directory on sys.path)
    and WORKFLOW is the name of a @namu.workflow defined in it. WORKFLOW may be left
    out when the file defines one workflow, or one that no other workflow calls.
    AGENT.yaml is an agent file (docs/agents.md): its ReAct loop is lowered into the
    IR, its LLM and tools are role slots (--slot NAME.llm=FILE.py:TASK rebinds one).
    A file of another suffix is read by the frontend registered for it.
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
      namu compile agents/calc.yaml -o calc.onnx --dump-after insert-resilience-gates
      namu compile agent.py --slot llm=ask_claude
      namu compile fedavg.py --fanout-deadline-s 30 --min-replies 8
    """
    from namu.ir.printer import count_nodes
    from namu.passes import get, pipeline
    from namu.passes.config import CompileConfig
    from namu.runtime.atomic_write import resolve_output

    level = int(opt_level)
    for name in (*disabled, *(d for d in dump_after if d != "all")):
        try:
            get(name)
        except KeyError as exc:
            fail(joined(exc.args[0]))
    try:
        names = pipeline(level, disabled)
    except ValueError as exc:
        fail(str(exc))
    if print_passes:
        _print_passes(names, level)
        return EXIT_OK
    if target is None:
        fail("missing FILE.py[:WORKFLOW] (or use --print-passes)")
    for name in dump_after:
        if name != "all" and name not in names:
            fail(f"--dump-after {name}: the pass does not run at -O{level} with these options")
    source = load_source(target)
    workflow = source_name(source, target)
    out_path = Path(output) if output else Path.cwd() / f"{workflow}.onnx"
    try:
        resolve_output(out_path)  # a device, FIFO or directory is refused before any work
    except OutputPathError as exc:
        fail(str(exc))
    dump_path = Path(dump_dir) if dump_dir else Path.cwd() / f"{workflow}.ir"
    after = _ir_dumper(dump_path, set(dump_after)) if dump_after else None
    wire = {"fanout_deadline_s": fanout_deadline_s, "min_replies": min_replies, "peer_max_failures": peer_max_failures}
    config = CompileConfig(**{k: v for k, v in wire.items() if v is not None})
    art = compile_workflow(source, workflow, opt_level=level, disable=disabled, slots=slot_bindings(slots, source),
                           after_pass=after, config=config)
    try:
        written = art.save(out_path)
    except OutputPathError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {out_path}: {exc.strerror or exc}")
    if timings:
        _print_timings(art.pass_records)
    if dump_after:
        out(f"IR dumps -> {dump_path}")
    out(f"compiled {workflow}: {count_nodes(art.model)} ops, {len(art.task_table.tasks)} tasks -> {written}")
    return EXIT_OK


def _print_passes(names: Sequence[str], level: int) -> None:
    from namu.passes import get

    width = max(len(n) for n in names)
    out(f"pipeline at -O{level} ({len(names)} passes):")
    for i, name in enumerate(names, 1):
        info = get(name)
        tag = "required" if info.required else f"-O{info.level}"
        out(f"{i:3d}. {name:<{width}}  {tag:<8}  {info.summary}")


def _print_timings(records: Sequence[Any]) -> None:
    width = max((len(r.name) for r in records), default=4)
    out(f"{'pass':<{width}}  {'time ms':>9}  {'runs':>4}  {'changes':>7}")
    for r in records:
        out(f"{r.name:<{width}}  {r.seconds * 1000:9.2f}  {r.runs:4d}  {r.changes:7d}")
    total = sum(r.seconds for r in records)
    runs = sum(r.runs for r in records)
    out(f"{'total':<{width}}  {total * 1000:9.2f}  {runs:4d}  {sum(r.changes for r in records):7d}")


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
            fail(str(exc))
        except OSError as exc:
            fail(f"cannot write IR dump into {directory}: {exc.strerror or exc}")

    return dump
