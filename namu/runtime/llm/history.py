"""The local run history: every agent run, recorded in a SQLite file (``namu runs``).

A run is recorded once, when it ends (answered, failed, stopped by a limit or by
Ctrl+C): its inputs, transcript, tool calls, usage, cost, duration and status. The file
is ``$NAMU_RUN_HISTORY``, else ``~/.namu/runs.sqlite``, unless a path is given.

It is a :class:`~namu.runtime.sqlite_store.SqliteStore` (WAL journal, a busy timeout for
other processes, one locked connection any thread may use, ``PRAGMA application_id``
marking the file as a namu run history) with one table::

    runs(id TEXT PRIMARY KEY, agent, artifact, session, model, started_at, duration_s,
         status, stop, inputs, answer, messages, tool_calls, usage, cost_usd,
         iterations, error)

(``inputs``, ``messages``, ``tool_calls`` and ``usage`` are JSON text), and the layout's
version in ``PRAGMA user_version``. A record is one ``INSERT``, its own transaction: a
process killed while recording leaves the run recorded whole or not at all.

API keys never reach the file: before a record is written, the value of every
environment variable whose name ends with ``_API_KEY``, ``_TOKEN`` or ``_SECRET`` (and of
any variable the caller names, such as an agent's ``api_key_env``) is replaced wherever
it occurs in the record by ``[NAME redacted]`` -- defence in depth, as nothing namu
records should hold one.

``--session NAME`` continues a conversation: :meth:`RunHistory.session_messages` gives
the transcript of the session's last recorded run, which the next run starts from.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from namu.errors import RunHistoryError, first_line
from namu.runtime.llm.messages import Message, ToolCall, Usage
from namu.runtime.sqlite_store import SqliteStore

__all__ = [
    "HISTORY_ENV",
    "RUN_STATUSES",
    "SECRET_SUFFIXES",
    "RunHistory",
    "RunRecord",
    "RunStatus",
    "default_history_path",
    "new_run_id",
    "scrub_secrets",
]

#: the environment variable naming the run history file
HISTORY_ENV = "NAMU_RUN_HISTORY"
#: endings of the names of environment variables whose values are never recorded
SECRET_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET")
#: shorter values are not secrets worth the name (``GITHUB_TOKEN=1`` would otherwise blank
#: every "1" of the record)
_MIN_SECRET_CHARS = 8
#: the layout of the ``runs`` table (``PRAGMA user_version``)
SCHEMA_VERSION = 1

#: how a run ended: it answered, failed (an LLM or runtime error), a limit stopped it,
#: or it was interrupted (Ctrl+C)
RunStatus = Literal["ok", "error", "limit", "cancelled"]
RUN_STATUSES: tuple[str, ...] = ("ok", "error", "limit", "cancelled")

_COLUMNS = (
    "id", "agent", "artifact", "session", "model", "started_at", "duration_s", "status", "stop",
    "inputs", "answer", "messages", "tool_calls", "usage", "cost_usd", "iterations", "error",
)  # fmt: skip
_JSON_COLUMNS = frozenset({"inputs", "messages", "tool_calls", "usage"})


def new_run_id() -> str:
    """A new run id: 12 random hex digits (48 bits; a prefix of it names the run)."""
    return uuid.uuid4().hex[:12]


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One agent run, as the history keeps it.

    Attributes:
        agent: the agent's name.
        status: how the run ended (:data:`RunStatus`).
        id: the run's id (:func:`new_run_id` by default).
        artifact: the agent's artifact digest or file path ("" if unknown).
        session: the conversation the run belongs to (``--session``), or None.
        model: the model that answered ("" if unknown).
        started_at: when the run started, UTC, ISO 8601 (now by default).
        duration_s: how long it ran, in seconds.
        stop: why it stopped: the model's stop reason, or the limit that ended it
            (``"max_iterations"``, ``"max_cost_usd"``, ...).
        inputs: the run's inputs (JSON values; others are recorded as their ``repr``).
        answer: the final answer ("" if none).
        messages: the transcript, from the first user message (a session's earlier
            messages included).
        tool_calls: every tool call of the run, in order.
        usage: the tokens of the whole run.
        cost_usd: what the run cost, or None when the model's price is unknown.
        iterations: the ReAct iterations run (LLM calls).
        error: why it failed, one line ("" if it did not).
    """

    agent: str
    status: RunStatus
    id: str = dataclasses.field(default_factory=new_run_id)
    artifact: str = ""
    session: str | None = None
    model: str = ""
    started_at: str = dataclasses.field(default_factory=_utc_now)
    duration_s: float = 0.0
    stop: str = ""
    inputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    answer: str = ""
    messages: tuple[Message, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = dataclasses.field(default_factory=Usage)
    cost_usd: float | None = None
    iterations: int = 0
    error: str = ""

    def __post_init__(self) -> None:
        if self.status not in RUN_STATUSES:
            raise ValueError(f"run status must be one of {', '.join(RUN_STATUSES)}, not {self.status!r}")
        if not self.id:
            raise ValueError("a run id cannot be empty")
        # lists are welcome; the record keeps tuples (it is frozen)
        object.__setattr__(self, "messages", tuple(self.messages))
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object (``namu runs show --json``, the stored columns)."""
        return {
            "id": self.id,
            "agent": self.agent,
            "artifact": self.artifact,
            "session": self.session,
            "model": self.model,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "status": self.status,
            "stop": self.stop,
            "inputs": dict(self.inputs),
            "answer": self.answer,
            "messages": [m.to_json() for m in self.messages],
            "tool_calls": [dataclasses.asdict(c) for c in self.tool_calls],
            "usage": self.usage.to_json(),
            "cost_usd": self.cost_usd,
            "iterations": self.iterations,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRecord:
        """The inverse of :meth:`to_json`."""
        fields = dict(data)
        fields["messages"] = tuple(Message.from_json(m) for m in data.get("messages", ()))
        fields["tool_calls"] = tuple(ToolCall(**c) for c in data.get("tool_calls", ()))
        fields["usage"] = Usage(**data.get("usage", {}))
        return cls(**fields)


#: values of ``$NAMU_RUN_HISTORY`` that turn the history off
HISTORY_OFF = ("off", "0", "false", "no", "none")


def history_off() -> bool:
    """Whether ``$NAMU_RUN_HISTORY`` turns the run history off (``off``, ``0``, ``false``, ...)."""
    return os.environ.get(HISTORY_ENV, "").strip().lower() in HISTORY_OFF


def default_history_path() -> Path:
    """Where the run history is when no path is given: ``$NAMU_RUN_HISTORY``, else
    ``~/.namu/runs.sqlite``.

    Raises:
        RunHistoryError: ``$NAMU_RUN_HISTORY`` turns the history off (:func:`history_off`).
    """
    if history_off():
        raise RunHistoryError(f"{HISTORY_ENV}={os.environ[HISTORY_ENV]}: no run history is kept (unset it, or give --history PATH)",
                              path="")
    configured = os.environ.get(HISTORY_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".namu" / "runs.sqlite"


def scrub_secrets(value: Any, names: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> Any:
    """``value`` with every secret of the environment replaced by ``[NAME redacted]``.

    The secrets are the values (of at least 8 characters) of the variables whose names
    end with :data:`SECRET_SUFFIXES` (in any case) or are in ``names``.

    Args:
        value: JSON-like data: strings, numbers, None, lists, tuples and dicts (whose
            keys are scrubbed too); anything else is scrubbed as its ``repr``.
        names: more variables whose values are secrets (an agent's ``api_key_env``).
        environ: the environment (default ``os.environ``).

    Returns:
        The scrubbed copy, made of JSON values (tuples become lists, other objects
        their ``repr``), even when there is no secret to scrub.
    """
    environ = os.environ if environ is None else environ
    wanted = set(names)
    secrets: dict[str, str] = {}
    for name, secret in environ.items():
        if (name in wanted or name.upper().endswith(SECRET_SUFFIXES)) and len(secret) >= _MIN_SECRET_CHARS:
            secrets.setdefault(secret, name)
    # longest first: a secret that contains another is replaced whole
    pattern = re.compile("|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True))) if secrets else None
    return _scrub(value, pattern, secrets)


def _scrub(value: Any, pattern: re.Pattern[str] | None, secrets: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(lambda m: f"[{secrets[m[0]]} redacted]", value) if pattern else value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {_scrub(str(k), pattern, secrets): _scrub(v, pattern, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, pattern, secrets) for v in value]
    return _scrub(repr(value), pattern, secrets)


class RunHistory(SqliteStore):
    """The open run history.

    Thread-safe; several processes may record into one file at once.

    Args:
        path: the database file; None: :func:`default_history_path`. It and its
            directory are created if missing.

    Raises:
        RunHistoryError: the path is not a regular file, the file cannot be created or
            opened, is not a SQLite database, is another kind of namu file, or was
            written by a namu with another layout of the history.
    """

    KIND = "run history"
    APPLICATION_ID = 0x6E616D72  # "namr"
    SCHEMA = (
        (
            "CREATE TABLE runs (id TEXT PRIMARY KEY NOT NULL, agent TEXT NOT NULL, artifact TEXT NOT NULL, "
            "session TEXT, model TEXT NOT NULL, started_at TEXT NOT NULL, duration_s REAL NOT NULL, "
            "status TEXT NOT NULL, stop TEXT NOT NULL, inputs TEXT NOT NULL, answer TEXT NOT NULL, "
            "messages TEXT NOT NULL, tool_calls TEXT NOT NULL, usage TEXT NOT NULL, cost_usd REAL, "
            "iterations INTEGER NOT NULL, error TEXT NOT NULL)"
        ),
        "CREATE INDEX runs_by_start ON runs (started_at)",
        "CREATE INDEX runs_by_agent ON runs (agent, started_at)",
        "CREATE INDEX runs_by_session ON runs (session)",
        f"PRAGMA user_version = {SCHEMA_VERSION}",
    )
    COLUMNS = {"runs": _COLUMNS}
    ERROR = RunHistoryError

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(default_history_path() if path is None else path)
        (version,) = self._query("PRAGMA user_version")[0]
        if version != SCHEMA_VERSION:
            self.close()
            raise self.error(
                f"run history {self.path} has layout version {version}, this namu reads version "
                f"{SCHEMA_VERSION}; delete it or choose another path"
            )

    def record(self, run: RunRecord, *, secret_env: Iterable[str] = ()) -> RunRecord:
        """Record a finished run, with the environment's secrets scrubbed from it.

        Args:
            run: the run.
            secret_env: more environment variables whose values must not be recorded
                (an agent's ``api_key_env``), beside those :func:`scrub_secrets` finds.

        Returns:
            The record as stored: scrubbed, and its error cut to one line.

        Raises:
            RunHistoryError: it cannot be written (a full disk, a run of the same id).
        """
        document = scrub_secrets(run.to_json(), secret_env)
        if document["error"]:
            document["error"] = first_line(document["error"], mark_more=True)
        row = tuple(
            json.dumps(document[c], ensure_ascii=False) if c in _JSON_COLUMNS else document[c]
            for c in _COLUMNS
        )
        placeholders = ", ".join("?" * len(_COLUMNS))
        self._query(f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({placeholders})", row, doing=f"record run {run.id}")
        return RunRecord.from_json(document)

    def list(self, limit: int | None = 20, agent: str | None = None, session: str | None = None) -> list[RunRecord]:
        """The most recent runs first (by start time).

        Args:
            limit: at most this many (None: all).
            agent: only the runs of this agent.
            session: only the runs of this session.

        Raises:
            RunHistoryError: the history cannot be read.
        """
        where, params = [], []
        if agent is not None:
            where.append("agent = ?")
            params.append(agent)
        if session is not None:
            where.append("session = ?")
            params.append(session)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(limit, 0))
        return [_record(row) for row in self._query(sql, tuple(params))]

    def get(self, id_or_prefix: str) -> RunRecord:
        """The run with this id, or the only run whose id starts with it.

        Raises:
            KeyError: no run matches, or several do (its ``args[0]`` says which, in
                one line).
            RunHistoryError: the history cannot be read.
        """
        select = f"SELECT {', '.join(_COLUMNS)} FROM runs"
        rows = self._query(f"{select} WHERE id = ?", (id_or_prefix,))
        if not rows and id_or_prefix:
            rows = self._query(f"{select} WHERE substr(id, 1, ?) = ? ORDER BY started_at DESC LIMIT 6",
                               (len(id_or_prefix), id_or_prefix))  # fmt: skip
        if not rows:
            raise KeyError(f"no run {id_or_prefix!r} in the run history {self.path}")
        if len(rows) > 1:
            ids = ", ".join(row[0] for row in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise KeyError(f"run id {id_or_prefix!r} is ambiguous: it starts the ids {ids}; give more of it")
        return _record(rows[0])

    def session_messages(self, session: str) -> list[Message]:
        """The transcript a new run of ``session`` continues: the messages of the
        session's last recorded run, up to its last answer (the last assistant message
        without tool calls). What came after it -- the question of a run that failed or
        was stopped, tool calls left without results -- is left out, so the transcript
        is always one a provider accepts.

        Args:
            session: the session's name.

        Returns:
            The messages ([] for a new session).

        Raises:
            RunHistoryError: the history cannot be read.
        """
        rows = self._query("SELECT messages FROM runs WHERE session = ? ORDER BY rowid DESC LIMIT 1", (session,))
        if not rows:
            return []
        messages = [Message.from_json(m) for m in json.loads(rows[0][0])]
        end = next((i + 1 for i in range(len(messages) - 1, -1, -1)
                    if messages[i].role == "assistant" and not messages[i].tool_calls), 0)  # fmt: skip
        return messages[:end]

    def _query(self, sql: str, params: tuple[Any, ...] = (), *, doing: str = "read") -> list[tuple[Any, ...]]:
        try:
            return self.execute(sql, params)
        except sqlite3.Error as exc:
            raise self.error(f"cannot {doing} the run history {self.path}: {exc}") from None


def _record(row: tuple[Any, ...]) -> RunRecord:
    data = {c: json.loads(v) if c in _JSON_COLUMNS else v for c, v in zip(_COLUMNS, row)}
    return RunRecord.from_json(data)
