"""Agents (issue 11): namu next to a hand-written floor, LangGraph and PydanticAI, all
against the same loopback LLM server (``benchmarks/agent_peers.py`` describes the four
agents and the server). Groups:

* ``agent_iteration``: one run (two ReAct iterations) at a time; ``server`` is the same
  two requests sent over a bare socket, what the server and the loopback take by
  themselves, which the table subtracts;
* ``agent_iteration_paired``: the same, measured in pairs: every round times the bare
  server exchange, one floor run and one run of the engine back to back, so the machine's
  drift over a benchmark (large on a shared VM) weighs on the floor and the engine alike;
  the ratio is of the two medians, each less the server's paired median;
* ``agent_throughput``: 1,000 runs, at most :data:`CAP` at once;
* ``agent_instantiation``: making one agent (1,000 after warm-up), and the memory each
  holds (``tracemalloc``, 1,000 kept alive), as Agno's published table measures;
* ``cold_start``: wall time of fresh processes (``import namu``, ``namu --help``,
  ``namu run agent.yaml --dry-run``, the peers' imports).

::

    python benchmarks/agents_table.py                          # the tables of docs/performance.md
    python -m pytest benchmarks/test_agents.py --benchmark-enable

The run history (SQLite) is off (``NAMU_RUN_HISTORY=off``) except in the row that says
so. Nothing leaves 127.0.0.1: a connection anywhere else fails the benchmark. Before each
benchmark, what the earlier ones left is frozen out of the garbage collector's sight
(:func:`settle`), so that the order of the engines matters less.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import statistics
import os
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import namu
from benchmarks import agent_peers as peers
from benchmarks.peers import need

pytestmark = pytest.mark.timeout(3600)

#: agent runs of the throughput benchmark, and the most in flight at once
RUNS, CAP = 1_000, 100
#: agents made by the instantiation benchmark, after WARMUP more
AGENTS, WARMUP = 1_000, 10
#: runs timed one at a time, after WARMUP_RUNS (the first compiles namu's agent)
ROUNDS, WARMUP_RUNS = 200, 10
#: fresh processes timed per cold-start command (the median is kept)
COLD_ROUNDS = 7
QUESTIONS = [peers.question(i) for i in range(RUNS)]
ANSWERS = [peers.answer(i) for i in range(RUNS)]
#: the agents run on an event loop of the benchmark's, by engine
ASYNC = {"floor": peers.Floor, "langgraph": peers.LangGraph, "pydantic_ai": peers.PydanticAI}


@pytest.fixture(scope="module", autouse=True)
def _isolated() -> Iterator[None]:
    """Refuse any connection that does not go to this machine's loopback; no run history;
    the agents' API key in the environment."""
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"benchmarks/test_agents.py: no network except 127.0.0.1 (tried {address[0]})")
        return connect(self, address)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", guarded)
        patch.setenv("NAMU_RUN_HISTORY", "off")
        patch.setenv(peers.KEY_ENV, peers.KEY)
        yield


@pytest.fixture(scope="module")
def server() -> Iterator[peers.ServerProcess]:
    process = peers.ServerProcess()
    yield process
    process.close()


class AsyncAgents:
    """One event loop for the async agents (the floor and the peers): their clients keep
    their connections across benchmarks, and are closed with the loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.opened: list[Any] = []

    def open(self, make: Callable[[str], Any], base_url: str) -> Any:
        """``make(base_url)``: a :class:`peers.Floor`, :class:`peers.LangGraph` or
        :class:`peers.PydanticAI`, closed with the loop."""
        agent = make(base_url)
        self.opened.append(agent)
        return agent

    def once(self, agent: Any) -> Callable[[str], str]:
        """A function running ``agent`` once on the loop."""
        return lambda text: self.loop.run_until_complete(agent.run(text))

    def all(self, agent: Any) -> Callable[[], list[str]]:
        """A function running every question of the throughput benchmark through
        ``agent``, :data:`CAP` at once (``asyncio.gather`` under a semaphore)."""
        return lambda: self.loop.run_until_complete(peers.gather_capped(agent.run, QUESTIONS, CAP))

    def close(self) -> None:
        for agent in self.opened:
            self.loop.run_until_complete(agent.aclose())
        self.loop.close()


@pytest.fixture(scope="module")
def agents() -> Iterator[AsyncAgents]:
    runner = AsyncAgents()
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the agent file for the server (and the fan-out workflow) is written."""
    return tmp_path_factory.mktemp("agents")


