"""Federated learning, namu side by side with the plain Python loop and Flower's
simulations (programs in :mod:`benchmarks.federated_peers`).

* ``federated_digits``: FedAvg on digits, 10 clients, 20 rounds of one local epoch. Each
  engine's ``extra_info`` holds its accuracy per round and, per round, the wall time,
  the clients' training time (timed inside the client code) and the difference, the
  framework's own time; with their medians over rounds 2-20 (round 1 also loads each
  client's data). namu must give the plain loop's accuracies exactly (and those of
  ``examples/federated/fedavg_digits.py``), Flower within 2 points every round.
* ``federated_clients``: a trivial client (``params + peer``) for 1,000 clients per
  round (Flower: 100 and 1,000), ``extra_info`` with the framework's time per client per
  round, median over the rounds after the first (which also sets up the clients).

Nothing here asserts a time: benchmarks report. ``python benchmarks/federated_table.py``
prints the tables of docs/performance.md. Nothing leaves 127.0.0.1: a connection from
this process anywhere else fails the benchmark, and Flower's simulations (each in a
process of its own) run with its telemetry off and Ray bound to the loopback.
"""

from __future__ import annotations

import gc
import socket
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import namu
from benchmarks import federated_peers as fp
from namu.runtime.user_code import import_path

pytestmark = pytest.mark.timeout(1800)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "federated" / "fedavg_digits.py"
#: namu and the floor: whole runs, timed after one warm-up; what the last ``rounds`` runs
#: noted is reported (the only run when benchmarks are disabled)
TIMED = {"rounds": 5, "iterations": 1, "warmup_rounds": 1}
#: the trivial program: rounds per run, and clients per round for namu and the floor
TRIVIAL_ROUNDS, MANY = 10, 1_000
#: Flower's trivial runs: rounds per run (the first is not counted), clients per round
FLOWER_TRIVIAL_ROUNDS, FLOWER_CLIENTS = 3, (100, 1_000)
#: Flower's accuracy may differ from namu's by this much in any round (its FedAvg sums
#: in another order)
TOLERANCE = 0.02


@pytest.fixture(scope="module", autouse=True)
def _isolated() -> Iterator[None]:
    """Refuse any connection from this process that does not go to the loopback."""
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"benchmarks/test_federated.py: no network except 127.0.0.1 (tried {address[0]})")
        return connect(self, address)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", guarded)
        yield


@pytest.fixture(autouse=True)
def _settled() -> None:
    """Before each benchmark, what earlier ones left is frozen out of the garbage
    collector's sight (as in ``test_agents.settle``): a full collection then scans only
    what this benchmark made."""
    gc.collect()
    gc.freeze()


def need_flower() -> None:
    """Skip the benchmark when Flower's simulation is not installed (never faked)."""
    missing = fp.flower_missing()
    if missing:
        pytest.skip(missing)


@pytest.fixture(scope="module")
def reference() -> list[float]:
    """The plain loop's accuracy per round, checked against the example program run by
    namu (which rounds to 4 decimals)."""
    expected = [h["accuracy"] for h in fp.fedavg_timed.fn(fp.ROUNDS, fp.CLIENTS)[1:]]
    example = import_path(EXAMPLE).fedavg_digits
    history = namu.compile(example)(rounds=fp.ROUNDS, clients=fp.CLIENTS, epochs=fp.EPOCHS)
    assert [h["accuracy"] for h in history] == [round(a, 4) for a in expected]
    return expected


def report(benchmark: Any, runs: list[fp.Rounds], clients: int) -> dict[str, list[float]]:
    """Put what ``runs`` noted into ``extra_info``: the per-round lists of the last run,
    and the medians of wall, training and own ms (and own µs per client) over every
    run's rounds after the first; return the last run's per-round lists."""
    rounds = [run.per_round() for run in runs]
    benchmark.extra_info.update(clients=clients, rounds=len(rounds[-1]["wall_ms"]), runs=len(runs), **rounds[-1])
    for key in ("wall_ms", "train_ms", "own_ms"):
        benchmark.extra_info[f"median_{key}"] = statistics.median(v for r in rounds for v in r[key][1:])
    benchmark.extra_info["median_own_us_per_client"] = benchmark.extra_info["median_own_ms"] * 1e3 / clients
    return rounds[-1]


