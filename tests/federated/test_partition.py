"""A federated program compiles into a server and a client partition with a
Scatter/Gather wire pair between them, and runs in one process as plain Python would."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

import namu
from namu.errors import CompileError
from namu.federated.envelope import WireValueError
from namu.federated.node import FederationError
from namu.passes.config import CompileConfig
from namu.runtime.user_code import import_path
from tests.cli.test_cli import namu_cli
from tests.frontend.wf_samples import import_source

PROGRAM = Path(__file__).resolve().parent / "programs" / "fedprog.py"


@pytest.fixture(scope="module")
def fedprog():
    return import_path(PROGRAM).fedprog


def test_the_program_is_partitioned_into_a_server_and_a_client_function(fedprog) -> None:
    art = namu.compile(fedprog)
    functions = {f.name: f for f in art.model.functions.values() if f.domain == "namu.partition"}
    assert sorted(functions) == ["client", "server"]
    client = functions["client"].graph
    assert not client.inputs and len(client.outputs) == 2  # the channels served
    handles = {n.attributes["channel"].as_string(): n.attributes["body"].as_graph() for n in client}
    assert [n.op_type for n in client] == ["Handle", "Handle"]  # training, then evaluation
    tasks = sorted(n.attributes["task"].as_string() for body in handles.values() for n in body)
    assert tasks == ["local_accuracy", "local_train"]
    for body in handles.values():
        assert body.inputs[0].name.startswith("c")  # the item: the peer's id
    server_ops = [n.op_type for n in namu.ir.scopes.walk(functions["server"].graph)]
    assert "Scatter" in server_ops and "Gather" in server_ops and "Map" not in server_ops
    assert art.handler_placements() == ["client"]
    onnx.checker.check_model(art.to_proto(), full_check=True)


def test_namu_inspect_shows_both_partitions_and_the_wire_gates(tmp_path: Path) -> None:
    assert namu_cli("compile", str(PROGRAM), "-o", "fed.onnx", "--fanout-deadline-s", "7.5", "--min-replies", "2",
                    cwd=tmp_path).returncode == 0
    proc = namu_cli("inspect", "fed.onnx", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "function namu.partition.client():" in proc.stdout, proc.stdout
    assert proc.stdout.count("namu.Handle[channel=") == 2
    assert "function namu.partition.server(%rounds, %clients, %out):" in proc.stdout
    scatter = next(line for line in proc.stdout.splitlines() if "namu.Scatter" in line)
    for gate in ("to=client", "deadline_s=7.5", "min_replies=2", "max_failures=3", "backoff_base_s=0.05", "dedup=1"):
        assert gate in scatter
    assert "namu.Gather" in proc.stdout


@pytest.mark.parametrize("executor", ["kernel", "reference"])
@pytest.mark.parametrize("level", [0, 2])
def test_one_process_runs_the_federation_as_plain_python(fedprog, executor: str, level: int) -> None:
    art = namu.compile(fedprog, opt_level=level)
    assert art.run(rounds=2, clients=3, executor=executor).value == fedprog.fn(rounds=2, clients=3)


def test_a_saved_artifact_runs_the_federation_after_loading(fedprog, tmp_path: Path) -> None:
    path = namu.compile(fedprog).save(tmp_path / "fed.onnx")
    assert namu.load(path)(rounds=1, clients=2) == fedprog.fn(rounds=1, clients=2)


def test_a_client_failure_leaves_the_round_to_the_others_when_min_replies_allows(tmp_path: Path) -> None:
    module = import_source(tmp_path / "fedfail.py", '''
import namu

@namu.task(placement="client")
def train(peer: int) -> int:
    if peer == 1:
        raise ValueError("no data on peer 1")
    return peer * 10

@namu.task
def aggregate(updates: list) -> int:
    return sum(updates)

@namu.workflow(placement="server")
def fedfail(rounds: int = 2) -> list:
    total = []
    for r in range(rounds):
        updates = [train(c) for c in range(3)]
        total.append(aggregate(updates))
    return total
''')
    tolerant = namu.compile(module.fedfail, config=CompileConfig(min_replies=2))
    assert tolerant(rounds=2) == [20, 20]  # peers 0 and 2 answered each round
    strict = namu.compile(module.fedfail, config=CompileConfig(min_replies=3))
    with pytest.raises(FederationError,
                       match=r"2 of 3 peers answered, 3 needed \(min_replies\); missing: 1 \(ValueError: no data on peer 1\)"):
        strict(rounds=1)


def test_a_peer_class_that_also_runs_ops_of_the_main_graph_is_refused(tmp_path: Path) -> None:
    module = import_source(tmp_path / "fedmixed.py", '''
import namu

@namu.task(placement="client")
def fit(peer: int) -> int:
    return peer

@namu.task
def total(xs: list) -> int:
    return sum(xs)

@namu.workflow(placement="server")
def fedmixed(rounds: int = 2) -> int:
    s = fit(7)
    for r in range(rounds):
        s = s + total([fit(c) for c in range(3)])
    return s
''')
    with pytest.raises(CompileError, match=r"fedmixed.py:16:\d+: this fan-out runs at placement 'client' for control "
                                           r"flow at 'server', and other ops of the workflow run at 'client' too"):
        namu.compile(module.fedmixed)


def test_a_terminal_shows_one_line_per_round_with_its_metrics_and_json_lists_the_rounds(tmp_path: Path) -> None:
    import io
    import json

    from rich.console import Console

    from namu.runtime.progress import ProgressHooks

    example = import_path(Path(__file__).resolve().parents[2] / "examples" / "federated" / "fedavg_digits.py")
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, force_interactive=True, width=120)
    art = namu.compile(example.fedavg_digits)
    with ProgressHooks("fedavg", console=console) as progress:
        history = art.run(rounds=3, clients=4, hooks=progress).value
    assert progress.total == progress.completed == 12  # every client's answer advanced the bar
    for h in history:
        assert f"round {h['round']} local_train: 4/4 clients answered in " in out.getvalue()
        assert f"accuracy {h['accuracy']:.4g}" in out.getvalue()

    proc = namu_cli("run", str(PROGRAM), "-i", "rounds=2", "-i", "clients=2", "--json", cwd=tmp_path)
    rounds = json.loads(proc.stdout)["rounds"]
    assert [(r["label"], r["round"], r["asked"], r["answered"], r["missing"], r["failure"]) for r in rounds] == [
        ("local_train", 1, 2, 2, [], None), ("local_accuracy", 1, 2, 2, [], None),
        ("local_train", 2, 2, 2, [], None), ("local_accuracy", 2, 2, 2, [], None)]


def test_values_that_cannot_cross_processes_fail_in_one_process_too(tmp_path: Path) -> None:
    module = import_source(tmp_path / "fedbad.py", '''
import namu

@namu.task(placement="client")
def fit(peer: int, tag: object) -> set:
    return {peer}

@namu.task
def total(xs: list) -> int:
    return len(xs)

@namu.workflow(placement="server")
def fedbad(send_set: bool = False) -> int:
    tag = {1, 2} if send_set else "ok"
    s = 0
    for r in range(1):
        s = s + total([fit(c, tag) for c in range(2)])
    return s
''')
    art = namu.compile(module.fedbad)
    with pytest.raises(FederationError, match=r"missing: 0 \(WireValueError: reply\[0\]: a set "
                                                                  r"cannot cross the wire"):
        art(send_set=False)
    with pytest.raises(WireValueError,
                       match=r"request 0 of fit\[1\]: a set cannot cross the wire"):
        art(send_set=True)


def test_a_workflow_placement_must_be_a_placement_name() -> None:
    with pytest.raises(namu.TaskDefinitionError, match="needs a placement name such as 'server', got 'two words'"):
        namu.workflow(placement="two words")(lambda: None)


def test_a_compile_placement_wins_over_the_workflows(fedprog) -> None:
    art = namu.compile(fedprog, config=CompileConfig(placement="hub"))
    assert sorted(f.name for f in art.model.functions.values() if f.domain == "namu.partition") == ["client", "hub"]
