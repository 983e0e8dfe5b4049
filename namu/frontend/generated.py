"""Reference text generated from the code into a docs page, between two markers, so the
page cannot go stale (a test regenerates it and compares). Used by the workflow and the
agent file references (:mod:`namu.frontend.reference`, :mod:`namu.frontend.agents.docs`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["command", "splice"]


def splice(page: str, markers: tuple[str, str], text: str) -> str:
    """``page`` with what lies between ``markers`` replaced by ``text``."""
    start, end = markers
    head, _, rest = page.partition(start)
    _, _, tail = rest.partition(end)
    return f"{head}{start}\n\n{text}\n{end}{tail}"


def command(markers: tuple[str, str], render: Callable[[], str]) -> None:
    """``--write PAGE``: splice ``render()`` into the page file; no argument: print it."""
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        path = Path(sys.argv[2])
        path.write_text(splice(path.read_text(), markers, render()))
    else:
        sys.stdout.write(render())
