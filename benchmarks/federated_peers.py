"""The federated benchmark's programs (``benchmarks/test_federated.py``), each written
once for namu, for the plain Python loop (the floor) and for Flower's simulation.

* **FedAvg on digits**: the setting of ``examples/federated/fedavg_digits.py`` (softmax
  regression 64 -> 10, lr 0.1; scikit-learn's digits, Dirichlet(0.5) over 10 clients,
  seed 0; FedAvg weighted by sample count over every client every round; one local
  epoch). Each client times its own ``model.train`` (``time.perf_counter``) and returns
  the seconds with its update; the server evaluates the global model on the held-out
  digits after the initial parameters and after every round, and notes when each
  evaluation ended. A round's wall time is the time between two such notes, and a
  framework's own time is that less its clients' training seconds.
* **A trivial client**: ``fit(params, peer) -> params + peer`` for many simulated
  clients, to measure what a framework costs per client per round.

namu runs the workflows below in one process (``LocalFederation``); their plain-Python
bodies (``workflow.fn``) are the floor. Flower runs a ``NumPyClient`` (in a
``ClientApp``) and its ``FedAvg`` strategy (``fraction_fit=1.0``, every client required,
a server-side ``evaluate_fn``) in either of its simulations (:data:`FLOWER_ENGINES`),
its clients in Ray actors on this machine, each simulation in a process of its own
(:func:`flower_run`): Ray is bound to 127.0.0.1, and Flower's telemetry and Ray's usage
reports are switched off before either is imported (:func:`flower`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import namu
from namu.federated import DigitsSource, FedAvg, SoftmaxRegression, digits

ROOT = Path(__file__).resolve().parents[1]
#: the setting of the accuracy benchmark (the issue's acceptance run)
ROUNDS, CLIENTS, EPOCHS, ALPHA, SEED, LEARNING_RATE = 20, 10, 1, 0.5, 0, 0.1

#: set before Flower or Ray is imported: nothing may leave this machine
FLOWER_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",  # Flower posts an event per simulation start otherwise
    "RAY_USAGE_STATS_ENABLED": "0",  # Ray reports cluster usage otherwise
    # Ray finds its node address by routing to a public DNS server unless it is told it
    # runs no multi-node cluster: then it binds the loopback address.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # Ray 2.5x warns (FutureWarning) at every ray.init without this
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
}


# ---------------------------------------------------------------------- shared
def make_model(params: list[np.ndarray] | None = None) -> SoftmaxRegression:
    """The benchmark's model, from ``params`` if given."""
    model = SoftmaxRegression(64, 10, lr=LEARNING_RATE)
    if params is not None:
        model.set_params(params)
    return model


@functools.cache
def source(client: int, clients: int) -> DigitsSource:
    """Client ``client``'s share of the training set (made once per process)."""
    return DigitsSource(client, clients, alpha=ALPHA, seed=SEED)


def train(params: list[np.ndarray], client: int, clients: int) -> tuple[list[np.ndarray], int, float]:
    """One client's round: its parameters after :data:`EPOCHS` local epochs from
    ``params``, the samples it trained on, and the seconds ``model.train`` took."""
    model, batches = make_model(params), source(client, clients).batches
    start = time.perf_counter()
    model.train(batches, epochs=EPOCHS)
    elapsed = time.perf_counter() - start
    return model.params(), model.num_samples, elapsed


def accuracy(params: list[np.ndarray]) -> float:
    """The accuracy of ``params`` on the held-out digits (a fraction)."""
    _, _, x_test, y_test = digits()
    return make_model(params).evaluate(x_test, y_test)["accuracy"]


def centralized(epochs: int = ROUNDS) -> list[float]:
    """The baseline: one model trained on all the training data, accuracy after each
    epoch (batches of 16, shuffled per epoch from the seed)."""
    x, y, _, _ = digits()
    model = make_model()
    history = []
    for epoch in range(epochs):
        order = np.random.default_rng((SEED, epoch)).permutation(len(y))
        model.train([(x[order[i : i + 16]], y[order[i : i + 16]]) for i in range(0, len(y), 16)])
        history.append(accuracy(model.params()))
    return history


