"""Kernel issue scenarios 1-6, namu side by side with the floor and the peers.

Each benchmark asserts its engine computed the same answer as the floor, outside the
timed region. Groups: ``chain``, ``fanout``, ``dag`` (the plain loop is the floor),
``sleep`` (``asyncio.gather`` under a semaphore), ``context_1k`` and ``context_100k``
(copying a dict), ``fanout_1m`` (the plain loop; peak memory in ``extra_info``).
``extra_info["tasks"]`` is the number of tasks (or operations) one timed run does when
it is not ``N``; ``benchmarks/table.py`` divides by it.
"""

from __future__ import annotations

from typing import Any

import asyncio
import json
import subprocess
import sys
from collections import ChainMap
from pathlib import Path

import pytest

import namu
from benchmarks import peers
from benchmarks.conftest import BIG, CAP, IDEAL_SLEEP_S, SLEEPERS, N, random_dag

SLOW = {"rounds": 3, "iterations": 1, "warmup_rounds": 1}
#: Ray takes milliseconds per dependent task: two rounds, no warm-up.
RAY = {"rounds": 2, "iterations": 1, "warmup_rounds": 0}

# Peers take minutes on these graphs; the unit-test timeout does not apply here.
pytestmark = pytest.mark.timeout(3600)


# ---------------------------------------------------------------------- scenario 1: chain
def plain_chain(fns: Any) -> int:
    inc, x = fns.inc_fn, 0
    for _ in range(N):
        x = inc(x)
    return x


@pytest.mark.benchmark(group="chain")
def test_chain_plain_loop(benchmark, workloads) -> None:
    assert benchmark(plain_chain, workloads) == N


@pytest.mark.benchmark(group="chain")
@pytest.mark.parametrize("executor", ["kernel", "reference"])
def test_chain_namu(benchmark, workloads, executor: str) -> None:
    art = namu.compile(workloads.chain)
    assert benchmark(lambda: art.run(0, executor=executor).value) == N


def dask_get(scheduler: str) -> Any:
    peers.need("dask")
    import dask
    import dask.threaded

    return dask.get if scheduler == "sync" else dask.threaded.get


@pytest.mark.benchmark(group="chain")
@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_chain_dask(benchmark, workloads, scheduler: str) -> None:
    get, graph = dask_get(scheduler), peers.dask_chain_graph(workloads)
    assert benchmark.pedantic(lambda: get(graph, f"x{N}"), **SLOW) == N


@pytest.mark.benchmark(group="chain")
def test_chain_ray(benchmark, workloads) -> None:
    ray = peers.need("ray")

    with peers.ray_remote(workloads) as remote:

        def run() -> int:
            x: Any = 0
            for _ in range(N):
                x = remote["inc"].remote(x)
            return ray.get(x)

        assert benchmark.pedantic(run, **RAY) == N


@pytest.mark.benchmark(group="chain")
def test_chain_hamilton(benchmark, workloads, tmp_path) -> None:
    dr = peers.deep(lambda: peers.hamilton_driver(tmp_path, "chain", workloads))()
    result = benchmark.pedantic(peers.deep(lambda: dr.execute([f"n{N}"], inputs={"n0": 0})[f"n{N}"]), **SLOW)
    assert int(result) == N


@pytest.mark.benchmark(group="chain")
def test_chain_langgraph(benchmark, workloads) -> None:
    app = peers.langgraph_chain(workloads)
    result = benchmark.pedantic(lambda: app.invoke({"x": 0}, {"recursion_limit": N + 10})["x"], **SLOW)
    assert result == N


# ---------------------------------------------------------------------- scenario 2: fan-out
def plain_fanout(fns: Any) -> int:
    return fns.total_fn([fns.inc_fn(x) for x in fns.items_fn(N)])


EXPECTED_FANOUT = N * (N + 1) // 2


@pytest.mark.benchmark(group="fanout")
def test_fanout_plain_loop(benchmark, workloads) -> None:
    assert benchmark(plain_fanout, workloads) == EXPECTED_FANOUT


@pytest.mark.benchmark(group="fanout")
@pytest.mark.parametrize("executor", ["kernel", "reference"])
def test_fanout_namu(benchmark, workloads, executor: str) -> None:
    art = namu.compile(workloads.fanout)
    assert benchmark(lambda: art.run(N, executor=executor).value) == EXPECTED_FANOUT


@pytest.mark.benchmark(group="fanout")
@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_fanout_dask(benchmark, workloads, scheduler: str) -> None:
    get, graph = dask_get(scheduler), peers.dask_fanout_graph(workloads)
    assert benchmark.pedantic(lambda: get(graph, "result"), **SLOW) == EXPECTED_FANOUT


@pytest.mark.benchmark(group="fanout")
def test_fanout_ray(benchmark, workloads) -> None:
    ray = peers.need("ray")

    with peers.ray_remote(workloads) as remote:

        def run() -> int:
            refs = [remote["inc"].remote(x) for x in workloads.items_fn(N)]
            return ray.get(remote["total"].remote(*refs))

        assert benchmark.pedantic(run, **RAY) == EXPECTED_FANOUT