@pytest.fixture(scope="module")
def offline_agent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An agent file pointing at a port nothing serves (for what makes no request)."""
    return peers.namu_agent_file(tmp_path_factory.mktemp("offline"), "http://127.0.0.1:9")


def settle() -> None:
    """Before a benchmark: what earlier ones left (the other engines' modules and objects)
    is moved out of the garbage collector's sight (``gc.freeze``), so it weighs on none
    of this one's collections."""
    gc.collect()
    gc.freeze()


def one_run(benchmark: Any, run: Callable[[str], str]) -> None:
    """Benchmark ``run(question)`` (one run, two iterations), a new question each of
    :data:`ROUNDS` rounds; every answer is checked after the timing."""
    numbers = itertools.count()
    answers: list[tuple[int, str]] = []

    def once() -> None:
        i = next(numbers)
        answers.append((i, run(peers.question(i))))

    benchmark.extra_info.update(unit="µs / iteration", iterations=peers.ITERATIONS)
    settle()
    benchmark.pedantic(once, rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP_RUNS)
    assert answers and all(text == peers.answer(i) for i, text in answers)


# ---------------------------------------------------------------------- per iteration
@pytest.mark.benchmark(group="agent_iteration")
def test_iteration_server(benchmark: Any, server: peers.ServerProcess) -> None:
    client = peers.RawClient(server.port)
    requests = [client.encode(body) for body in peers.floor_requests(3)]
    try:
        benchmark.extra_info.update(unit="µs / iteration", iterations=peers.ITERATIONS)
        bodies = benchmark.pedantic(lambda: [client.roundtrip(r) for r in requests], rounds=ROUNDS * 5,
                                    iterations=1, warmup_rounds=WARMUP_RUNS)
    finally:
        client.close()
    assert b"The answer is 21." in bodies[1]


@pytest.mark.benchmark(group="agent_iteration")
@pytest.mark.parametrize("engine", ["floor", "namu", "namu_history", "langgraph", "pydantic_ai"])
def test_iteration(benchmark: Any, server: peers.ServerProcess, agents: AsyncAgents, workdir: Path, engine: str) -> None:
    """One run at a time. namu: ``agent.run(question)``, with the run history off, or on
    (``namu_history``: each run written to a SQLite file, as ``namu run`` does by default)."""
    if engine.startswith("namu"):
        agent = namu.agent(peers.namu_agent_file(workdir, server.url))
        history: Path | bool = workdir / "runs.sqlite" if engine == "namu_history" else False
        one_run(benchmark, lambda q: agent.run(q, history=history).answer)
    else:
        one_run(benchmark, agents.once(agents.open(ASYNC[engine], server.url)))


@pytest.mark.benchmark(group="agent_iteration_paired")
@pytest.mark.parametrize("engine", ["namu", "langgraph", "pydantic_ai"])
def test_iteration_paired(benchmark: Any, server: peers.ServerProcess, agents: AsyncAgents, workdir: Path, engine: str) -> None:
    """Rounds of three back to back: the bare server exchange, one floor run, one run of
    ``engine`` (timed by the benchmark); the medians of all three go into ``extra_info``
    (µs per iteration)."""
    if engine == "namu":
        agent = namu.agent(peers.namu_agent_file(workdir, server.url))
        run: Callable[[str], str] = lambda q: agent.run(q, history=False).answer  # noqa: E731
    else:
        run = agents.once(agents.open(ASYNC[engine], server.url))
    floor = agents.once(agents.open(peers.Floor, server.url))
    client = peers.RawClient(server.port)
    requests = [client.encode(body) for body in peers.floor_requests(3)]
    numbers = itertools.count()
    times: dict[str, list[float]] = {"server": [], "floor": [], engine: []}
    wrong: list[int] = []

    def timed(name: str, call: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = call()
        times[name].append(time.perf_counter() - start)
        return value

    def once() -> None:
        i = next(numbers)
        timed("server", lambda: [client.roundtrip(r) for r in requests])
        answers = [timed("floor", lambda: floor(peers.question(i))), timed(engine, lambda: run(peers.question(i)))]
        if answers != [peers.answer(i)] * 2:
            wrong.append(i)

    try:
        settle()
        for _ in range(WARMUP_RUNS):
            once()
        for values in times.values():
            values.clear()
        benchmark.pedantic(once, rounds=ROUNDS, iterations=1)
    finally:
        client.close()
    assert not wrong, f"wrong answers in rounds {wrong[:5]}"
    benchmark.extra_info.update(
        unit="µs / iteration", iterations=peers.ITERATIONS, rounds=ROUNDS,
        medians_us={name: statistics.median(values) / peers.ITERATIONS * 1e6 for name, values in times.items()},
    )


# ---------------------------------------------------------------------- throughput
def many_runs(benchmark: Any, run_all: Callable[[], list[str]]) -> None:
    """Benchmark ``run_all()`` (all :data:`RUNS` runs), three rounds after one warm-up."""
    benchmark.extra_info.update(unit="requests / s", requests=RUNS * peers.ITERATIONS, runs=RUNS, cap=CAP)
    settle()
    answers = benchmark.pedantic(run_all, rounds=3, iterations=1, warmup_rounds=1)
    assert answers == ANSWERS


@pytest.mark.benchmark(group="agent_throughput")
@pytest.mark.parametrize("engine", ["floor", "namu", "langgraph", "pydantic_ai"])
def test_throughput(benchmark: Any, server: peers.ServerProcess, agents: AsyncAgents, workdir: Path, engine: str) -> None:
    """namu: a ``@namu.workflow`` fanning the agent out over the questions,
    ``[calc(q) for q in questions]``, run with ``max_concurrency``; the others:
    ``asyncio.gather`` under a semaphore."""
    if engine == "namu":
        module = peers.namu_fanout_module(workdir, server.url)
        art = namu.compile(module.ask_all).with_options(max_concurrency=CAP)
        many_runs(benchmark, lambda: art(QUESTIONS))
    else:
        many_runs(benchmark, agents.all(agents.open(ASYNC[engine], server.url)))


# ---------------------------------------------------------------------- instantiation
def kib_per_object(make: Callable[[], Any], count: int = AGENTS) -> float:
    """The memory ``count`` objects from ``make()`` hold, all kept alive, per object (KiB,
    ``tracemalloc``: allocated after minus before)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make() for _ in range(count)]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(kept) == count
    return (after - before) / count / 1024


def instantiation(benchmark: Any, make: Callable[[], Any]) -> None:
    """Time ``make()`` :data:`AGENTS` times after :data:`WARMUP`, then its memory."""
    benchmark.extra_info.update(unit="µs / agent", tasks=1)
    settle()
    benchmark.pedantic(make, rounds=AGENTS, iterations=1, warmup_rounds=WARMUP)
    benchmark.extra_info["kib"] = kib_per_object(make)


@pytest.mark.benchmark(group="agent_instantiation")
def test_instantiation_namu_agent(benchmark: Any, offline_agent: Path) -> None:
    """``namu.agent(path)``: the file read, parsed and validated."""
    instantiation(benchmark, lambda: namu.agent(offline_agent))


@pytest.mark.benchmark(group="agent_instantiation")
def test_instantiation_namu_compile(benchmark: Any, offline_agent: Path) -> None:
    """``namu.compile(agent)``: lowered, the passes run, an artifact ready to run."""
    agent = namu.agent(offline_agent)
    instantiation(benchmark, lambda: namu.compile(agent))


@pytest.mark.benchmark(group="agent_instantiation")
def test_instantiation_langgraph(benchmark: Any) -> None:
    """``create_react_agent(ChatAnthropic(...), [tool], prompt=...)``: a model object and
    a compiled graph."""
    peers.chat_anthropic("http://127.0.0.1:9")  # skips the benchmark when LangGraph is missing
    instantiation(benchmark, lambda: peers.langgraph_agent(peers.chat_anthropic("http://127.0.0.1:9")))


@pytest.mark.benchmark(group="agent_instantiation")
def test_instantiation_pydantic_ai(benchmark: Any) -> None:
    """``Agent(AnthropicModel(name, provider=provider), tools=[...], ...)``, the provider
    (it holds the SDK client, 20-30 ms to make) made once and shared."""
    provider = peers.pydantic_ai_provider("http://127.0.0.1:9")
    instantiation(benchmark, lambda: peers.pydantic_ai_agent(provider))


# ---------------------------------------------------------------------- cold start
def _namu_script() -> list[str]:
    """The ``namu`` console script beside this interpreter (no shell shim in front), else
    ``python -m namu``."""
    script = Path(sys.executable).with_name("namu")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "namu"]


COLD = {
    "python": [sys.executable, "-c", "pass"],
    "import_namu": [sys.executable, "-c", "import namu"],
    "namu_help": [*_namu_script(), "--help"],
    "namu_dry_run": [*_namu_script(), "run", "{agent}", "-i", "What is 25 * 47?", "--dry-run"],
    "import_langgraph": [sys.executable, "-c", "import langgraph.prebuilt, langchain_anthropic"],
    "import_pydantic_ai": [sys.executable, "-c", "import pydantic_ai, pydantic_ai.models.anthropic"],
}


@pytest.mark.benchmark(group="cold_start")
@pytest.mark.parametrize("engine", list(COLD))
def test_cold_start(benchmark: Any, offline_agent: Path, engine: str) -> None:
    if engine.startswith("import_") and engine != "import_namu":
        need(engine.removeprefix("import_"))
    command = [part.format(agent=offline_agent) for part in COLD[engine]]
    # namu from this checkout, wherever the interpreter's own install of it points
    env = {**os.environ, "NAMU_RUN_HISTORY": "off", "PYTHONPATH": os.pathsep.join(filter(None, [str(peers.ROOT), os.environ.get("PYTHONPATH")]))}

    def start() -> None:
        subprocess.run(command, check=True, env=env, cwd=offline_agent.parent, stdout=subprocess.DEVNULL, timeout=120)

    benchmark.extra_info.update(unit="ms", tasks=1)
    benchmark.pedantic(start, rounds=COLD_ROUNDS, iterations=1, warmup_rounds=1)
