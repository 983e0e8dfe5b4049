"""``examples/federated/fedavg_digits.py``: the FedAvg round loop as a plain namu
workflow, run from the command line, gives the same accuracy per round as the
components driven by hand (the same seeds, the same arithmetic)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from namu.federated import FedAvg
from namu.runtime.user_code import import_path
from tests.cli.test_cli import namu_cli
from tests.federated.test_components import federated, softmax

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "federated" / "fedavg_digits.py"


def test_namu_run_prints_the_accuracy_after_each_round(tmp_path: Path) -> None:
    proc = namu_cli("run", str(EXAMPLE), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    history = json.loads(proc.stdout)["value"]
    assert [h["round"] for h in history] == list(range(1, 21))
    expected = federated(softmax, FedAvg())
    assert [h["accuracy"] for h in history] == [round(a, 4) for a in expected]
    assert history[-1]["accuracy"] >= 0.90


@pytest.mark.parametrize("executor", ["kernel", "reference"])
def test_both_executors_train_the_same_model(executor: str) -> None:
    module = import_path(EXAMPLE)
    history = module.fedavg_digits.run(rounds=3, clients=4, executor=executor).value
    assert history == module.fedavg_digits.fn(rounds=3, clients=4)
