"""Checkpoint and resume of runs: a journal of completed task calls in a SQLite file.

``Artifact.run(..., checkpoint=PATH)`` (``namu run --checkpoint PATH``) records the
result of every task call that completes. Running again with the same file and the same
inputs *resumes*: each recorded call is served from the journal and only the remaining
calls run, so the final result is the one an uninterrupted run gives.

Keys (BLAKE3, see :mod:`namu.runtime.content`)::

    run key  = content_digest(("namu.run", 1, workflow digest, bound inputs))
    call key = content_digest(("namu.call", 1, task key, task digest, call span,
                               content_digest((args, kwargs)), occurrence))

``occurrence`` numbers the calls with the same (task, span, arguments) within a run
(0, 1, ...), so a task called twice with the same arguments from the same line, by
design or in a fan-out, has two entries. Other inputs give another run key and nothing
is reused; an edited task has another digest and its calls run again.

One table::

    calls(run BLOB, call BLOB, value BLOB, task TEXT, span TEXT, created REAL,
          PRIMARY KEY (run, call))

Each result is committed as soon as its call completes (WAL mode), so a run killed at
any point (even ``kill -9``) loses only the calls in flight. Results that cannot be
pickled, and calls whose arguments cannot be content-addressed, are not journaled:
those calls run again on resume. Values are unpickled on resume: use only checkpoint
files you trust, as with any pickle file.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any

from namu.errors import CheckpointError, UnhashableValue
from namu.runtime.content import content_digest
from namu.runtime.hooks import RunHooks, TaskCall
from namu.runtime.sqlite_store import SqliteStore, dumps, loads

__all__ = ["Journal", "call_key", "run_key"]


def run_key(workflow_digest: str, inputs: Sequence[Any]) -> bytes:
    """The key of a run: the workflow's source digest and its bound inputs.

    Args:
        workflow_digest: ``Passport.workflow_digest`` of the artifact.
        inputs: the inputs bound to the workflow's signature (defaults applied).

    Returns:
        32 bytes.

    Raises:
        UnhashableValue: an input cannot be content-addressed.
    """
    return content_digest(("namu.run", 1, workflow_digest, list(inputs)))


def call_key(task_key: str, task_digest: str, span: str, args_digest: bytes, occurrence: int) -> bytes:
    """The key of one task call within a run (see the module docs).

    Args:
        task_key: the task's key in the task table.
        task_digest: the task's source digest.
        span: ``"file:line:col"`` of the call in the workflow.
        args_digest: ``content_digest((args, kwargs))``.
        occurrence: how many calls with the same task, span and arguments came before.

    Returns:
        32 bytes.
    """
    return content_digest(("namu.call", 1, task_key, task_digest, span, args_digest, occurrence))


class Journal(SqliteStore, RunHooks):
    """The open checkpoint of one run: serves recorded calls, records completed ones. It
    is a run hook (``on_task_lookup``): a checkpointed run composes it with its hooks.

    Thread-safe: the kernel may complete calls on several threads.

    Args:
        path: the checkpoint file; created (with its directory) if missing.
        run: the run key (:func:`run_key`).

    Attributes:
        path: the checkpoint file.
        run: the run key.
        served: calls answered from the journal so far.
        recorded: calls recorded so far.

    Raises:
        CheckpointError: the path is not a regular file (a device such as
            ``/dev/full``, a FIFO, a directory: refused before anything is created), the
            file cannot be created or read, is not a SQLite database, or is not a namu
            checkpoint.
    """

    KIND = "checkpoint"
    APPLICATION_ID = 0x6E616D6A  # "namj"
    SCHEMA = (
        "CREATE TABLE calls (run BLOB NOT NULL, call BLOB NOT NULL, value BLOB NOT NULL, "
        "task TEXT NOT NULL, span TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (run, call)) WITHOUT ROWID",
    )
    COLUMNS = {"calls": ("run", "call", "value", "task", "span", "created")}
    ERROR = CheckpointError

    def __init__(self, path: str | os.PathLike[str], run: bytes) -> None:
        super().__init__(path)
        self.run = run
        self.served = 0
        self.recorded = 0
        self._counts: dict[tuple[str, str, bytes], int] = {}
        self._counts_lock = threading.Lock()
        try:
            rows = self.execute("SELECT call FROM calls WHERE run = ?", (run,))
        except sqlite3.Error as exc:
            self.close()
            raise self.error(f"cannot read checkpoint {self.path}: {exc}") from None
        self._known: set[bytes] = {row[0] for row in rows}

    @classmethod
    def for_run(cls, path: str | os.PathLike[str], workflow_digest: str, inputs: Sequence[Any]) -> Journal:
        """Open the checkpoint at ``path`` for a run of a workflow on ``inputs``.

        Raises:
            CheckpointError: an input cannot be content-addressed (the run could not be
                recognized on resume), or the file is unusable.
        """
        try:
            key = run_key(workflow_digest, inputs)
        except UnhashableValue as exc:
            raise CheckpointError(
                f"cannot checkpoint this run: its inputs cannot be content-addressed ({exc})", path=str(path)
            ) from None
        return cls(path, key)

    @property
    def known(self) -> int:
        """How many calls of this run the file holds."""
        return len(self._known)

    def call_key(self, task_key: str, task_digest: str, span: str, args_digest: bytes) -> bytes:
        """The key of the next call of ``task_key`` at ``span`` with these arguments.

        Each call takes the next occurrence number, so call this once per call.
        """
        counter = (task_key, span, args_digest)
        with self._counts_lock:
            occurrence = self._counts.get(counter, 0)
            self._counts[counter] = occurrence + 1
        return call_key(task_key, task_digest, span, args_digest, occurrence)

    def lookup(self, key: bytes) -> tuple[bool, Any]:
        """``(True, result)`` if the call was recorded (and its value unpickles), else ``(False, None)``.

        Raises:
            CheckpointError: the file cannot be read.
        """
        if key not in self._known:
            return False, None
        try:
            rows = self.execute("SELECT value FROM calls WHERE run = ? AND call = ?", (self.run, key))
        except sqlite3.Error as exc:
            raise self.error(f"cannot read checkpoint {self.path}: {exc}") from None
        if not rows:
            return False, None
        found, value = loads(rows[0][0])
        if found:
            with self._counts_lock:
                self.served += 1
        return found, value

    def on_task_lookup(self, call: TaskCall, args_digest: bytes) -> tuple[bool, Any]:
        """As a run hook: serve a recorded call; else ask to record the call's result."""
        key = self.call_key(call.key, call.digest, call.span, args_digest)
        found, value = self.lookup(key)
        if found:
            return True, value
        return False, functools.partial(self.record, key, task=call.task, span=call.span)

    def record(self, key: bytes, value: Any, *, task: str, span: str) -> bool:
        """Record (and commit) the result of a completed call.

        Returns:
            False if ``value`` cannot be pickled (the call will run again on resume).

        Raises:
            CheckpointError: the file cannot be written.
        """
        data = dumps(value)
        if data is None:
            return False
        try:
            self.execute(
                "INSERT OR REPLACE INTO calls (run, call, value, task, span, created) VALUES (?, ?, ?, ?, ?, ?)",
                (self.run, key, data, task, span, time.time()),
            )
        except sqlite3.Error as exc:
            raise self.error(f"cannot write checkpoint {self.path}: {exc}") from None
        with self._counts_lock:
            self._known.add(key)
            self.recorded += 1
        return True