@dataclass
class Rounds:
    """What a federated run noted per round: the global model's accuracy (the trivial
    program: the global value), the clients' training seconds (summed over clients),
    and when the round's evaluation ended (``perf_counter``). Entry 0 is the initial
    parameters' evaluation (no training)."""

    accuracy: list[float] = field(default_factory=list)
    train_s: list[float] = field(default_factory=list)
    at: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, history: list[dict[str, float]]) -> Rounds:
        """From the records of :func:`fedavg_timed`."""
        return cls([h["accuracy"] for h in history], [h["train_s"] for h in history], [h["at"] for h in history])

    def per_round(self) -> dict[str, list[float]]:
        """Rounds 1..n: accuracy, wall ms, the clients' training ms, and the difference
        (the framework's own ms)."""
        wall = np.diff(self.at) * 1e3
        train_ms = np.array(self.train_s[1:]) * 1e3
        return {"accuracy": self.accuracy[1:], "wall_ms": wall.tolist(), "train_ms": train_ms.tolist(),
                "own_ms": (wall - train_ms).tolist()}


# ---------------------------------------------------------------------- namu
@namu.task
def initial_params() -> list:
    """The global model's starting parameters."""
    return make_model().params()


@namu.task(placement="client")
def local_train(params: list, client: int, clients: int) -> tuple:
    """One client's round (:func:`train`)."""
    return train(params, client, clients)


@namu.task
def federated_average(start: list, updates: list) -> list:
    """FedAvg of the clients' parameters, weighted by their sample counts."""
    aggregator = FedAvg()
    aggregator.begin(start)
    for client, (params, num_samples, _) in enumerate(updates):
        aggregator.contribute(f"client-{client}", params, num_samples)
    return aggregator.aggregate()


@namu.task
def evaluation(params: list, updates: list) -> dict:
    """The round's record: the global model's accuracy, the clients' training seconds,
    and when the evaluation ended."""
    return {"accuracy": accuracy(params), "train_s": sum(u[2] for u in updates), "at": time.perf_counter()}


@namu.workflow(placement="server")
def fedavg_timed(rounds: int = ROUNDS, clients: int = CLIENTS) -> list:
    params = initial_params()
    history = [evaluation(params, [])]
    for _ in range(rounds):
        updates = [local_train(params, c, clients) for c in range(clients)]
        params = federated_average(params, updates)
        history.append(evaluation(params, updates))
    return history


@namu.task(placement="client")
def fit(params: float, peer: int) -> float:
    """The trivial client: the global value plus its peer number."""
    return params + peer


@namu.task
def mean(updates: list) -> float:
    """The trivial aggregate."""
    return sum(updates) / len(updates)


@namu.task
def clock(params: float) -> float:
    """When the round that produced ``params`` ended (``perf_counter``)."""
    return time.perf_counter()


@namu.workflow(placement="server")
def trivial(rounds: int, clients: int) -> dict:
    params = 0.0
    values = [params]
    ends = [clock(params)]
    for _ in range(rounds):
        updates = [fit(params, c) for c in range(clients)]
        params = mean(updates)
        values.append(params)
        ends.append(clock(params))
    return {"values": values, "ends": ends}


def trivial_rounds(out: dict[str, list[float]]) -> Rounds:
    """What a run of :func:`trivial` noted (the clients' work is not timed: ``train_s`` 0)."""
    return Rounds(out["values"], [0.0] * len(out["ends"]), out["ends"])


def trivial_answer(rounds: int, clients: int) -> list[float]:
    """The global value after each of ``rounds`` rounds of the trivial program (round 0
    first): each round adds the mean peer number."""
    return [r * (clients - 1) / 2 for r in range(rounds + 1)]