# ---------------------------------------------------------------------- accuracy and time per round
@pytest.mark.benchmark(group="federated_digits")
@pytest.mark.parametrize("engine", ["plain_loop", "namu"])
def test_digits(benchmark: Any, reference: list[float], engine: str) -> None:
    """namu: ``namu.compile(fedavg_timed)(20, 10)`` (server and clients in this process);
    the plain loop: the same workflow's body called directly."""
    run = namu.compile(fp.fedavg_timed) if engine == "namu" else fp.fedavg_timed.fn
    runs: list[fp.Rounds] = []
    benchmark.pedantic(lambda: runs.append(fp.Rounds.of(run(fp.ROUNDS, fp.CLIENTS))), **TIMED)
    summary = report(benchmark, runs[-TIMED["rounds"]:], fp.CLIENTS)
    assert all(r.accuracy == runs[0].accuracy for r in runs)
    assert summary["accuracy"] == pytest.approx(reference, abs=1e-12)
    if engine == "plain_loop":
        benchmark.extra_info["centralized"] = fp.centralized()


@pytest.mark.benchmark(group="federated_digits")
@pytest.mark.parametrize("engine", fp.FLOWER_ENGINES)
def test_digits_flower(benchmark: Any, reference: list[float], engine: str) -> None:
    """Flower: one whole simulation in a process of its own (the timed run includes the
    process's start and Ray's; the rounds are timed inside it)."""
    need_flower()
    runs: list[fp.Rounds] = []
    benchmark.pedantic(lambda: runs.append(fp.flower_run("digits", engine, fp.ROUNDS, fp.CLIENTS)), rounds=1,
                       iterations=1)
    summary = report(benchmark, runs, fp.CLIENTS)
    assert len(summary["accuracy"]) == fp.ROUNDS
    worst = max(abs(a - b) for a, b in zip(summary["accuracy"], reference))
    assert worst <= TOLERANCE, f"Flower's accuracy is {worst:.4f} from namu's in some round"


# ---------------------------------------------------------------------- many clients
@pytest.mark.benchmark(group="federated_clients")
@pytest.mark.parametrize("engine", ["plain_loop", "namu"])
def test_clients(benchmark: Any, engine: str) -> None:
    """1,000 clients per round, :data:`TRIVIAL_ROUNDS` rounds per timed run."""
    run = namu.compile(fp.trivial) if engine == "namu" else fp.trivial.fn
    runs: list[fp.Rounds] = []
    benchmark.pedantic(lambda: runs.append(fp.trivial_rounds(run(TRIVIAL_ROUNDS, MANY))), **TIMED)
    report(benchmark, runs[-TIMED["rounds"]:], MANY)
    assert all(r.accuracy == fp.trivial_answer(TRIVIAL_ROUNDS, MANY) for r in runs)


@pytest.mark.benchmark(group="federated_clients")
@pytest.mark.parametrize("clients", FLOWER_CLIENTS)
@pytest.mark.parametrize("engine", fp.FLOWER_ENGINES)
def test_clients_flower(benchmark: Any, engine: str, clients: int) -> None:
    """Flower with ``clients`` trivial clients, :data:`FLOWER_TRIVIAL_ROUNDS` rounds."""
    need_flower()
    runs: list[fp.Rounds] = []
    benchmark.pedantic(lambda: runs.append(fp.flower_run("trivial", engine, FLOWER_TRIVIAL_ROUNDS, clients)),
                       rounds=1, iterations=1)
    report(benchmark, runs, clients)
    assert runs[0].accuracy == pytest.approx(fp.trivial_answer(FLOWER_TRIVIAL_ROUNDS, clients))
