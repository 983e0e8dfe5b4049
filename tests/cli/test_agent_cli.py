"""``namu run AGENT.yaml``, ``namu compile`` / ``inspect`` of an agent, ``--json``,
``--stream``, ``--dry-run``, ``--override``, ``--session`` and the run history, against
the loopback LLM server (the CLI runs in a subprocess, the server in this process)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agents.llm_server import Fault, LLMServer, Reply
from tests.cli.test_cli import assert_error, namu_cli

KEY = "sk-cli-test-key-0123456789"


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as started:
        yield started


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAMU_RUN_HISTORY", str(tmp_path / "runs.sqlite"))
    monkeypatch.setenv("NAMU_CLI_TEST_KEY", KEY)


def agent(tmp_path: Path, server: LLMServer, extra: str = "") -> Path:
    path = tmp_path / "calc.yaml"
    path.write_text(
        "name: calc\n"
        "llm:\n"
        "  provider: openai\n"
        "  model: gpt-4o-mini\n"
        f"  base_url: {server.openai_base_url}\n"
        "  api_key_env: NAMU_CLI_TEST_KEY\n"
        "  retry: {max_retries: 1, backoff_base_s: 0.001}\n"
        "system_prompt: 'You help {{ customer }}. Use the calculator.'\n"
        "variables: {customer: everyone}\n"
        "tools: [calculator]\n" + extra
    )
    return path


def test_run_prints_the_answer(tmp_path: Path, server: LLMServer) -> None:
    proc = namu_cli("run", str(agent(tmp_path, server)), "--input", "What is 25 * 47?", cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "The answer is 1175.\n", "")
    assert "You help everyone." in json.dumps(server.requests[0].json["messages"])


def test_run_json(tmp_path: Path, server: LLMServer) -> None:
    proc = namu_cli("run", str(agent(tmp_path, server)), "-i", "What is 6 * 7?", "-i", "customer=Ada", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["value"] == "The answer is 42."
    assert (doc["iterations"], doc["stop"]) == (2, "answer")
    assert set(doc["usage"]) >= {"input_tokens", "output_tokens", "cost_usd"} and doc["usage"]["cost_usd"] > 0
    assert doc["tool_calls"] == [{"id": doc["tool_calls"][0]["id"], "name": "calculator", "arguments": {"expression": "6 * 7"},
                                  "result": "42", "is_error": False}]
    assert "You help Ada." in json.dumps(server.requests[0].json["messages"])
    show = namu_cli("runs", "show", doc["run_id"], "--json", cwd=tmp_path)
    assert show.returncode == 0 and json.loads(show.stdout)["answer"] == "The answer is 42."


def test_run_stream(tmp_path: Path, server: LLMServer) -> None:
    proc = namu_cli("run", str(agent(tmp_path, server)), "-i", "What is 2 + 3?", "--stream", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "The answer is 5.\n"
    assert '-> calculator({"expression": "2 + 3"})' in proc.stderr and "<- 5" in proc.stderr
    assert all(r.stream for r in server.requests)


def test_dry_run_makes_no_request(tmp_path: Path, server: LLMServer) -> None:
    path = agent(tmp_path, server, "limits: {max_cost_usd: 0.5}\n")
    proc = namu_cli("run", str(path), "-i", "What is 25 * 47?", "--dry-run", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["llm"]["model"] == "gpt-4o-mini" and plan["limits"]["max_cost_usd"] == 0.5
    assert [t["name"] for t in plan["tools"]] == ["calculator"]
    assert plan["tools"][0]["input_schema"]["properties"]["expression"]["type"] == "string"
    assert plan["estimated_input_tokens"] > 0 and plan["estimated_cost_usd"] > 0
    text = namu_cli("run", str(path), "-i", "hi", "--dry-run", cwd=tmp_path)
    assert text.returncode == 0 and "gpt-4o-mini" in text.stdout and "calculator" in text.stdout
    assert server.requests == []


def test_override_is_validated_like_the_file(tmp_path: Path, server: LLMServer) -> None:
    path = agent(tmp_path, server)
    proc = namu_cli("run", str(path), "-i", "What is 1 + 1?", "--override", "llm.temperature=0.2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert server.requests[0].json["temperature"] == 0.2
    assert_error(namu_cli("run", str(path), "-i", "x", "--override", "llm.temprature=0.2", cwd=tmp_path), 2,
                 "--override llm.temprature: unknown key `temprature` in `llm` (did you mean `temperature`?)")
    assert_error(namu_cli("run", str(path), "-i", "x", "--override", "llm.temperature=hot", cwd=tmp_path), 2,
                 "`llm.temperature`: Input should be a valid number")


def test_compile_inspect_and_run_the_artifact(tmp_path: Path, server: LLMServer) -> None:
    path = agent(tmp_path, server)
    compiled = namu_cli("compile", str(path), "-o", str(tmp_path / "calc.onnx"), cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stderr
    inspected = namu_cli("inspect", str(tmp_path / "calc.onnx"), cwd=tmp_path)
    assert inspected.returncode == 0
    for needle in ("namu.AgentStart", "namu.Loop", "namu.Gate[retries=1", 'breaker="openai/gpt-4o-mini"', "namu.AgentFinish"):
        assert needle in inspected.stdout, needle
    assert KEY not in (tmp_path / "calc.onnx").read_bytes().decode("latin-1")
    run = namu_cli("run", str(tmp_path / "calc.onnx"), "-i", "What is 9 * 9?", cwd=tmp_path)
    assert (run.returncode, run.stdout) == (0, "The answer is 81.\n")
    dumped = namu_cli("compile", str(path), "-o", str(tmp_path / "c2.onnx"), "--dump-after", "insert-resilience-gates", cwd=tmp_path)
    assert dumped.returncode == 0, dumped.stderr
    dumps = "".join(p.read_text() for p in sorted((tmp_path / "calc.ir").iterdir()))
    assert "namu.Gate" in dumps and "calc.llm" in dumps


def test_a_limit_fails_the_run_with_one_line_and_is_recorded(tmp_path: Path, server: LLMServer) -> None:
    path = agent(tmp_path, server, "limits: {max_iterations: 1}\n")
    proc = namu_cli("run", str(path), "-i", "What is 2 * 2?", cwd=tmp_path)
    assert_error(proc, 1, "agent 'calc' stopped by limits.max_iterations = 1: spent 1 LLM call(s)")
    listed = namu_cli("runs", "list", "--json", cwd=tmp_path)
    runs = json.loads(listed.stdout)["runs"]
    assert [(r["agent"], r["status"], r["stop"]) for r in runs] == [("calc", "limit", "max_iterations")]
    assert runs[0]["messages"][0]["content"] == "What is 2 * 2?"  # the partial transcript is kept


def test_a_provider_failure_is_one_line_without_the_key(tmp_path: Path, server: LLMServer) -> None:
    server.script(Fault(status=401, message=f"invalid key {KEY}"))
    proc = namu_cli("run", str(agent(tmp_path, server)), "-i", "hi", cwd=tmp_path)
    line = assert_error(proc, 1, "ProviderRequestError")
    assert KEY not in line
    history = (tmp_path / "runs.sqlite").read_bytes()
    assert KEY.encode() not in history
    (status,) = sqlite3.connect(tmp_path / "runs.sqlite").execute("SELECT status FROM runs").fetchone()
    assert status == "error"


def test_a_session_continues_across_runs(tmp_path: Path, server: LLMServer) -> None:
    path = agent(tmp_path, server)
    assert namu_cli("run", str(path), "-i", "What is 1 + 2?", "--session", "s", cwd=tmp_path).returncode == 0
    server.script(Reply(text="You asked what 1 + 2 is."))
    proc = namu_cli("run", str(path), "-i", "What did I ask?", "--session", "s", cwd=tmp_path)
    assert proc.stdout == "You asked what 1 + 2 is.\n"
    assert [m["role"] for m in server.requests[-1].json["messages"]] == ["system", "user", "assistant", "tool", "assistant", "user"]


def test_agent_flags_on_a_workflow_and_a_second_message_are_usage_errors(tmp_path: Path, server: LLMServer) -> None:
    (tmp_path / "wf.py").write_text("import namu\n\n@namu.workflow\ndef wf(x: int = 1) -> int:\n    return x\n")
    assert_error(namu_cli("run", str(tmp_path / "wf.py"), "--stream", cwd=tmp_path), 2, "--stream applies to agents")
    assert_error(namu_cli("run", str(tmp_path / "wf.py"), "--override", "a=1", cwd=tmp_path), 2, "--override edits an agent file")
    assert_error(namu_cli("run", str(agent(tmp_path, server)), "-i", "a", "-i", "b", cwd=tmp_path), 2, "the user message is given twice")


def test_no_api_key_is_a_clear_error(tmp_path: Path, server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NAMU_CLI_TEST_KEY")
    path = tmp_path / "anthropic.yaml"
    path.write_text(f"name: a\nllm: {{provider: anthropic, model: claude-sonnet-4-5, base_url: '{server.anthropic_base_url}', "
                    "api_key_env: NAMU_CLI_TEST_KEY, retry: {max_retries: 0}}\n")
    proc = namu_cli("run", str(path), "-i", "hi", cwd=tmp_path)
    assert_error(proc, 1, "NAMU_CLI_TEST_KEY")
    assert os.environ.get("NAMU_CLI_TEST_KEY") is None


def test_ctrl_c_stops_the_run_and_records_it(tmp_path: Path, server: LLMServer) -> None:
    import signal
    import subprocess
    import sys
    import time

    from tests.cli.test_cli import REPO

    server.script(Fault(delay_s=30.0))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "namu.cli", "run", str(agent(tmp_path, server)), "-i", "What is 1 + 1?"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not server.requests and time.monotonic() < deadline:  # wait for the LLM call to be in flight
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.startswith("error: run cancelled") and "Traceback" not in stderr
    (status, messages) = sqlite3.connect(tmp_path / "runs.sqlite").execute("SELECT status, messages FROM runs").fetchone()
    assert status == "cancelled" and "What is 1 + 1?" in messages


def test_the_llm_slot_can_be_bound_to_a_task_of_yours(tmp_path: Path, server: LLMServer) -> None:
    (tmp_path / "scripted.py").write_text(
        "import namu\n"
        "from namu.runtime.llm.messages import LLMResponse, ToolCall, Usage\n\n"
        "@namu.task\n"
        "async def llm(config: str, state: object) -> object:\n"
        "    last = state.messages[-1]\n"
        "    if last.role == 'user':\n"
        "        return LLMResponse('', (ToolCall('c1', 'calculator', {'expression': '6 * 7'}),), 'tool_use', 'tool_use', Usage(1, 1), 'm')\n"
        "    return LLMResponse('It is ' + last.tool_results[0].content, (), 'end', 'end_turn', Usage(1, 1), 'm')\n"
    )
    art = tmp_path / "scripted.onnx"
    compiled = namu_cli("compile", str(agent(tmp_path, server)), "-o", str(art), "--slot", "calc.llm=scripted.py:llm", cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stderr
    proc = namu_cli("run", str(art), "-i", "What is 6 * 7?", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "It is 42\n")
    assert server.requests == []  # no provider was called