# ---------------------------------------------------------------------- Flower
#: Flower's two ways to simulate: ``run_simulation`` (a ServerApp and a ClientApp, the
#: messages through an in-memory SuperLink) and the legacy ``start_simulation`` (the
#: strategy drives Ray client proxies directly; deprecated since Flower 1.13)
FLOWER_ENGINES = ("run_simulation", "start_simulation")


def flower_missing() -> str | None:
    """Why Flower's simulation cannot run here, or None when it can."""
    for module in ("flwr", "ray"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'flwr[simulation]')"
    return None


def flower() -> None:
    """Import Flower with its telemetry, Ray's usage reports and Ray's accelerator
    warning off (:data:`FLOWER_ENV`)."""
    os.environ.update(FLOWER_ENV)
    import flwr  # noqa: F401 - imported here, after the environment is set


def flower_run(program: str, engine: str, rounds: int, clients: int) -> Rounds:
    """Run :func:`flower_digits` (``program="digits"``) or :func:`flower_trivial`
    (``"trivial"``) in a fresh process, and return what it noted.

    Each simulation gets a process of its own: Flower's simulations keep state in their
    process (here a ``run_simulation`` after a ``start_simulation`` in the same process
    took 18 s for its first round instead of 9, and stalled over 6 minutes once under
    pytest), and Ray's driver leaves open files and processes to the garbage collector
    (``ResourceWarning``, an error in this suite).

    Raises:
        RuntimeError: the process failed (its stderr's end in the message).
        subprocess.TimeoutExpired: it ran past 25 minutes.
    """
    env = {**os.environ, **FLOWER_ENV,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "benchmarks.federated_peers", program, engine, str(rounds), str(clients)]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"Flower's {engine} ({program}, {clients} clients) failed:\n{proc.stderr[-4000:]}")
    return Rounds(**json.loads(proc.stdout.strip().splitlines()[-1]))


#: Ray's backend for both: 2 CPUs on 127.0.0.1, and Flower's default of 2 CPUs per
#: client, so that one actor runs the clients one after another (as namu's one process
#: does) and their training seconds add up to the time they took.
RAY_INIT = {"num_cpus": 2, "_node_ip_address": "127.0.0.1", "include_dashboard": False, "log_to_driver": False,
            "logging_level": "ERROR"}
CLIENT_RESOURCES = {"num_cpus": 2, "num_gpus": 0.0}


