"""A SQLite file holding pickled values: the base of the result cache and the checkpoint.

Both stores share the same discipline: WAL journal mode (readers never block the
writer, a crashed writer loses only its uncommitted transaction), autocommit (each
write is its own transaction), a busy timeout for other processes holding the write
lock, one connection per store guarded by a lock (so any thread may call it), and
``PRAGMA application_id`` marking the file as namu's, so a foreign database or a cache
given as a checkpoint is refused with a clear error instead of being written into.
"""

from __future__ import annotations

import pickle
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from namu.errors import CacheError, CheckpointError, OutputPathError, RunHistoryError
from namu.runtime.atomic_write import resolve_output

__all__ = ["PICKLE_PROTOCOL", "SqliteStore", "dumps", "loads"]

#: pickle protocol of stored values.
PICKLE_PROTOCOL = 5
#: how long a write waits for another connection's write lock, in seconds.
BUSY_TIMEOUT_S = 30.0
#: the files SQLite keeps next to a database (rollback journal, WAL, shared memory).
_SIDE_FILES = ("-journal", "-wal", "-shm")


def dumps(value: Any) -> bytes | None:
    """``value`` pickled, or None when it cannot be pickled (then it is not stored)."""
    try:
        return pickle.dumps(value, protocol=PICKLE_PROTOCOL)
    except Exception:  # noqa: BLE001 - PicklingError, TypeError, AttributeError... all mean "cannot"
        return None


def loads(data: bytes) -> tuple[bool, Any]:
    """``(True, value)`` unpickled from ``data``, or ``(False, None)`` when that fails
    (a class that moved or was renamed since the value was stored)."""
    try:
        return True, pickle.loads(data)
    except Exception:  # noqa: BLE001 - any failure means the stored value is unusable
        return False, None


class SqliteStore:
    """An open SQLite file of one kind (result cache or checkpoint).

    Subclasses set :attr:`KIND` (for messages), :attr:`APPLICATION_ID`, :attr:`SCHEMA`
    (the ``CREATE`` statements), :attr:`COLUMNS` (table -> expected column names) and
    :attr:`ERROR` (the exception raised when the file is unusable).

    Args:
        path: the database file; it and its parent directories are created if missing.
            A symlink is followed to the file it leads to.

    Raises:
        CacheError | CheckpointError | RunHistoryError: the path is not a regular file (a directory, a
            device, a FIFO: refused before SQLite opens it, so nothing is created), the
            file cannot be created or opened, is not a SQLite database, or is a
            database of something else.
    """

    KIND: ClassVar[str] = "store"
    APPLICATION_ID: ClassVar[int] = 0
    SCHEMA: ClassVar[tuple[str, ...]] = ()
    COLUMNS: ClassVar[dict[str, tuple[str, ...]]] = {}
    ERROR: ClassVar[type[CacheError] | type[CheckpointError] | type[RunHistoryError]] = CacheError

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        real = self._regular_file()
        try:
            real.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self.error(f"cannot create the directory of {self.KIND} {self.path}: {exc.strerror or exc}") from None
        try:
            conn = sqlite3.connect(real, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self.error(f"cannot open {self.KIND} {self.path}: {exc}") from None
        try:
            self._prepare_when_free(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise self.error(f"cannot open {self.KIND} {self.path}: {exc}") from None
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def error(self, message: str) -> CacheError | CheckpointError | RunHistoryError:
        """The exception for an unusable file, naming it."""
        return self.ERROR(message, path=str(self.path))

    def _regular_file(self) -> Path:
        """The database file SQLite will open (symlinks followed), checked before SQLite
        sees it: it, and the journal files SQLite keeps beside it, must be regular files
        or missing. A device or FIFO would fail with "disk I/O error" or block, and
        SQLite would leave a ``-journal`` file next to it.

        Raises:
            CacheError | CheckpointError | RunHistoryError: one of them is a directory, device, FIFO, ...
        """
        try:
            real = resolve_output(self.path, what=self.KIND)
            for suffix in _SIDE_FILES:
                resolve_output(f"{real}{suffix}", what=f"{self.KIND} journal")
        except OutputPathError as exc:
            raise self.error(str(exc)) from None
        return real

    def _prepare_when_free(self, conn: sqlite3.Connection) -> None:
        """:meth:`_prepare`, retried while another connection holds a lock it needs.

        SQLite does not always wait on its busy timeout here (switching to WAL needs an
        exclusive lock; a new file is being created by another connection), so the
        retries back off with jitter for up to :data:`BUSY_TIMEOUT_S`.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        attempt = 0
        while True:
            try:
                self._prepare(conn)
                return
            except sqlite3.OperationalError as exc:
                message = str(exc).lower()
                if ("locked" not in message and "busy" not in message) or time.monotonic() > deadline:
                    raise
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            time.sleep(random.uniform(0.0, min(0.2, 0.005 * 2**attempt)))
            attempt += 1

    def _prepare(self, conn: sqlite3.Connection) -> None:
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
        if str(mode).lower() != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL loses no committed transaction when the process dies; only a
        # power failure may roll back the last ones.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if app_id == 0 and not tables:
                for statement in self.SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {int(self.APPLICATION_ID)}")
            elif app_id != self.APPLICATION_ID:
                raise self.error(
                    f"{self.path} is a SQLite database but not a namu {self.KIND}; "
                    "choose another path or delete the file"
                )
            else:
                for table, columns in self.COLUMNS.items():
                    found = tuple(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))
                    if found != columns:
                        raise self.error(
                            f"{self.KIND} {self.path} has an unexpected layout (table {table!r}); "
                            "it was written by another namu version, delete it"
                        )
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (its own transaction) and return all rows.

        Raises:
            sqlite3.Error: the statement failed; callers decide whether that is fatal.
        """
        with self._lock:
            if self._conn is None:
                raise sqlite3.ProgrammingError(f"{self.KIND} {self.path} is closed")
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<namu {self.KIND} {self.path}>"