@pytest.mark.benchmark(group="fanout")
def test_fanout_hamilton(benchmark, workloads, tmp_path) -> None:
    dr = peers.hamilton_driver(tmp_path, "fanout", workloads)
    result = benchmark.pedantic(peers.deep(lambda: dr.execute(["result"])["result"]), **SLOW)
    assert int(result) == EXPECTED_FANOUT


# ---------------------------------------------------------------------- scenario 3: random DAG
DAG = random_dag(N)


def plain_dag(fns: Any) -> int:
    adders = {2: fns.add2_fn, 3: fns.add3_fn, 4: fns.add4_fn}
    steps = [(adders[len(deps)], deps) for _, deps in DAG]
    values = [1, 2]
    for fn, deps in steps:
        values.append(fn(*[values[d] for d in deps]))
    return values[-1]


@pytest.fixture(scope="module")
def dag_expected(workloads) -> int:
    return plain_dag(workloads)


@pytest.mark.benchmark(group="dag")
def test_dag_plain_loop(benchmark, workloads, dag_expected) -> None:
    assert benchmark(plain_dag, workloads) == dag_expected


@pytest.mark.benchmark(group="dag")
@pytest.mark.parametrize("executor", ["kernel", "reference"])
def test_dag_namu(benchmark, workloads, dag_expected, executor: str) -> None:
    art = namu.compile(workloads.dag)
    assert benchmark(lambda: art.run(1, 2, executor=executor).value) == dag_expected


@pytest.mark.benchmark(group="dag")
@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_dag_dask(benchmark, workloads, dag_expected, scheduler: str) -> None:
    get, graph = dask_get(scheduler), peers.dask_dag_graph(workloads)
    result = benchmark.pedantic(lambda: get(graph, f"v{N + 1}"), **SLOW)
    assert result == dag_expected


@pytest.mark.benchmark(group="dag")
def test_dag_ray(benchmark, workloads, dag_expected) -> None:
    ray = peers.need("ray")

    with peers.ray_remote(workloads) as remote:

        def run() -> int:
            refs: list[Any] = [1, 2]
            for _, deps in DAG:
                refs.append(remote[f"add{len(deps)}"].remote(*[refs[d] for d in deps]))
            return ray.get(refs[-1])

        assert benchmark.pedantic(run, **RAY) == dag_expected


@pytest.mark.benchmark(group="dag")
def test_dag_hamilton(benchmark, workloads, dag_expected, tmp_path) -> None:
    dr = peers.hamilton_driver(tmp_path, "dag", workloads)
    result = benchmark.pedantic(peers.deep(lambda: dr.execute([f"v{N + 1}"], inputs={"v0": 1, "v1": 2})[f"v{N + 1}"]), **SLOW)
    assert int(result) == dag_expected


# ---------------------------------------------------------------------- scenario 4: async sleeps
# 1,000 tasks each awaiting a 10 ms sleep, at most CAP (256) in flight: ideally 4 waves, 40 ms.
SLEEP = {"rounds": 5, "iterations": 1, "warmup_rounds": 1}


def sleep_info(benchmark: Any) -> None:
    benchmark.extra_info.update(tasks=SLEEPERS, ideal_s=IDEAL_SLEEP_S)


async def gather_naps(fns: Any) -> int:
    cap = asyncio.Semaphore(CAP)

    async def one(x: int) -> int:
        async with cap:
            return await fns.nap_fn(x)

    return fns.count_fn(await asyncio.gather(*[one(x) for x in fns.items_fn(SLEEPERS)]))


@pytest.mark.benchmark(group="sleep")
def test_sleep_asyncio_gather(benchmark, workloads) -> None:
    sleep_info(benchmark)
    assert benchmark.pedantic(lambda: asyncio.run(gather_naps(workloads)), **SLEEP) == SLEEPERS


@pytest.mark.benchmark(group="sleep")
def test_sleep_namu(benchmark, workloads) -> None:
    # Artifact.run has no concurrency keyword yet: the kernel's default cap is CAP (256).
    sleep_info(benchmark)
    art = namu.compile(workloads.naps)
    assert benchmark.pedantic(lambda: art.run(SLEEPERS).value, **SLEEP) == SLEEPERS


@pytest.mark.benchmark(group="sleep")
def test_sleep_langgraph(benchmark, workloads) -> None:
    sleep_info(benchmark)
    app = peers.langgraph_naps(workloads)

    def run() -> int:
        return len(asyncio.run(app.ainvoke({"n": SLEEPERS, "ys": []}, {"max_concurrency": CAP}))["ys"])

    assert benchmark.pedantic(run, **SLEEP) == SLEEPERS


