"""A federation across processes: ``namu federated server`` and ``namu federated
client`` processes talking gRPC on 127.0.0.1, each installing its partition of one
artifact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.test_cli import REPO, assert_error, namu_cli

PROGRAM = Path(__file__).resolve().parent / "programs" / "fedprog.py"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NAMU_TRACEBACK", "FED_SLOW_MARKER")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **extra}


def _namu(*args: str, cwd: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "namu.cli", *args], cwd=cwd, env=_env(**env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _server(art: str, cwd: Path, *inputs: str) -> tuple[subprocess.Popen[str], str]:
    """Start a server on a free port; return it and its address."""
    proc = _namu("federated", "server", art, "--listen", "127.0.0.1:0", "--json", *inputs, cwd=cwd)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "listening on" in line, line + proc.stderr.read()
    return proc, line.rsplit(" ", 1)[1].strip()


def _compile(cwd: Path, name: str, *flags: str) -> str:
    proc = namu_cli("compile", str(PROGRAM), "-o", name, *flags, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return name


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"timed out:\n{err}") from None
    return proc.returncode, out, err


def test_across_processes_the_same_seeds_give_the_same_final_parameters(tmp_path: Path) -> None:
    art = _compile(tmp_path, "fed.onnx")
    local = namu_cli("run", art, "-i", "rounds=3", "-i", "clients=3", "-i", "out=local.onnx", "--json", cwd=tmp_path)
    assert local.returncode == 0, local.stderr

    server, address = _server(art, tmp_path, "-i", "rounds=3", "-i", "clients=3", "-i", "out=remote.onnx")
    clients = [_namu("federated", "client", art, "--server", address, "--peer", str(c), cwd=tmp_path) for c in range(3)]
    code, out, err = _finish(server)
    assert code == 0, err
    assert json.loads(out)["value"] == json.loads(local.stdout)["value"]
    assert (tmp_path / "remote.onnx").read_bytes() == (tmp_path / "local.onnx").read_bytes()
    for c, client in enumerate(clients):
        code, _, err = _finish(client)
        assert code == 0, err
        assert f"peer {c} answered 6 requests" in err  # 3 rounds of training and of evaluation


def test_a_client_with_another_artifact_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    art = _compile(tmp_path, "fed.onnx", "--fanout-deadline-s", "30")
    other = _compile(tmp_path, "other.onnx", "--fanout-deadline-s", "31")
    server, address = _server(art, tmp_path, "-i", "rounds=1", "-i", "clients=1")
    try:
        client = subprocess.run([sys.executable, "-m", "namu.cli", "federated", "client", other, "--server", address,
                                 "--peer", "0"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60)
        assert_error(client, 1, "the server refused peer 0", "differs from the server's", "install the server's artifact")
    finally:
        server.kill()
        server.communicate()


def test_a_client_killed_mid_round_misses_that_round_and_rejoins_a_later_one(tmp_path: Path) -> None:
    # peer 2 has until round 3's deadline, 24 s after round 1 began, to start again
    # (a peer marked down after three misses is asked again once it says hello)
    art = _compile(tmp_path, "fed.onnx", "--fanout-deadline-s", "8", "--min-replies", "2")
    server, address = _server(art, tmp_path, "-i", "rounds=5", "-i", "clients=3")
    healthy = [_namu("federated", "client", art, "--server", address, "--peer", str(c), cwd=tmp_path) for c in (0, 1)]
    marker = tmp_path / "training"
    straggler = _namu("federated", "client", art, "--server", address, "--peer", "2", cwd=tmp_path,
                      FED_SLOW_MARKER=str(marker))
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), "the straggler never started training"
    straggler.send_signal(signal.SIGKILL)  # in the middle of its round-1 training
    straggler.communicate()
    rejoined = _namu("federated", "client", art, "--server", address, "--peer", "2", cwd=tmp_path)

    code, out, err = _finish(server)
    assert code == 0, err
    history = json.loads(out)["value"]["history"]
    assert history[0]["answered"] == 2  # round 1 closed at its deadline with peers 0 and 1
    assert [h["round"] for h in history] == [1, 2, 3, 4, 5]
    assert any(h["answered"] == 3 for h in history[1:])  # peer 2 came back
    assert history[-1]["accuracy"] > history[0]["accuracy"]
    for client in (*healthy, rejoined):
        code, _, err = _finish(client)
        assert code == 0, err


@pytest.mark.parametrize("argv, needle", [
    (["federated", "client", "fed.onnx", "--peer", "0", "--placement", "gpu"], "has no peer class 'gpu' (it has: client)"),
    (["federated", "server", "fed.onnx", "--listen", "nowhere"], "--listen needs HOST:PORT"),
])
def test_cli_misuse_is_one_line_and_exit_code_2(tmp_path: Path, argv: list[str], needle: str) -> None:
    _compile(tmp_path, "fed.onnx")
    assert_error(namu_cli(*argv, cwd=tmp_path), 2, needle)


def test_a_workflow_without_a_peer_class_is_not_served(tmp_path: Path) -> None:
    (tmp_path / "plain.py").write_text("import namu\n\n@namu.workflow\ndef plain(x: int = 1) -> int:\n    return x + 1\n")
    assert_error(namu_cli("federated", "client", "plain.py", "--peer", "0", cwd=tmp_path), 2, "is not a federated program")


def test_a_server_killed_mid_round_resumes_from_its_checkpoint_to_the_same_parameters(tmp_path: Path) -> None:
    """SIGKILL the server while round 1 waits for a straggler (two replies in, journaled),
    start it again with the same command: the finished work and the two replies are
    served from the checkpoint, only the straggler's peer is asked again, the clients
    that were waiting reconnect and continue, and the final parameters are those of an
    uninterrupted run."""
    import sqlite3

    art = _compile(tmp_path, "fed.onnx", "--fanout-deadline-s", "120", "--min-replies", "3")
    local = namu_cli("run", art, "-i", "rounds=3", "-i", "clients=3", "-i", "out=local.onnx", cwd=tmp_path)
    assert local.returncode == 0, local.stderr

    command = (art, "-i", "rounds=3", "-i", "clients=3", "-i", "out=remote.onnx", "--checkpoint", "server.ckpt")
    server, address = _server(*command[:1], tmp_path, *command[1:])
    port = address.rsplit(":", 1)[1]
    healthy = [_namu("federated", "client", art, "--server", address, "--peer", str(c), cwd=tmp_path) for c in (0, 1)]
    marker = tmp_path / "training"
    straggler = _namu("federated", "client", art, "--server", address, "--peer", "2", cwd=tmp_path,
                      FED_SLOW_MARKER=str(marker))
    replies = 0
    deadline = time.monotonic() + 60
    while (replies < 2 or not marker.exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            with sqlite3.connect(tmp_path / "server.ckpt", timeout=0.05) as db:
                replies = db.execute("SELECT count(*) FROM calls WHERE task = 'namu.Gather'").fetchone()[0]
        except sqlite3.Error:
            pass
    assert replies == 2 and marker.exists(), "round 1 never reached the straggler with two replies in"
    server.send_signal(signal.SIGKILL)
    server.communicate()
    straggler.send_signal(signal.SIGKILL)
    straggler.communicate()

    restarted = _namu("federated", "server", art, "--listen", f"127.0.0.1:{port}", "--json", *command[1:], cwd=tmp_path)
    back = _namu("federated", "client", art, "--server", address, "--peer", "2", cwd=tmp_path)
    code, out, err = _finish(restarted)
    assert code == 0, err
    document = json.loads(out)
    assert document["resumed_calls"] >= 3  # initial parameters and the two replies, at least
    assert (tmp_path / "remote.onnx").read_bytes() == (tmp_path / "local.onnx").read_bytes()
    answered = {}
    for peer, client in ((0, healthy[0]), (1, healthy[1]), (2, back)):
        code, _, err = _finish(client)
        assert code == 0, err
        answered[peer] = err
    # round 1's training, asked again, then rounds 2 and 3; and three evaluations
    assert "peer 2 answered 6 requests" in answered[2]
