"""Build the benchmark graphs for each peer engine (imported lazily; missing peers skip)."""

from __future__ import annotations

import contextlib
import operator
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import pytest

from benchmarks.conftest import CAP, N, random_dag
from namu.runtime.user_code import import_path


def need(module: str) -> ModuleType:
    """Import a peer or skip the benchmark (a missing peer is reported, never faked)."""
    return pytest.importorskip(module)


# ---------------------------------------------------------------------- Dask
def dask_chain_graph(fns: Any) -> dict[str, Any]:
    """A low-level dask task graph (dict of key -> task tuple): dask's fastest interface.

    (``dask.delayed`` chains rebuild their graph at every step: building 10,000 of them
    takes tens of seconds, which would measure graph construction, not scheduling.)
    """
    graph: dict[str, Any] = {"x0": 0}
    for i in range(1, N + 1):
        graph[f"x{i}"] = (fns.inc_fn, f"x{i - 1}")
    return graph


def dask_fanout_graph(fns: Any) -> dict[str, Any]:
    graph: dict[str, Any] = {f"y{i}": (fns.inc_fn, i) for i in range(N)}
    graph["result"] = (fns.total_fn, [f"y{i}" for i in range(N)])
    return graph


def dask_dag_graph(fns: Any) -> dict[str, Any]:
    """A low-level dask task graph (dict of key -> task tuple) for the random DAG."""
    adders = {2: fns.add2_fn, 3: fns.add3_fn, 4: fns.add4_fn}
    graph: dict[str, Any] = {"v0": 1, "v1": 2}
    for i, deps in random_dag(N):
        graph[f"v{i}"] = (adders[len(deps)], *[f"v{d}" for d in deps])
    return graph


def dask_sleep_graph(fns: Any, n: int) -> dict[str, Any]:
    """``n`` tasks sleeping 10 ms (``time.sleep``: Dask runs no coroutines), then a count."""
    graph: dict[str, Any] = {f"y{i}": (fns.sleep_fn, i) for i in range(n)}
    graph["result"] = (fns.count_fn, [f"y{i}" for i in range(n)])
    return graph


def dask_big_fanout_graph(fns: Any, n: int) -> dict[str, Any]:
    graph: dict[str, Any] = {f"y{i}": (fns.inc_fn, i) for i in range(n)}
    graph["result"] = (fns.total_fn, [f"y{i}" for i in range(n)])
    return graph


# ---------------------------------------------------------------------- Hamilton
def hamilton_driver(directory: Path, kind: str, fns: ModuleType) -> Any:
    """A Hamilton driver over a generated module with one function per node.

    Hamilton makes a node of every public function of the module, so the workload's
    functions are imported under private (underscore) names.
    """
    need("hamilton")
    from hamilton import driver

    names = ("inc_fn", "add2_fn", "add3_fn", "add4_fn", "total_fn")
    lines = [f"from {fns.__name__} import " + ", ".join(f"{n} as _{n}" for n in names), ""]
    if kind == "chain":
        for i in range(1, N + 1):
            lines.append(f"def n{i}(n{i - 1}: int) -> int:\n    return _inc_fn(n{i - 1})\n")
    elif kind == "fanout":
        for i in range(N):
            lines.append(f"def y{i}() -> int:\n    return _inc_fn({i})\n")
        params = ", ".join(f"y{i}: int" for i in range(N))
        values = ", ".join(f"y{i}" for i in range(N))
        lines.append(f"def result({params}) -> int:\n    return _total_fn([{values}])\n")
    else:
        for i, deps in random_dag(N):
            params = ", ".join(f"v{d}: int" for d in deps)
            args = ", ".join(f"v{d}" for d in deps)
            lines.append(f"def v{i}({params}) -> int:\n    return _add{len(deps)}_fn({args})\n")
    path = directory / f"hamilton_{kind}.py"
    path.write_text("\n".join(lines))
    module = import_path(path)
    return driver.Builder().with_modules(module).build()


# ---------------------------------------------------------------------- LangGraph
def langgraph_chain(fns: Any) -> Any:
    need("langgraph")
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    class State(TypedDict):
        x: int

    def step(state: State) -> dict[str, int]:
        return {"x": fns.inc_fn(state["x"])}

    graph = StateGraph(State)
    for i in range(N):
        graph.add_node(f"n{i}", step)
    graph.add_edge(START, "n0")
    for i in range(N - 1):
        graph.add_edge(f"n{i}", f"n{i + 1}")
    graph.add_edge(f"n{N - 1}", END)
    return graph.compile()


def langgraph_naps(fns: Any) -> Any:
    """A fan-out by ``Send``: one ``nap`` node run per item, results gathered by a reducer.

    The concurrency cap is LangGraph's ``max_concurrency`` run option.
    """
    need("langgraph")
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Send

    class State(TypedDict):
        n: int
        ys: Annotated[list[int], operator.add]

    # LangGraph resolves annotations against this module's globals (hence the
    # module-level imports of Annotated and operator).
    async def nap(item: dict[str, int]) -> dict[str, list[int]]:
        return {"ys": [await fns.nap_fn(item["x"])]}

    def spread(state: dict[str, Any]) -> list[Any]:
        return [Send("nap", {"x": x}) for x in fns.items_fn(state["n"])]

    graph = StateGraph(State)
    graph.add_node("nap", nap)
    graph.add_conditional_edges(START, spread, ["nap"])
    graph.add_edge("nap", END)
    return graph.compile()


# ---------------------------------------------------------------------- Ray
@contextlib.contextmanager
def ray_remote(fns: Any) -> Iterator[dict[str, Callable[..., Any]]]:
    """A local Ray cluster (2 CPUs) for one benchmark, shut down afterwards so its
    processes do not disturb the benchmarks that follow."""
    ray = need("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    # The workload module lives in a temporary directory Ray's workers cannot import:
    # ship its functions by value.
    ray.cloudpickle.register_pickle_by_value(fns)
    try:
        yield {
            "inc": ray.remote(fns.inc_fn),
            "add2": ray.remote(fns.add2_fn),
            "add3": ray.remote(fns.add3_fn),
            "add4": ray.remote(fns.add4_fn),
            "total": ray.remote(fns.total_star_fn),
        }
    finally:
        ray.shutdown()


@contextlib.contextmanager
def ray_sleeper(fns: Any) -> Iterator[Any]:
    """A local Ray cluster (2 CPUs) with one async actor running up to ``CAP`` naps at once
    (Ray's ``max_concurrency`` for async actors), shut down afterwards."""
    ray = need("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.cloudpickle.register_pickle_by_value(fns)
    nap_fn = fns.nap_fn

    class Sleeper:
        async def nap(self, x: int) -> int:
            return await nap_fn(x)

    try:
        yield ray.remote(Sleeper).options(max_concurrency=CAP).remote()
    finally:
        ray.shutdown()


def deep(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Run ``fn`` in a thread with a 512 MiB stack and a high recursion limit.

    Hamilton walks its graph recursively, so a 10,000-node chain overflows Python's
    default recursion limit; this gives it the room a user would have to give it.
    """

    def run() -> Any:
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                box["error"] = exc

        old_limit, old_size = sys.getrecursionlimit(), threading.stack_size()
        sys.setrecursionlimit(1_000_000)
        threading.stack_size(512 * 1024 * 1024)
        try:
            thread = threading.Thread(target=target)
            thread.start()
            thread.join()
        finally:
            threading.stack_size(old_size)
            sys.setrecursionlimit(old_limit)
        if "error" in box:
            raise box["error"]
        return box["value"]

    return run
