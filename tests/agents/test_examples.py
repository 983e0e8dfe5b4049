"""The agents of ``examples/agents/`` run against the loopback LLM server, pointed at it
through the SDKs' own environment variables (as a user would point them at a provider)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import namu
from namu.runtime.user_code import import_path
from tests.agents.llm_server import LLMServer, Reply
from tests.cli.test_cli import namu_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "agents"


@pytest.fixture
def provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMServer]:
    with LLMServer() as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-example")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-example")
        monkeypatch.setenv("NAMU_RUN_HISTORY", str(tmp_path / "runs.sqlite"))
        yield server


def test_the_calculator_example_from_the_cli(tmp_path: Path, provider: LLMServer) -> None:
    proc = namu_cli("run", str(EXAMPLES / "calculator.yaml"), "-i", "What is 25 * 47?", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["value"], doc["iterations"], doc["tool_calls"][0]["result"]) == ("The answer is 1175.", 2, "1175")
    assert doc["usage"]["cost_usd"] > 0  # claude-sonnet-4-5 is in the price table
    assert provider.requests[0].json["model"] == "claude-sonnet-4-5"


def test_the_librarian_reads_its_documents(provider: LLMServer) -> None:
    librarian = namu.agent(EXAMPLES / "librarian.yaml")
    provider.script(Reply(tool_calls=[("read_file", {"path": "namu.md"})]), Reply(text="namu compiles AI pipelines (namu.md)."))
    result = librarian.run("What is namu?", reader="Ada")
    assert result.answer == "namu compiles AI pipelines (namu.md)."
    assert "compiler toolchain for AI pipelines" in result.tool_results[0].content
    first = provider.requests[0].json
    assert "Ada" in first["messages"][0]["content"] and "80 words" in first["messages"][0]["content"]
    assert {t["function"]["name"] for t in first["tools"]} >= {"read_file", "list_directory", "search_files", "calculator"}
    assert "write_file" not in {t["function"]["name"] for t in first["tools"]}  # read_only


def test_the_triage_workflow_fans_out_the_calculator(provider: LLMServer) -> None:
    triage = import_path(EXAMPLES / "triage.py").triage
    assert triage(["What is 25 * 47?", "What is 2 ** 10?"]) == "1. The answer is 1175.\n2. The answer is 1024."
    assert len(provider.requests) == 4
