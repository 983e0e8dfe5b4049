"""Run hooks cost nothing when none is installed: scenario 1's 10,000-task chain with no
hooks, with hooks that need no task event (a fan-out counter: the run prepares the very
plans it prepares without hooks), and with hooks counting every task call (each call is
wrapped to report). Group ``hooks``; the plain loop is the floor::

    python benchmarks/table.py --suite test_hooks.py
"""

from __future__ import annotations

from typing import Any

import pytest

import namu
from benchmarks.conftest import N
from benchmarks.test_scenarios import plain_chain

pytestmark = pytest.mark.timeout(3600)


class FanoutCounter(namu.RunHooks):
    """Needs no task event: task calls stay unwrapped."""

    def __init__(self) -> None:
        self.items = 0

    def on_fanout(self, items: int) -> None:
        self.items += items


class CallCounter(namu.RunHooks):
    """Needs ``task_end``: every task call reports."""

    def __init__(self) -> None:
        self.calls = 0

    def on_task_end(self, call: Any, source: str) -> None:
        self.calls += 1


HOOKS = {"no_hooks": lambda: None, "fanout_hooks": FanoutCounter, "task_hooks": CallCounter}


@pytest.mark.benchmark(group="hooks")
def test_hooks_plain_loop(benchmark, workloads) -> None:
    assert benchmark(plain_chain, workloads) == N


@pytest.mark.benchmark(group="hooks")
@pytest.mark.parametrize("engine", list(HOOKS))
def test_hooks_namu(benchmark, workloads, engine: str) -> None:
    art = namu.compile(workloads.chain)
    hooks = HOOKS[engine]()
    assert benchmark(lambda: art.run(0, hooks=hooks).value) == N
    if isinstance(hooks, CallCounter):
        assert hooks.calls and hooks.calls % N == 0
