"""``namu runs list`` and ``namu runs show``, run as real subprocesses over a run history
written by :class:`~namu.runtime.llm.history.RunHistory` in a temporary directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from namu.runtime.llm.history import HISTORY_ENV, RunHistory, RunRecord
from namu.runtime.llm.messages import Message, ToolCall, ToolResult, Usage
from tests.cli.test_cli import assert_error, namu_cli

CALL = ToolCall("toolu_01", "calculator", {"expression": "25 * 47"})
TRANSCRIPT = (
    Message("user", "What is 25 * 47?"),
    Message("assistant", "Let me compute.", tool_calls=(CALL,)),
    Message("tool", tool_results=(ToolResult("toolu_01", "calculator", "1175"),)),
    Message("assistant", "25 * 47 = 1175."),
)
OK = RunRecord(
    id="a1b2c3d4e5f6",
    agent="calculator",
    status="ok",
    session="alice",
    model="claude-sonnet-4-5",
    started_at="2026-12-01T10:00:00.000+00:00",
    duration_s=2.25,
    stop="end",
    inputs={"input": "What is 25 * 47?"},
    answer="25 * 47 = 1175.",
    messages=TRANSCRIPT,
    tool_calls=(CALL,),
    usage=Usage(1200, 80, 0, 300),
    cost_usd=0.00489,
    iterations=2,
)
FAILED = RunRecord(
    id="a1ff00000000",
    agent="support",
    status="error",
    model="llama3.1:8b",
    started_at="2026-12-01T11:00:00.000+00:00",
    duration_s=75.0,
    messages=(Message("user", "Hello"), Message("tool", tool_results=(ToolResult("t1", "http", "host not allowed", True),))),
    usage=Usage(40, 0, complete=False),
    cost_usd=None,
    iterations=1,
    error="ProviderUnavailableError: 503 from http://localhost:11434",
)


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / "runs.sqlite"
    with RunHistory(path) as runs:
        runs.record(OK)
        runs.record(FAILED)
    return path


def test_list_shows_one_line_per_run_most_recent_first(tmp_path: Path, history: Path) -> None:
    proc = namu_cli("runs", "list", "--history", str(history), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["id", "agent", "status", "iterations", "tokens", "cost", "duration", "started", "(UTC)"]
    assert lines[1].split() == ["a1ff00000000", "support", "error", "1", "40+", "?", "1m15s", "2026-12-01", "11:00:00"]
    assert lines[2].split() == ["a1b2c3d4e5f6", "calculator", "ok", "2", "1,580", "$0.0049", "2.2s", "2026-12-01", "10:00:00"]
    assert all(line == line.rstrip() for line in lines)


def test_list_filters_and_limits(tmp_path: Path, history: Path) -> None:
    def ids(*args: str) -> list[str]:
        proc = namu_cli("runs", "list", "--history", str(history), "--json", *args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return [run["id"] for run in json.loads(proc.stdout)["runs"]]

    assert ids() == [FAILED.id, OK.id]
    assert ids("--limit", "1") == [FAILED.id]
    assert ids("--agent", "calculator") == [OK.id]
    assert ids("--session", "alice") == [OK.id]
    assert ids("--agent", "nobody") == []


def test_list_json_holds_whole_records(tmp_path: Path, history: Path) -> None:
    proc = namu_cli("runs", "list", "--history", str(history), "--json", cwd=tmp_path)
    assert json.loads(proc.stdout) == {"runs": [FAILED.to_json(), OK.to_json()]}


def test_list_reads_the_history_named_by_the_environment(tmp_path: Path, history: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HISTORY_ENV, str(history))
    proc = namu_cli("runs", "list", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert OK.id in proc.stdout and FAILED.id in proc.stdout


def test_list_without_a_history_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "none" / "runs.sqlite"
    proc = namu_cli("runs", "list", "--history", str(missing), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"no runs recorded in {missing}\n"
    assert not missing.parent.exists()
    proc = namu_cli("runs", "list", "--history", str(missing), "--json", cwd=tmp_path)
    assert json.loads(proc.stdout) == {"runs": []}


def test_show_prints_the_transcript_tool_calls_usage_and_cost(tmp_path: Path, history: Path) -> None:
    proc = namu_cli("runs", "show", "a1b2", "--history", str(history), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text.startswith("run a1b2c3d4e5f6  ok\n")
    for needle in (
        "session     alice",
        "model       claude-sonnet-4-5",
        "usage       1,200 input, 80 output, 0 cache write, 300 cache read",
        "cost        $0.0049",
        '"input": "What is 25 * 47?"',
        "transcript (4 messages)",
        '-> calculator({"expression": "25 * 47"})  [toolu_01]',
        "<- calculator [toolu_01]: 1175",
        "answer\n  25 * 47 = 1175.",
    ):
        assert needle in text, needle
    assert text.index("What is 25 * 47?") < text.index("Let me compute.") < text.index("<- calculator")


def test_show_reports_errors_unknown_costs_and_incomplete_usage(tmp_path: Path, history: Path) -> None:
    proc = namu_cli("runs", "show", FAILED.id, "--history", str(history), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "error       ProviderUnavailableError: 503 from http://localhost:11434" in proc.stdout
    assert "cost        ? (the model's price is unknown)" in proc.stdout
    assert "(incomplete: the provider did not report all usage)" in proc.stdout
    assert "<- http error [t1]: host not allowed" in proc.stdout


def test_show_json_is_the_record(tmp_path: Path, history: Path) -> None:
    proc = namu_cli("runs", "show", OK.id, "--json", "--history", str(history), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == OK.to_json()
    assert RunRecord.from_json(json.loads(proc.stdout)) == OK


@pytest.mark.parametrize(
    ("run_id", "needle"),
    [("ffff", "no run 'ffff' in the run history"), ("a1", "run id 'a1' is ambiguous"), ("", "no run ''")],
)
def test_show_a_missing_or_ambiguous_id_is_one_line_and_exit_2(tmp_path: Path, history: Path, run_id: str, needle: str) -> None:
    proc = namu_cli("runs", "show", run_id, "--history", str(history), cwd=tmp_path)
    assert_error(proc, 2, needle)


def test_show_without_a_history(tmp_path: Path) -> None:
    proc = namu_cli("runs", "show", "abc", "--history", str(tmp_path / "none.sqlite"), cwd=tmp_path)
    assert_error(proc, 2, "no run 'abc'", "does not exist")
    assert not (tmp_path / "none.sqlite").exists()


@pytest.mark.parametrize("command", [["list"], ["show", "abc"]])
def test_a_file_that_is_not_a_history_is_one_line_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n" * 100)
    proc = namu_cli("runs", *command, "--history", str(path), cwd=tmp_path)
    assert_error(proc, 2, str(path))


def test_a_limit_below_one_is_a_usage_error(tmp_path: Path, history: Path) -> None:
    assert_error(namu_cli("runs", "list", "--limit", "0", "--history", str(history), cwd=tmp_path), 2, "--limit")


@pytest.mark.parametrize("command", [["runs"], ["runs", "list"], ["runs", "show"]])
def test_help_explains_with_examples(tmp_path: Path, command: list[str]) -> None:
    proc = namu_cli(*command, "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Examples:" in proc.stdout and "namu runs" in proc.stdout


def test_runs_is_listed_in_namu_help(tmp_path: Path) -> None:
    proc = namu_cli("--help", cwd=tmp_path)
    assert "runs" in proc.stdout and "List and show the recorded agent runs." in proc.stdout


def test_runs_says_when_the_history_is_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAMU_RUN_HISTORY", "off")
    assert_error(namu_cli("runs", "list", cwd=tmp_path), 2, "NAMU_RUN_HISTORY=off: no run history is kept")
    assert not (tmp_path / "off").exists()
