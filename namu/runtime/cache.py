"""Memoized task results: an in-memory cache per task function and an on-disk SQLite cache.

A call of a task with ``cache=True`` or ``pure=True`` is looked up by its *result key*::

    key = content_digest(("namu.cache", 1, task source digest, task key, content_digest((args, kwargs))))

so equal arguments (by value, see :mod:`namu.runtime.content`) find the stored result,
and an edited task (a new source digest) never finds one stored by its old code.
Arguments that cannot be content-addressed make the call run uncached.

* **In memory** (:func:`memory_cache`): one thread-safe table per task *function*, kept
  as long as the function lives, shared by every artifact calling it, holding the
  :data:`MEMORY_CACHE_ENTRIES` most recently used results. Keyed by the
  function object as well, so two closures with the same source do not share results.
  A hit behaves like a fresh call: each caller gets its own copy (:class:`CachedResult`).
* **On disk** (:class:`DiskCache`): enabled per run with ``Artifact.run(cache_dir=...)``,
  the ``NAMU_CACHE_DIR`` environment variable, or ``namu run --cache-dir``. One SQLite
  file ``results.sqlite3`` in that directory, one table::

      results(key BLOB PRIMARY KEY, value BLOB, task TEXT, created REAL)

  ``value`` is the pickled result (protocol 5); results that cannot be pickled stay in
  memory only. Values are unpickled on lookup, so only point ``cache_dir`` at a
  directory you trust, as with any pickle file.

The key covers the task's source, not what it reads besides its arguments (globals,
files, closures' variables): cache only tasks whose result depends on their arguments.
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
import pickle
import sqlite3
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from namu.errors import CacheError, UncacheableResult
from namu.runtime.content import content_digest
from namu.runtime.sqlite_store import SqliteStore, dumps, loads

__all__ = [
    "CACHE_DIR_ENV",
    "CACHE_FILE_NAME",
    "CachedResult",
    "DiskCache",
    "MEMORY_CACHE_ENTRIES",
    "MemoryCache",
    "memory_cache",
    "open_disk_cache",
    "result_key",
]

logger = logging.getLogger(__name__)

#: environment variable naming the default on-disk cache directory.
CACHE_DIR_ENV = "NAMU_CACHE_DIR"
#: the database file inside a cache directory.
CACHE_FILE_NAME = "results.sqlite3"
#: results kept in memory per task function before the least recently used is dropped.
MEMORY_CACHE_ENTRIES = 10_000


def result_key(task_digest: str, task_key: str, args_digest: bytes) -> bytes:
    """The cache key of one task call.

    Args:
        task_digest: the task's source digest (``sha256:<hex>``, from the task table).
        task_key: the task's key in the task table.
        args_digest: :func:`~namu.runtime.content.content_digest` of ``(args, kwargs)``.

    Returns:
        32 bytes.
    """
    return content_digest(("namu.cache", 1, task_digest, task_key, args_digest))


#: types whose values cannot change: a cached one is handed out as it is, with no copy.
_IMMUTABLE_TYPES = frozenset({type(None), bool, int, float, complex, str, bytes, range, type(Ellipsis)})
_AS_IS, _PICKLED, _DEEP_COPIED = "as is", "pickled", "deep-copied"


class CachedResult:
    """One task result kept by a cache, from which every cache hit gets a copy of its own.

    A hit must behave like a fresh call: the caller may change what it got (append to a
    list, write into an array) without changing what later calls get, and nobody may
    change what the cache keeps. So the result is copied when it is stored (the first
    caller keeps the original) and again for every hit (:meth:`copy`):

    * values that cannot change -- ``None``, ``bool``, ``int``, ``float``, ``complex``,
      ``str``, ``bytes``, ``range``, and tuples and frozensets of them (exact types, not
      subclasses) -- are kept and handed out as they are, at no cost;
    * anything else is kept pickled (protocol 5, with large buffers such as numpy
      arrays' kept out of band as bytes: PEP 574), and each hit unpickles it; a
      read-only array comes back read-only, a writable one as a writable copy;
    * what pickle cannot hold (an instance of a class defined inside a function) is kept
      as a ``copy.deepcopy``, and each hit gets another deep copy.

    Pickling rather than deep-copying, because it is the faster copy for the results
    tasks return (measured with ``timeit``, per store and per hit): a small dict 1 and
    1.5 us against 8 and 7 us; a list of 10,000 ints 100 and 165 us against 2,100 and
    2,100 us; a numpy array of 100,000 floats 27 and 33 us against 20 and 22 us (its
    bytes are copied once either way). The kept bytes are also smaller than the objects.

    Args:
        value: the result, as the task returned it.

    Raises:
        UncacheableResult: ``value`` is an iterator or a generator (used up by whoever
            reads it first: no copy of it could serve a later call as a fresh one), or
            neither pickle nor ``copy.deepcopy`` can copy it.
    """

    __slots__ = ("_how", "_kept", "_buffers")

    def __init__(self, value: Any) -> None:
        self._buffers: tuple[tuple[bytes, bool], ...] = ()
        if isinstance(value, (Iterator, AsyncIterator)):
            raise UncacheableResult(
                _iterator_name(value),
                "it is used up by whoever reads it first, so no copy of it could serve a later "
                "call as a fresh one; return a list or a tuple instead",
            )
        if _immutable(value):
            self._how, self._kept = _AS_IS, value
            return
        buffers: list[pickle.PickleBuffer] = []
        try:
            self._how, self._kept = _PICKLED, pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
            views = [b.raw() for b in buffers]
            self._buffers = tuple((bytes(view), not view.readonly) for view in views)
            return
        except Exception:  # noqa: BLE001 - PicklingError, TypeError, AttributeError...: try a deep copy
            pass
        try:
            self._how, self._kept = _DEEP_COPIED, copy.deepcopy(value)
        except Exception as exc:  # noqa: BLE001 - nothing can copy it
            raise UncacheableResult(
                f"{_article(type(value).__name__)} {type(value).__name__}",
                f"it cannot be copied ({type(exc).__name__}: {exc}); return a value that pickle or "
                "copy.deepcopy can copy",
            ) from exc

    def copy(self) -> Any:
        """A copy of the result, as a fresh call would have returned it."""
        if self._how is _PICKLED:
            buffers = [bytearray(data) if writable else data for data, writable in self._buffers]
            return pickle.loads(self._kept, buffers=buffers)
        if self._how is _DEEP_COPIED:
            return copy.deepcopy(self._kept)
        return self._kept


def _immutable(value: Any) -> bool:
    """True when nothing can change ``value``: a value of :data:`_IMMUTABLE_TYPES`, or a
    tuple or frozenset (at any depth) of such values."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is tuple or kind is frozenset:
            stack.extend(item)
        elif kind not in _IMMUTABLE_TYPES:
            return False
    return True


def _iterator_name(value: Any) -> str:
    if inspect.isgenerator(value):
        return "a generator"
    if inspect.isasyncgen(value):
        return "an async generator"
    kind = "an async iterator" if isinstance(value, AsyncIterator) else "an iterator"
    return f"{kind} ({type(value).__name__})"


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


class MemoryCache:
    """A thread-safe ``key -> result`` table (one per task function), bounded: past
    ``max_entries`` the least recently used result is dropped (``functools.lru_cache``'s
    policy), so a long-lived process caching a task over many distinct inputs does not
    grow without end. Results are kept as :class:`CachedResult`: every hit is a copy.

    Args:
        max_entries: how many results to keep (default :data:`MEMORY_CACHE_ENTRIES`).

    Raises:
        ValueError: ``max_entries`` is below 1.
    """

    __slots__ = ("_data", "_lock", "max_entries")

    def __init__(self, max_entries: int | None = None) -> None:
        self.max_entries = MEMORY_CACHE_ENTRIES if max_entries is None else max_entries
        if self.max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {self.max_entries}")
        self._data: OrderedDict[bytes, CachedResult] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> tuple[bool, Any]:
        """``(True, a copy of the result)`` if ``key`` is stored, else ``(False, None)``."""
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return False, None
            self._data.move_to_end(key)
        return True, entry.copy()

    def put(self, key: bytes, value: Any) -> CachedResult:
        """Keep a copy of ``value`` under ``key`` (the caller keeps ``value`` itself).

        Returns:
            The kept :class:`CachedResult` (single flight hands copies of it to the calls
            that waited for this one).

        Raises:
            UncacheableResult: ``value`` cannot be cached (see :class:`CachedResult`).
        """
        entry = CachedResult(value)
        with self._lock:
            self._data[key] = entry
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)
        return entry

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