def run_flower(make_client: Callable[[int], Any], evaluate: Callable[[list[np.ndarray]], float],
               initial: list[np.ndarray], rounds: int, clients: int, engine: str) -> Rounds:
    """Run one of Flower's simulations (:data:`FLOWER_ENGINES`): ``FedAvg`` over every
    one of ``clients`` clients for ``rounds`` rounds, the global model evaluated on the
    server by ``evaluate`` after the initial parameters and after every round.

    Args:
        make_client: partition id -> a ``NumPyClient`` whose ``fit`` reports
            ``{"train_s": seconds}`` in its metrics.
        evaluate: global parameters -> accuracy.
        initial: the initial global parameters.
        engine: ``"run_simulation"`` or ``"start_simulation"``.

    Returns:
        What the run noted per evaluation (round 0 first).

    Raises:
        RuntimeError: a round lost clients, or rounds are missing (Flower logs a failed
            client and goes on).
    """
    flower()
    import logging

    from flwr.common import Context, ndarrays_to_parameters
    from flwr.server import ServerConfig
    from flwr.server.strategy import FedAvg as FlowerFedAvg

    logging.getLogger("flwr").setLevel(logging.WARNING)
    noted = Rounds(train_s=[0.0])
    failures: list[int] = []

    def evaluate_fn(server_round: int, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        noted.accuracy.append(evaluate(parameters))
        noted.at.append(time.perf_counter())
        return 0.0, {"accuracy": noted.accuracy[-1]}

    def fit_metrics(results: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        noted.train_s.append(sum(float(m["train_s"]) for _, m in results))
        if len(results) != clients:
            failures.append(clients - len(results))
        return {}

    strategy = FlowerFedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=clients,
                            min_available_clients=clients, evaluate_fn=evaluate_fn,
                            initial_parameters=ndarrays_to_parameters(initial), fit_metrics_aggregation_fn=fit_metrics)
    config = ServerConfig(num_rounds=rounds)

    def client_fn(context: Context) -> Any:
        return make_client(int(context.node_config["partition-id"])).to_client()

    if engine == "run_simulation":
        from flwr.client import ClientApp
        from flwr.server import ServerApp, ServerAppComponents
        from flwr.simulation import run_simulation

        run_simulation(ServerApp(server_fn=lambda context: ServerAppComponents(strategy=strategy, config=config)),
                       ClientApp(client_fn=client_fn), num_supernodes=clients,
                       backend_config={"client_resources": CLIENT_RESOURCES, "init_args": RAY_INIT})
    elif engine == "start_simulation":
        from flwr.server import Server, SimpleClientManager
        from flwr.simulation import start_simulation

        # One client proxy thread at a time: with Flower's default (a thread pool), its
        # legacy actor pool loses a client now and then at 1,000 clients (a proxy finds
        # the pool drained by another thread and fetches a future that is None); with one
        # thread no client is lost, and rounds take no longer (one actor runs them anyway).
        server = Server(client_manager=SimpleClientManager(), strategy=strategy)
        server.set_max_workers(1)
        start_simulation(client_fn=client_fn, num_clients=clients, config=config, server=server,
                         client_resources=CLIENT_RESOURCES, ray_init_args=RAY_INIT)
    else:
        raise ValueError(f"engine must be one of {FLOWER_ENGINES}, got {engine!r}")
    if failures or len(noted.at) != rounds + 1:
        raise RuntimeError(f"Flower's {engine} lost clients ({failures}) or rounds ({len(noted.at) - 1} of {rounds})")
    return noted


def flower_digits(engine: str, rounds: int = ROUNDS, clients: int = CLIENTS) -> Rounds:
    """FedAvg on digits in Flower's simulation (see the module doc)."""
    flower()
    from flwr.client import NumPyClient

    class DigitsClient(NumPyClient):
        def __init__(self, partition: int) -> None:
            self.partition = partition

        def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[list[np.ndarray], int, dict[str, Any]]:
            params, num_samples, train_s = train(parameters, self.partition, clients)
            return params, num_samples, {"train_s": train_s}

    return run_flower(DigitsClient, accuracy, make_model().params(), rounds, clients, engine)


def flower_trivial(engine: str, rounds: int, clients: int) -> Rounds:
    """The trivial client in Flower's simulation: ``fit`` returns ``params + partition``
    (one float in a one-element array), weight 1; ``accuracy`` holds the global value."""
    flower()
    from flwr.client import NumPyClient

    class TrivialClient(NumPyClient):
        def __init__(self, partition: int) -> None:
            self.partition = partition

        def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[list[np.ndarray], int, dict[str, Any]]:
            return [parameters[0] + self.partition], 1, {"train_s": 0.0}

    return run_flower(TrivialClient, lambda params: float(params[0][0]), [np.zeros(1)], rounds, clients, engine)


FLOWER_PROGRAMS = {"digits": flower_digits, "trivial": flower_trivial}

if __name__ == "__main__":  # flower_run's process: PROGRAM ENGINE ROUNDS CLIENTS -> one JSON line
    # the programs under their importable name (not __main__), which Ray's workers import
    programs = importlib.import_module("benchmarks.federated_peers").FLOWER_PROGRAMS
    program, engine, rounds, clients = sys.argv[1:]
    noted = programs[program](engine, int(rounds), int(clients))
    print(json.dumps(dataclasses.asdict(noted)))
