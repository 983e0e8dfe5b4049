"""Kernel issue scenarios 1-3, namu side by side with the plain loop and the peers.

Each benchmark asserts its engine computed the same answer as the plain loop, outside
the timed region. Groups: ``chain``, ``fanout``, ``dag``; pytest-benchmark's table shows
each engine's time relative to the fastest in its group (the plain loop is the floor).
"""

from __future__ import annotations

from typing import Any

import pytest

import namu
from benchmarks import peers
from benchmarks.conftest import N, random_dag

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
    import ray

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
    import ray

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
    import ray

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
