"""A small federated program for the tests: FedAvg on digits, where each round also
reports how many clients answered and how the new global model does on each client's
own data (a second remote fan-out: federated evaluation), and the final global model
can be exported.

``FED_SLOW_MARKER=PATH`` in a client's environment makes that client create PATH and
then hang in training (a straggler to kill).
"""

from __future__ import annotations

import os
import time

import namu
from namu.federated import DigitsSource, FedAvg, SoftmaxRegression, digits


def _model(params=None) -> SoftmaxRegression:
    model = SoftmaxRegression(64, 10, lr=0.1)
    if params is not None:
        model.set_params(params)
    return model


@namu.task
def initial_params() -> list:
    return _model().params()


@namu.task(placement="client")
def local_train(params: list, peer: int, clients: int) -> tuple:
    marker = os.environ.get("FED_SLOW_MARKER")
    if marker:
        open(marker, "w").close()
        time.sleep(600)
    model = _model(params)
    model.train(DigitsSource(peer, clients, alpha=0.5, seed=0).batches, epochs=1)
    return model.params(), model.num_samples


@namu.task(placement="client")
def local_accuracy(params: list, peer: int, clients: int) -> float:
    source = DigitsSource(peer, clients, alpha=0.5, seed=0)
    return _model(params).evaluate(source.x, source.y)["accuracy"]


@namu.task
def mean(values: list) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


@namu.task
def average(start: list, updates: list) -> list:
    aggregator = FedAvg()
    aggregator.begin(start)
    for client, (params, num_samples) in enumerate(updates):
        aggregator.contribute(f"client-{client}", params, num_samples)
    return aggregator.aggregate()


@namu.task
def accuracy(params: list) -> float:
    _, _, x_test, y_test = digits()
    return round(_model(params).evaluate(x_test, y_test)["accuracy"], 4)


@namu.task
def export(params: list, path: str) -> str:
    if path:
        with open(path, "wb") as f:
            f.write(_model(params).to_onnx().SerializeToString())
    return path


@namu.workflow(placement="server")
def fedprog(rounds: int = 3, clients: int = 3, out: str = "") -> dict:
    params = initial_params()
    history = []
    for r in range(rounds):
        updates = [local_train(params, c, clients) for c in range(clients)]
        params = average(params, updates)
        on_clients = mean([local_accuracy(params, c, clients) for c in range(clients)])
        history.append({"round": r + 1, "answered": len(updates), "accuracy": accuracy(params),
                        "client_accuracy": on_clients})
    export(params, out)
    return {"history": history}
