"""The local run history: recording, listing, finding by id prefix, continuing a
session, keeping secrets out, and several writers at once."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from pathlib import Path

import pytest

from namu.errors import RunHistoryError
from namu.runtime.cache import DiskCache
from namu.runtime.llm.history import (
    HISTORY_ENV,
    RunHistory,
    RunRecord,
    default_history_path,
    scrub_secrets,
)
from namu.runtime.llm.messages import Message, ToolCall, ToolResult, Usage

CALL = ToolCall("c1", "calculator", {"expression": "25 * 47"})
TRANSCRIPT = (
    Message("user", "What is 25 * 47?"),
    Message("assistant", "Let me compute.", tool_calls=(CALL,)),
    Message("tool", tool_results=(ToolResult("c1", "calculator", "1175"),)),
    Message("assistant", "25 * 47 = 1175."),
)


def a_run(**fields: object) -> RunRecord:
    values: dict[str, object] = {
        "agent": "calculator",
        "status": "ok",
        "artifact": "sha256:abc",
        "model": "claude-sonnet-4-5",
        "duration_s": 1.5,
        "stop": "end",
        "inputs": {"input": "What is 25 * 47?"},
        "answer": "25 * 47 = 1175.",
        "messages": TRANSCRIPT,
        "tool_calls": (CALL,),
        "usage": Usage(1200, 80, 0, 300),
        "cost_usd": 0.0048,
        "iterations": 2,
    }
    values.update(fields)
    return RunRecord(**values)  # type: ignore[arg-type]


@pytest.fixture
def history(tmp_path: Path) -> RunHistory:
    with RunHistory(tmp_path / "runs.sqlite") as opened:
        yield opened


def test_a_recorded_run_reads_back_whole(history: RunHistory) -> None:
    run = a_run(session="s1", error="")
    stored = history.record(run)
    assert stored == run
    assert history.get(run.id) == run
    assert history.get(run.id).messages == TRANSCRIPT


def test_record_accepts_lists_and_keeps_tuples(history: RunHistory) -> None:
    run = a_run(messages=list(TRANSCRIPT), tool_calls=[CALL])
    assert run.messages == TRANSCRIPT and run.tool_calls == (CALL,)
    assert history.record(run) == run


def test_status_must_be_known() -> None:
    with pytest.raises(ValueError, match="ok, error, limit, cancelled"):
        a_run(status="done")


def test_the_error_is_recorded_as_one_line(history: RunHistory) -> None:
    stored = history.record(a_run(status="error", error="\nrate limited (429)\nretry-after: 3\n"))
    assert stored.error == "rate limited (429) ..."
    assert history.get(stored.id).error == "rate limited (429) ..."


def test_inputs_that_are_not_json_are_recorded_as_their_repr(history: RunHistory) -> None:
    stored = history.record(a_run(inputs={"path": Path("/tmp/x"), "n": 3, "xs": (1, 2)}))
    assert history.get(stored.id).inputs == {"path": repr(Path("/tmp/x")), "n": 3, "xs": [1, 2]}


def test_list_is_most_recent_first_and_filters(history: RunHistory) -> None:
    runs = [
        a_run(agent="a", session="s1", started_at="2026-01-01T10:00:00.000+00:00"),
        a_run(agent="b", session="s1", started_at="2026-01-01T11:00:00.000+00:00"),
        a_run(agent="a", session=None, started_at="2026-01-01T12:00:00.000+00:00"),
        a_run(agent="a", session="s2", started_at="2026-01-01T09:00:00.000+00:00"),
    ]
    for run in runs:
        history.record(run)
    ids = [r.id for r in runs]
    assert [r.id for r in history.list()] == [ids[2], ids[1], ids[0], ids[3]]
    assert [r.id for r in history.list(limit=2)] == [ids[2], ids[1]]
    assert [r.id for r in history.list(agent="a")] == [ids[2], ids[0], ids[3]]
    assert [r.id for r in history.list(session="s1")] == [ids[1], ids[0]]
    assert [r.id for r in history.list(agent="a", session="s1")] == [ids[0]]
    assert history.list(agent="nobody") == []
    assert len(history.list(limit=None)) == 4


def test_get_by_unique_prefix(history: RunHistory) -> None:
    run = history.record(a_run(id="abc123def456"))
    history.record(a_run(id="abd000000000"))
    assert history.get("abc").id == run.id
    assert history.get("abc123def456").id == run.id


def test_get_missing_or_ambiguous_id_is_a_key_error_that_says_so(history: RunHistory) -> None:
    history.record(a_run(id="abc111111111"))
    history.record(a_run(id="abc222222222"))
    with pytest.raises(KeyError) as missing:
        history.get("ffff")
    assert missing.value.args[0] == f"no run 'ffff' in the run history {history.path}"
    with pytest.raises(KeyError) as ambiguous:
        history.get("ab")
    message = ambiguous.value.args[0]
    assert "'ab' is ambiguous" in message and "abc111111111" in message and "abc222222222" in message
    assert "\n" not in message
    with pytest.raises(KeyError):
        history.get("")


def test_a_prefix_is_not_a_pattern(history: RunHistory) -> None:
    history.record(a_run(id="abc111111111"))
    with pytest.raises(KeyError):
        history.get("a%")
    with pytest.raises(KeyError):
        history.get("a_c")


def test_a_session_continues_from_its_last_answer(history: RunHistory) -> None:
    assert history.session_messages("s") == []
    history.record(a_run(session="s", messages=TRANSCRIPT))
    assert history.session_messages("s") == list(TRANSCRIPT)
    # the next run continued the transcript, then a limit stopped it mid-tool-call
    follow_up = (
        *TRANSCRIPT,
        Message("user", "And times 2?"),
        Message("assistant", "", tool_calls=(ToolCall("c2", "calculator", {"expression": "1175 * 2"}),)),
    )
    history.record(a_run(session="s", status="limit", stop="max_iterations", messages=follow_up))
    assert history.session_messages("s") == list(TRANSCRIPT)
    answered = (*follow_up, Message("tool", tool_results=(ToolResult("c2", "calculator", "2350"),)), Message("assistant", "2350."))
    history.record(a_run(session="s", messages=answered))
    assert history.session_messages("s") == list(answered)
    history.record(a_run(session="other", messages=TRANSCRIPT[:1], status="error"))
    assert history.session_messages("other") == []
    assert history.session_messages("s") == list(answered)


SECRETS = {
    "ANTHROPIC_API_KEY": "sk-ant-api03-SECRETSECRET",
    "GH_TOKEN": "ghp_tokenvalue123",
    "app_secret": "hunter2hunter2",
    "MY_KEY": "custom-key-value-999",  # named by the caller
}


def test_secrets_of_the_environment_never_reach_the_file(history: RunHistory, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SHORT_TOKEN", "1")  # too short to be a secret: not scrubbed
    leak = " ".join(SECRETS.values())
    run = a_run(
        inputs={"input": f"my key is {leak}", leak: 1},
        answer=f"echo {leak}",
        error=f"401: bad key {SECRETS['ANTHROPIC_API_KEY']}",
        messages=(
            Message("user", f"use {leak}"),
            Message("assistant", "", tool_calls=(ToolCall("c1", "http", {"headers": {"x-api-key": leak}}),)),
            Message("tool", tool_results=(ToolResult("c1", "http", f"echo: {leak}", is_error=True),)),
        ),
        tool_calls=(ToolCall("c1", "http", {"headers": {"x-api-key": leak}}),),
        stop="1",
        session=f"s-{SECRETS['GH_TOKEN']}",
    )
    stored = history.record(run, secret_env=["MY_KEY"])
    assert "[ANTHROPIC_API_KEY redacted]" in stored.answer
    assert "[MY_KEY redacted]" in stored.answer
    assert stored.stop == "1"
    assert stored.session == "s-[GH_TOKEN redacted]"
    assert history.get(stored.id) == stored
    history.close()
    raw = b"".join(p.read_bytes() for p in history.path.parent.iterdir() if p.name.startswith("runs.sqlite"))
    assert raw  # the database and its WAL
    for value in SECRETS.values():
        assert value.encode() not in raw, value
        assert value not in repr(stored)


def test_scrub_secrets_replaces_the_longest_secret_whole() -> None:
    environ = {"A_TOKEN": "abcdefgh", "B_TOKEN": "abcdefgh-more"}
    assert scrub_secrets({"k": ["x abcdefgh-more y", 3, None]}, environ=environ) == {"k": ["x [B_TOKEN redacted] y", 3, None]}
    assert scrub_secrets("nothing here", environ={}) == "nothing here"


def test_two_threads_with_their_own_connections_record_at_once(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    RunHistory(path).close()  # created once, as the first run of a machine does
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def writer(agent: str) -> None:
        try:
            with RunHistory(path) as mine:
                barrier.wait()
                for _ in range(40):
                    mine.record(a_run(agent=agent))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with RunHistory(path) as history:
        runs = history.list(limit=None)
        assert len(runs) == 80 and len({r.id for r in runs}) == 80
        assert len(history.list(agent="a", limit=None)) == 40


def test_two_threads_sharing_one_history(history: RunHistory) -> None:
    def writer() -> None:
        for _ in range(40):
            history.record(a_run())

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(history.list(limit=None)) == 80


def test_a_failed_write_leaves_nothing_behind(history: RunHistory) -> None:
    run = history.record(a_run())
    with pytest.raises(RunHistoryError, match=f"cannot record run {run.id}"):
        history.record(dataclasses.replace(run, answer="another"))
    assert history.list(limit=None) == [run]


def test_the_path_is_the_argument_else_the_environment_else_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(HISTORY_ENV, raising=False)
    assert default_history_path() == tmp_path / "home" / ".namu" / "runs.sqlite"
    with RunHistory() as history:
        assert history.path == tmp_path / "home" / ".namu" / "runs.sqlite"
        assert history.path.is_file()
    monkeypatch.setenv(HISTORY_ENV, str(tmp_path / "env" / "h.sqlite"))
    with RunHistory() as history:
        assert history.path == tmp_path / "env" / "h.sqlite"
    with RunHistory(tmp_path / "arg.sqlite") as history:
        assert history.path == tmp_path / "arg.sqlite"


def test_the_file_is_wal_and_versioned(history: RunHistory) -> None:
    history.record(a_run())
    conn = sqlite3.connect(history.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    finally:
        conn.close()


def test_another_layout_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    RunHistory(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(RunHistoryError, match="layout version 99"):
        RunHistory(path)


@pytest.mark.parametrize("kind", ["text", "cache", "directory"])
def test_a_file_that_is_not_a_run_history_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "not-a-history"
    if kind == "text":
        path.write_text("hello\n" * 100)
    elif kind == "cache":
        DiskCache(path).close()
    else:
        path.mkdir()
    with pytest.raises(RunHistoryError) as info:
        RunHistory(path)
    assert info.value.path == str(path)
