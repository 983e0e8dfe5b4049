"""Role slots: a federated program's aggregator is bound to a class at compile time,
checked against the role's contract; a wrong binding is a compile error naming the
slot, the role and the missing method, at the slot call's line."""

from __future__ import annotations

from pathlib import Path

import pytest

import namu
from namu.errors import RoleBindingError
from namu.federated import FedAvg, Median, RandomSelector, TrimmedMean
from namu.runtime.user_code import import_path
from tests.cli.test_cli import assert_error, namu_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "federated" / "fedavg_digits.py"


@pytest.fixture(scope="module")
def example():
    return import_path(EXAMPLE)


def test_the_default_binding_is_fedavg_and_a_plain_call_uses_it(example) -> None:
    assert example.aggregator() == "namu.federated.aggregators:FedAvg"
    art = namu.compile(example.fedavg_digits)
    assert art(rounds=2, clients=3) == example.fedavg_digits.fn(rounds=2, clients=3)


@pytest.mark.parametrize("robust", [Median, TrimmedMean])
def test_a_robust_aggregator_bound_at_compile_time_trains(example, robust: type) -> None:
    history = namu.compile(example.fedavg_digits, slots={"aggregator": robust})(rounds=8)
    fedavg = namu.compile(example.fedavg_digits)(rounds=8)
    assert history != fedavg  # another aggregation ran
    assert history[-1]["accuracy"] > history[0]["accuracy"] and history[-1]["accuracy"] >= 0.6


def test_fedprox_trains(example) -> None:
    history = namu.compile(example.fedavg_digits)(rounds=20, mu=0.1)
    assert history[-1]["accuracy"] >= 0.90
    assert history != namu.compile(example.fedavg_digits)(rounds=20)


def test_a_class_that_does_not_implement_the_role_is_a_compile_error(example) -> None:
    with pytest.raises(RoleBindingError) as caught:
        namu.compile(example.fedavg_digits, slots={"aggregator": RandomSelector})
    message = str(caught.value)
    assert "fedavg_digits.py:" in message.splitlines()[0]
    assert "slot 'aggregator' is bound to RandomSelector, which does not implement role Aggregator: " \
           "missing method begin(global_params)" in message


def test_a_method_with_the_wrong_signature_is_named(example) -> None:
    with pytest.raises(RoleBindingError, match=r"whose contribute\(self, peer\) cannot be called as "
                                               r"contribute\(peer, params, num_samples\) \(role Aggregator\)"):
        namu.compile(example.fedavg_digits, slots={"aggregator": _HalfAggregator})


class _HalfAggregator:
    def begin(self, global_params):
        pass

    def contribute(self, peer):
        pass

    def aggregate(self):
        return []


def test_a_class_defined_in_a_function_is_refused(example) -> None:
    class Local(FedAvg):
        pass

    with pytest.raises(RoleBindingError, match="bind a class defined at module level"):
        namu.compile(example.fedavg_digits, slots={"aggregator": Local})


def test_the_cli_binds_a_role_slot_to_a_module_class(tmp_path: Path) -> None:
    proc = namu_cli("compile", str(EXAMPLE), "--slot", "aggregator=namu.federated.aggregators:Median", "-o", "m.onnx",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "namu.federated.aggregators:Median" in namu_cli("inspect", "m.onnx", cwd=tmp_path).stdout


def test_the_cli_refuses_a_wrong_binding_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    proc = namu_cli("compile", str(EXAMPLE), "--slot", "aggregator=namu.federated.selectors:RandomSelector",
                    "-o", "bad.onnx", cwd=tmp_path)
    assert_error(proc, 2, "fedavg_digits.py:", "slot 'aggregator'", "role Aggregator", "missing method begin")
    assert not (tmp_path / "bad.onnx").exists()
    assert_error(namu_cli("compile", str(EXAMPLE), "--slot", "aggregator=no_such_module_xyz:Thing", cwd=tmp_path),
                 2, "cannot import no_such_module_xyz")


def test_a_peer_selector_role_slot_samples_clients_per_round(example, tmp_path: Path) -> None:
    import json

    proc = namu_cli("run", str(EXAMPLE), "-i", "per_round=4", "-i", "rounds=6", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert [r["asked"] for r in document["rounds"]] == [4] * 6
    chosen = [example.select_clients.fn("namu.federated.selectors:RandomSelector", 10, 4, r) for r in range(6)]
    assert len({tuple(c) for c in chosen}) > 1  # another draw each round
    assert document["value"] == example.fedavg_digits.fn(rounds=6, per_round=4)
