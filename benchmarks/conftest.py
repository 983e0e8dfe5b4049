"""Benchmark workloads, generated as real Python source so every engine runs the same graph.

Benchmarks are off in the normal test run; run them with::

    python -m pytest benchmarks --benchmark-enable            # pytest-benchmark tables
    python benchmarks/table.py                                 # one table: us/task and ratio to the plain loop

Peers (Dask, Ray, Hamilton, LangGraph) come from the ``bench`` extra; a peer that is not
installed is skipped, never faked.
"""

from __future__ import annotations

import random
from pathlib import Path
from types import ModuleType

import pytest

from namu.runtime.user_code import import_path

#: tasks per scenario (the kernel issue's scenarios use 10,000).
N = 10_000

#: scenario 4: async tasks, each sleeping ``SLEEP_S``, at most ``CAP`` in flight.
SLEEPERS, SLEEP_S, CAP = 1_000, 0.01, 256
#: scenario 4's ideal wall time: ceil(1,000 / 256) = 4 waves of 10 ms.
IDEAL_SLEEP_S = -(-SLEEPERS // CAP) * SLEEP_S
#: scenario 6: items of the large fan-out.
BIG = 1_000_000

TASKS = '''
import asyncio
import time

import namu

def inc_fn(x: int) -> int:
    return x + 1

def add2_fn(a: int, b: int) -> int:
    return a + b

def add3_fn(a: int, b: int, c: int) -> int:
    return a + b + c

def add4_fn(a: int, b: int, c: int, d: int) -> int:
    return a + b + c + d

def total_fn(xs: list[int]) -> int:
    return sum(xs)

def items_fn(n: int) -> list[int]:
    return list(range(n))

def total_star_fn(*xs: int) -> int:
    return sum(xs)

async def nap_fn(x: int) -> int:
    await asyncio.sleep(0.01)
    return x

def sleep_fn(x: int) -> int:
    time.sleep(0.01)
    return x

def count_fn(xs: list[int]) -> int:
    return len(xs)

inc = namu.task(inc_fn)
add2 = namu.task(add2_fn)
add3 = namu.task(add3_fn)
add4 = namu.task(add4_fn)
total = namu.task(total_fn)
items = namu.task(items_fn)
nap = namu.task(nap_fn)
count = namu.task(count_fn)
'''


def random_dag(n: int, seed: int = 7) -> list[tuple[int, list[int]]]:
    """``n`` nodes; node i (i >= 2) reads 2-4 distinct earlier nodes. Nodes 0, 1 are inputs."""
    rng = random.Random(seed)
    nodes: list[tuple[int, list[int]]] = []
    for i in range(2, n + 2):
        k = min(rng.randint(2, 4), i)
        nodes.append((i, rng.sample(range(max(0, i - 64), i), k)))
    return nodes


def _write(directory: Path, name: str, body: str) -> ModuleType:
    path = directory / f"{name}.py"
    if not path.exists():
        path.write_text(TASKS + body)
    return import_path(path)


@pytest.fixture(scope="session")
def workloads(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """One module holding the namu workflows and the plain functions."""
    directory = tmp_path_factory.mktemp("bench")
    chain = "\n".join(["@namu.workflow", "def chain(x: int) -> int:"] + ["    x = inc(x)"] * N + ["    return x", ""])
    fanout = "\n".join(
        ["@namu.workflow", "def fanout(n: int) -> int:", "    ys = [inc(x) for x in items(n)]", "    return total(ys)", ""]
    )
    naps = "\n".join(
        ["@namu.workflow", "def naps(n: int) -> int:", "    ys = [nap(x) for x in items(n)]", "    return count(ys)", ""]
    )
    lines = ["@namu.workflow", "def dag(v0: int, v1: int) -> int:"]
    for i, deps in random_dag(N):
        args = ", ".join(f"v{d}" for d in deps)
        lines.append(f"    v{i} = add{len(deps)}({args})")
    lines += [f"    return v{N + 1}", ""]
    return _write(directory, "namu_bench_workloads", "\n\n".join([chain, fanout, naps, "\n".join(lines)]))
