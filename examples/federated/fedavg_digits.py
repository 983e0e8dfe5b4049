"""FedAvg on scikit-learn's digits, as a plain namu workflow.

Ten clients each hold a Dirichlet(0.5) share of the training set (so each sees only a
few digits well); every round, each trains the global softmax-regression model for one
local epoch from the round's parameters, and the server averages their parameters
weighted by sample count. The workflow returns the held-out accuracy after each round:

    namu run examples/federated/fedavg_digits.py --json
    namu run examples/federated/fedavg_digits.py -i rounds=5 -i clients=4

Needs ``pip install "namu[federated]"`` (scikit-learn ships the data: nothing downloads).
"""

from __future__ import annotations

import functools

import numpy as np

import namu
from namu.federated import DigitsSource, FedAvg, SoftmaxRegression, digits

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
def local_train(params: list, client: int, clients: int, epochs: int) -> tuple:
    """One client's round: its parameters after ``epochs`` local epochs, and how many
    samples it trained on."""
    model = _model(params)
    model.train(_source(client, clients).batches, epochs=epochs)
    return model.params(), model.num_samples


@namu.task
def federated_average(start: list, updates: list) -> list:
    """The round's new global parameters: FedAvg of the clients' parameters."""
    aggregator = FedAvg()
    aggregator.begin(start)
    for client, (params, num_samples) in enumerate(updates):
        aggregator.contribute(f"client-{client}", params, num_samples)
    return aggregator.aggregate()


@namu.task
def test_accuracy(params: list) -> float:
    """The global model's accuracy on the held-out digits."""
    _, _, x_test, y_test = digits()
    return round(_model(params).evaluate(x_test, y_test)["accuracy"], 4)


@namu.workflow(placement="server")
def fedavg_digits(rounds: int = 20, clients: int = 10, epochs: int = 1) -> list:
    params = initial_params()
    history = []
    for r in range(rounds):
        updates = [local_train(params, c, clients, epochs) for c in range(clients)]
        params = federated_average(params, updates)
        history.append({"round": r + 1, "accuracy": test_accuracy(params)})
    return history