_memory: weakref.WeakKeyDictionary[Callable[..., Any], MemoryCache] = weakref.WeakKeyDictionary()
_memory_lock = threading.Lock()


def memory_cache(fn: Callable[..., Any]) -> MemoryCache:
    """The in-memory cache of task function ``fn`` (created on first use, dropped with ``fn``).

    A callable that cannot be weakly referenced gets a private cache for each call of
    this function (so results are shared only through the returned object).
    """
    with _memory_lock:
        try:
            cache = _memory.get(fn)
            if cache is None:
                cache = _memory[fn] = MemoryCache()
        except TypeError:  # not weakly referenceable (or unhashable)
            cache = MemoryCache()
    return cache


class DiskCache(SqliteStore):
    """The on-disk result cache of a directory (``<directory>/results.sqlite3``).

    Safe to share between threads and processes. Lookups and writes never fail a run:
    an error while reading counts as a miss, an error while writing is logged.

    Args:
        directory: the cache directory; created if missing.

    Raises:
        CacheError: the directory or file cannot be created, the file is not a SQLite
            database, or it is not a namu result cache.
    """

    KIND = "result cache"
    APPLICATION_ID = 0x6E616D63  # "namc"
    SCHEMA = (
        "CREATE TABLE results (key BLOB PRIMARY KEY, value BLOB NOT NULL, task TEXT NOT NULL, "
        "created REAL NOT NULL) WITHOUT ROWID",
    )
    COLUMNS = {"results": ("key", "value", "task", "created")}
    ERROR = CacheError

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise CacheError(f"cache directory {directory} is a file, not a directory", path=str(directory))
        super().__init__(directory / CACHE_FILE_NAME)

    def get(self, key: bytes) -> tuple[bool, Any]:
        """``(True, result)`` if ``key`` is stored and can be unpickled, else ``(False, None)``."""
        try:
            rows = self.execute("SELECT value FROM results WHERE key = ?", (key,))
        except sqlite3.Error as exc:
            logger.warning("result cache %s: lookup failed (%s); running the task", self.path, exc)
            return False, None
        if not rows:
            return False, None
        return loads(rows[0][0])

    def put(self, key: bytes, value: Any, task: str) -> bool:
        """Store ``value`` under ``key``; returns False if it cannot be pickled or written."""
        data = dumps(value)
        if data is None:
            return False
        try:
            self.execute(
                "INSERT OR REPLACE INTO results (key, value, task, created) VALUES (?, ?, ?, ?)",
                (key, data, task, time.time()),
            )
        except sqlite3.Error as exc:
            logger.warning("result cache %s: cannot store a result of %s (%s)", self.path, task, exc)
            return False
        return True

    def __len__(self) -> int:
        return int(self.execute("SELECT count(*) FROM results")[0][0])


def open_disk_cache(cache_dir: str | os.PathLike[str] | None) -> DiskCache | None:
    """The disk cache for a run: ``cache_dir``, else ``$NAMU_CACHE_DIR``, else None (off).

    Raises:
        CacheError: the cache cannot be opened (see :class:`DiskCache`).
    """
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_DIR_ENV) or None
    if cache_dir is None:
        return None
    return DiskCache(cache_dir)
