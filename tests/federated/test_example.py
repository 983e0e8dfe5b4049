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


def test_a_training_run_killed_mid_round_resumes_to_the_same_model(tmp_path: Path) -> None:
    """SIGKILL in the middle of training, then the same command again: the checkpoint
    journal serves the finished client trainings and aggregations, the rest run, and the
    result is the uninterrupted run's, round for round."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    from tests.cli.test_cli import REPO

    checkpoint = tmp_path / "training.sqlite"
    command = [sys.executable, "-m", "namu.cli", "run", str(EXAMPLE), "--checkpoint", str(checkpoint), "--json"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journaled = 0
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with sqlite3.connect(checkpoint, timeout=0.05) as db:
                journaled = db.execute("SELECT count(*) FROM calls").fetchone()[0]
        except sqlite3.Error:
            journaled = 0
        if journaled >= 30:  # a few rounds in: some clients of a round done, others not
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it could be killed ({journaled} calls journaled)"
    resumed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    history = json.loads(resumed.stdout)["value"]
    assert [h["accuracy"] for h in history] == [round(a, 4) for a in federated(softmax, FedAvg())]