@pytest.mark.benchmark(group="sleep")
def test_sleep_ray(benchmark, workloads) -> None:
    ray = peers.need("ray")

    sleep_info(benchmark)
    with peers.ray_sleeper(workloads) as sleeper:
        ray.get(sleeper.nap.remote(0))  # the actor is up before the clock starts

        def run() -> int:
            return workloads.count_fn(ray.get([sleeper.nap.remote(x) for x in workloads.items_fn(SLEEPERS)]))

        assert benchmark.pedantic(run, **SLEEP) == SLEEPERS


@pytest.mark.benchmark(group="sleep")
def test_sleep_dask_threads(benchmark, workloads) -> None:
    # Dask runs no coroutines: its equivalent is a blocking 10 ms sleep on CAP threads.
    sleep_info(benchmark)
    get, graph = dask_get("threads"), peers.dask_sleep_graph(workloads, SLEEPERS)
    assert benchmark.pedantic(lambda: get(graph, "result", num_workers=CAP), **SLEEP) == SLEEPERS


# ---------------------------------------------------------------------- scenario 5: context
# One operation: fork a context of `size` entries, set one key, read it back.
CONTEXT_SIZES = {"1k": 1_000, "100k": 100_000}


def context_ops(size: int, copies_dict: bool) -> int:
    """Operations per timed run: a dict copy of 100,000 entries takes milliseconds."""
    return 50 if copies_dict and size >= 100_000 else 1_000


def filled_context(size: int) -> Any:
    from namu._kernel import Context

    ctx = Context()
    for i in range(size):
        ctx = ctx.set(f"k{i}", i)
    return ctx


@pytest.mark.parametrize("label", list(CONTEXT_SIZES))
@pytest.mark.parametrize("engine", ["namu_context", "dict_copy", "chainmap"])
def test_context(benchmark, label: str, engine: str) -> None:
    size = CONTEXT_SIZES[label]
    benchmark.group = f"context_{label}"
    ops = context_ops(size, engine == "dict_copy")
    benchmark.extra_info.update(tasks=ops, unit="ns / op")
    keys = [f"new{i}" for i in range(ops)]
    if engine == "namu_context":
        ctx = filled_context(size)

        def run() -> int:
            got = 0
            for i, key in enumerate(keys):
                got += ctx.fork().set(key, i)[key]
            return got

    elif engine == "dict_copy":
        d = {f"k{i}": i for i in range(size)}

        def run() -> int:
            got = 0
            for i, key in enumerate(keys):
                d2 = d.copy()
                d2[key] = i
                got += d2[key]
            return got

    else:
        d = {f"k{i}": i for i in range(size)}

        def run() -> int:
            got = 0
            for i, key in enumerate(keys):
                got += ChainMap({key: i}, d)[key]
            return got

    assert benchmark.pedantic(run, rounds=20 if ops < 1_000 else 50, iterations=1, warmup_rounds=2) == ops * (ops - 1) // 2


# ---------------------------------------------------------------------- scenario 6: 1M fan-out
# total([inc(x) for x in range(1_000_000)]): wall time here, peak memory in a fresh process.
EXPECTED_BIG = BIG * (BIG + 1) // 2
#: Dask at a tenth of the size: a 1,000,000-key task graph takes minutes and gigabytes.
DASK_BIG = BIG // 10


def peak_memory(engine: str, n: int, fns: Any) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.peak_memory", engine, str(n), fns.__file__],
        cwd=root, capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


def big_info(benchmark: Any, engine: str, n: int, fns: Any) -> None:
    mem = peak_memory(engine, n, fns)
    benchmark.extra_info.update(tasks=n, peak_mb=round(mem["peak_mb"], 1), baseline_mb=round(mem["baseline_mb"], 1))


@pytest.mark.benchmark(group="fanout_1m")
def test_fanout_1m_plain_loop(benchmark, workloads) -> None:
    big_info(benchmark, "plain_loop", BIG, workloads)
    run = lambda: workloads.total_fn([workloads.inc_fn(x) for x in workloads.items_fn(BIG)])  # noqa: E731
    assert benchmark.pedantic(run, **SLOW) == EXPECTED_BIG


@pytest.mark.benchmark(group="fanout_1m")
def test_fanout_1m_namu(benchmark, workloads) -> None:
    big_info(benchmark, "namu", BIG, workloads)
    art = namu.compile(workloads.fanout)
    assert benchmark.pedantic(lambda: art.run(BIG).value, **SLOW) == EXPECTED_BIG


@pytest.mark.benchmark(group="fanout_1m")
def test_fanout_1m_dask_sync_100k(benchmark, workloads) -> None:
    peers.need("dask")
    import dask

    big_info(benchmark, "dask_sync", DASK_BIG, workloads)
    run = lambda: dask.get(peers.dask_big_fanout_graph(workloads, DASK_BIG), "result")  # noqa: E731
    assert benchmark.pedantic(run, **SLOW) == DASK_BIG * (DASK_BIG + 1) // 2
