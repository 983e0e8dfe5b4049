"""A tiny frontend, the example of docs/architecture.md ("How to add a frontend").

A ``.chain`` file names one ``@namu.task`` per line, as ``module:function``; the
pipeline passes its input ``x`` through each task in turn. Blank lines and ``#``
comments are skipped::

    # pipeline.chain
    tests.frontend.chain_frontend:double
    tests.frontend.chain_frontend:increment

The frontend parses the file into a :class:`Chain` (``load``) and builds the IR with an
:class:`~namu.frontend.builder.IRBuilder` (``lower``): a line number is its source
position, so every node is spanned at its line and errors point there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
from pathlib import Path
from typing import NoReturn

import namu
from namu.errors import SourceError, WorkflowSyntaxError
from namu.frontend.builder import IRBuilder, Scope
from namu.frontend.context import CompileContext
from namu.frontend.registry import Lowered
from namu.ir.metadata import Parameter, Signature
from namu.ir.types import from_annotation


@namu.task
def double(x: int) -> int:
    return 2 * x


@namu.task
def increment(x: int) -> int:
    return x + 1


@dataclasses.dataclass(frozen=True)
class Chain:
    """A parsed ``.chain`` file: its tasks to call in order, each with its line number."""

    name: str
    file: str
    lines: tuple[str, ...]
    steps: tuple[tuple[int, str], ...]

    def span(self, at: int) -> str:
        return f"{self.file}:{at}:1"

    def fail(self, at: int, message: str) -> NoReturn:
        line = self.lines[at - 1] if 0 < at <= len(self.lines) else ""
        raise WorkflowSyntaxError(message, filename=self.file, lineno=at, col_offset=0, source_line=line)


class ChainFrontend:
    def load(self, path: Path, name: str | None) -> Chain:
        if name is not None:
            raise SourceError(f"{path} holds one pipeline; name none")
        lines = tuple(path.read_text().splitlines())
        steps = tuple(
            (number, line.strip())
            for number, line in enumerate(lines, start=1)
            if line.strip() and not line.lstrip().startswith("#")
        )
        return Chain(name=path.stem, file=str(path.resolve()), lines=lines, steps=steps)

    def lower(self, chain: Chain) -> Lowered:
        builder = IRBuilder(CompileContext(), chain)  # a Chain is its own SourceInfo
        if not chain.steps:
            chain.fail(1, "a chain calls at least one task")
        tasks = [(at, _task(chain, at, ref)) for at, ref in chain.steps]
        scope = Scope({})
        first = tasks[0][1]
        param = next(iter(first.signature.parameters))
        x_type = from_annotation(inspect.get_annotations(first.fn, eval_str=True).get(param, inspect.Parameter.empty))
        x = builder.graph_input(scope, "x", x_type)
        value = x
        for at, task in tasks:
            value = builder.call_task(scope, task, [value], at)
        graph = builder.main_graph(scope, [x], [value], chain.name)
        signature = Signature(name=chain.name, file=chain.file, params=[Parameter(name="x", type=str(x_type))])
        digest = "sha256:" + hashlib.sha256("\n".join(chain.lines).encode()).hexdigest()
        return builder.ctx.lowered(graph, signature, digest)


def _task(chain: Chain, at: int, ref: str) -> namu.Task:
    """The ``@namu.task`` that ``module:function`` names, or an error at line ``at``."""
    module_name, _, attribute = ref.partition(":")
    try:
        task = getattr(importlib.import_module(module_name), attribute, None)
    except (ImportError, ValueError) as exc:  # ValueError: an empty module name
        chain.fail(at, f"cannot import {module_name}: {exc}")
    if not isinstance(task, namu.Task):
        chain.fail(at, f"{ref} is not a @namu.task")
    return task


FRONTEND = ChainFrontend()
