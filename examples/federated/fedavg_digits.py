"""FedAvg on scikit-learn's digits, as a plain namu workflow.

Ten clients each hold a Dirichlet(0.5) share of the training set (so each sees only a
few digits well); every round, each trains the global softmax-regression model for one
local epoch from the round's parameters, and the server averages their parameters
weighted by sample count. The workflow returns the held-out accuracy after each round:

    namu run examples/federated/fedavg_digits.py --json
    namu run examples/federated/fedavg_digits.py -i rounds=5 -i clients=4
    namu run examples/federated/fedavg_digits.py -i mu=0.1           # FedProx
    namu run examples/federated/fedavg_digits.py -i per_round=5      # 5 of 10 clients a round

Across processes (one server, ten clients; docs/federated.md)::

    namu compile examples/federated/fedavg_digits.py -o fedavg.onnx
    namu federated server fedavg.onnx --json &
    for c in 0 1 2 3 4 5 6 7 8 9; do namu federated client fedavg.onnx --peer $c & done

Needs ``pip install "namu[federated]"`` (scikit-learn ships the data: nothing downloads).
"""

from __future__ import annotations

import functools

import numpy as np

import namu
from namu.federated import DigitsSource, FedAvg, RandomSelector, SoftmaxRegression, digits

ALPHA, SEED, LEARNING_RATE = 0.5, 0, 0.1


def _model(params: list[np.ndarray] | None = None) -> SoftmaxRegression:
    model = SoftmaxRegression(64, 10, lr=LEARNING_RATE)
    if params is not None:
        model.set_params(params)
    return model


@functools.lru_cache(maxsize=64)
def _source(client: int, clients: int) -> DigitsSource:
    return DigitsSource(client, clients, alpha=ALPHA, seed=SEED)


@namu.task
def initial_params() -> list:
    """The global model's starting parameters."""
    return _model().params()


@namu.task(placement="client")
def local_train(params: list, client: int, clients: int, epochs: int, mu: float) -> tuple:
    """One client's round: its parameters after ``epochs`` local epochs (with FedProx's
    proximal term ``(mu/2)*||w - w_t||^2`` when ``mu`` > 0), and how many samples it
    trained on."""
    model = _model(params)
    model.train(_source(client, clients).batches, epochs=epochs, prox_mu=mu)
    return model.params(), model.num_samples


#: the server's aggregation, a role slot: FedAvg unless the compile binds another
#: Aggregator (`namu compile ... --slot aggregator=namu.federated.aggregators:Median`)
aggregator = namu.slot("aggregator", role="Aggregator", default=FedAvg)


@namu.task
def federated_average(start: list, updates: list, strategy: str) -> list:
    """The round's new global parameters: the bound aggregator (FedAvg by default) of
    the clients' parameters."""
    aggregator = namu.federated.bound(strategy)()
    aggregator.begin(start)
    for client, (params, num_samples) in enumerate(updates):
        aggregator.contribute(f"client-{client}", params, num_samples)
    return aggregator.aggregate()


#: which clients a round asks, a role slot: RandomSelector unless the compile binds another PeerSelector
selector = namu.slot("selector", role="PeerSelector", default=RandomSelector)


@namu.task
def select_clients(strategy: str, clients: int, per_round: int, round_number: int) -> list:
    """The clients round ``round_number`` asks: all of them, or ``per_round`` drawn by the
    bound peer selector (the same draw for the same round, as Flower's ``fraction_fit``)."""
    everyone = list(range(clients))
    if per_round <= 0 or per_round >= clients:
        return everyone
    return namu.federated.bound(strategy)(seed=SEED).sample(everyone, per_round, round_number)


@namu.task
def test_accuracy(params: list) -> float:
    """The global model's accuracy on the held-out digits."""
    _, _, x_test, y_test = digits()
    accuracy = round(_model(params).evaluate(x_test, y_test)["accuracy"], 4)
    namu.emit("metrics", accuracy=accuracy)  # shown beside the progress bar
    return accuracy


@namu.workflow(placement="server")
def fedavg_digits(rounds: int = 20, clients: int = 10, epochs: int = 1, mu: float = 0.0, per_round: int = 0) -> list:
    params = initial_params()
    history = []
    for r in range(rounds):
        chosen = select_clients(selector(), clients, per_round, r)
        updates = [local_train(params, c, clients, epochs, mu) for c in chosen]
        params = federated_average(params, updates, aggregator())
        history.append({"round": r + 1, "accuracy": test_accuracy(params)})
    return history
