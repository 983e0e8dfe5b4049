"""Result caches: memoized cache=True / pure=True tasks, in memory and on disk."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import namu
from namu.runtime.cache import (
    CACHE_DIR_ENV,
    CACHE_FILE_NAME,
    MEMORY_CACHE_ENTRIES,
    DiskCache,
    MemoryCache,
    memory_cache,
    result_key,
)


def make_square(calls: list[int]) -> namu.Workflow:
    """A workflow over a cached task; each call of the factory makes new function objects
    with the same source (so the same digest), as a new process would."""

    @namu.task(cache=True)
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    @namu.workflow
    def squares(xs: list[int]) -> list[int]:
        return [square(x) for x in xs]

    return squares


def rows(cache_dir: Path) -> list[tuple[str]]:
    with sqlite3.connect(cache_dir / CACHE_FILE_NAME) as conn:
        return conn.execute("SELECT task FROM results ORDER BY task").fetchall()


def test_cached_task_runs_once_per_distinct_input_across_runs(executor: str) -> None:
    calls: list[int] = []
    wf = make_square(calls)
    assert wf.run([3, 3, 4], executor=executor).value == [9, 9, 16]
    assert wf.run([4, 5, 3], executor=executor).value == [16, 25, 9]
    assert calls == [3, 4, 5]


def test_pure_tasks_are_memoized(executor: str) -> None:
    calls: list[Any] = []

    @namu.task(pure=True)
    def describe(value: Any) -> str:
        calls.append(value)
        return repr(value)

    @namu.workflow
    def wf(a: dict, b: dict) -> list[str]:
        return [describe(a), describe(b), describe(a)]

    # Equal by content, not identity: dicts with other insertion orders hit.
    assert wf.run({"x": 1, "y": 2}, {"y": 2, "x": 1}, executor=executor).value == ["{'x': 1, 'y': 2}"] * 3
    assert calls == [{"x": 1, "y": 2}]


def test_unhashable_arguments_run_uncached(executor: str) -> None:
    calls: list[Any] = []

    class Opaque:
        pass

    @namu.task(cache=True)
    def ident(value: Any) -> str:
        calls.append(value)
        return type(value).__name__

    @namu.workflow
    def wf(value: Any) -> list[str]:
        return [ident(value), ident(value)]

    thing = Opaque()
    assert wf.run(thing, executor=executor).value == ["Opaque", "Opaque"]
    assert calls == [thing, thing]


def test_disk_cache_serves_a_new_function_with_the_same_source(tmp_path: Path, executor: str) -> None:
    first: list[int] = []
    assert make_square(first).run([2, 3], executor=executor, cache_dir=tmp_path).value == [4, 9]
    assert first == [2, 3]
    assert rows(tmp_path) == [("square",), ("square",)]
    second: list[int] = []
    assert make_square(second).run([3, 2, 7], executor=executor, cache_dir=tmp_path).value == [9, 4, 49]
    assert second == [7]
    # Without the disk cache a new function starts empty.
    third: list[int] = []
    assert make_square(third).run([2], executor=executor).value == [4]
    assert third == [2]


def test_an_edited_task_is_never_served_old_results(tmp_path: Path) -> None:
    old_calls: list[int] = []
    new_calls: list[int] = []

    @namu.task(cache=True, name="scale")
    def scale_v1(x: int) -> int:
        old_calls.append(x)
        return 2 * x

    @namu.task(cache=True, name="scale")
    def scale_v2(x: int) -> int:
        new_calls.append(x)
        return 3 * x

    @namu.workflow
    def wf_v1(x: int) -> int:
        return scale_v1(x)

    @namu.workflow
    def wf_v2(x: int) -> int:
        return scale_v2(x)

    assert wf_v1.compile().task_table.tasks[0].key == wf_v2.compile().task_table.tasks[0].key == "scale"
    assert wf_v1.run(5, cache_dir=tmp_path).value == 10
    assert wf_v2.run(5, cache_dir=tmp_path).value == 15
    assert (old_calls, new_calls) == ([5], [5])
    digest_v1, digest_v2 = (wf.compile().bindings["scale"].digest for wf in (wf_v1, wf_v2))
    assert digest_v1 != digest_v2
    assert result_key(digest_v1, "scale", b"a") != result_key(digest_v2, "scale", b"a")


def test_unpicklable_results_stay_in_memory_only(tmp_path: Path) -> None:
    calls: list[int] = []

    @namu.task(cache=True)
    def make_fn(x: int) -> Any:
        calls.append(x)
        return lambda: x

    @namu.workflow
    def wf(x: int) -> Any:
        return make_fn(x)

    assert wf.run(1, cache_dir=tmp_path).value() == 1
    assert wf.run(1, cache_dir=tmp_path).value() == 1
    assert calls == [1]
    assert rows(tmp_path) == []


def test_cache_dir_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "env-cache"))
    assert make_square([]).run([6]).value == [36]
    assert rows(tmp_path / "env-cache") == [("square",)]
    served: list[int] = []
    assert make_square(served).run([6]).value == [36]
    assert served == []


def test_unusable_cache_files_raise_cache_error_naming_the_file(tmp_path: Path) -> None:
    junk_dir = tmp_path / "junk"
    junk_dir.mkdir()
    (junk_dir / CACHE_FILE_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(namu.CacheError, match="cannot open result cache") as info:
        make_square([]).run([1], cache_dir=junk_dir)
    assert info.value.path == str(junk_dir / CACHE_FILE_NAME)
    assert str(junk_dir / CACHE_FILE_NAME) in str(info.value)

    foreign_dir = tmp_path / "foreign"
    foreign_dir.mkdir()
    with sqlite3.connect(foreign_dir / CACHE_FILE_NAME) as conn:
        conn.execute("CREATE TABLE people (name TEXT)")
    with pytest.raises(namu.CacheError, match="not a namu result cache"):
        make_square([]).run([1], cache_dir=foreign_dir)

    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(namu.CacheError, match="is a file, not a directory"):
        make_square([]).run([1], cache_dir=a_file)


def test_concurrent_runs_share_one_disk_cache(tmp_path: Path, executor: str) -> None:
    calls: list[int] = []
    lock = threading.Lock()

    @namu.task(cache=True)
    def cube(x: int) -> int:
        with lock:
            calls.append(x)
        return x**3

    @namu.workflow
    def cubes(xs: list[int]) -> list[int]:
        return [cube(x) for x in xs]

    inputs = [[i % 7 for i in range(start, start + 20)] for start in range(16)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda xs: cubes.run(xs, executor=executor, cache_dir=tmp_path).value, inputs))
    assert results == [[x**3 for x in xs] for xs in inputs]
    assert sorted(set(calls)) == list(range(7))
    assert len(DiskCache(tmp_path)) == 7


def test_disk_cache_is_safe_under_concurrent_threads(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    try:

        def work(i: int) -> Any:
            key = result_key("sha256:x", "t", i.to_bytes(4, "big"))
            assert cache.put(key, {"i": i}, "t")
            return cache.get(key)

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            assert list(pool.map(work, range(200))) == [(True, {"i": i}) for i in range(200)]
        assert len(cache) == 200
    finally:
        cache.close()


def test_memory_cache_is_per_function() -> None:
    def f() -> None: ...

    def g() -> None: ...

    assert memory_cache(f) is memory_cache(f)
    assert memory_cache(f) is not memory_cache(g)


def test_memory_cache_keeps_the_most_recently_used_results() -> None:
    cache = MemoryCache(max_entries=3)
    for key in (b"a", b"b", b"c"):
        cache.put(key, key.decode())
    assert cache.get(b"a") == (True, "a")  # a is now the most recently used
    cache.put(b"d", "d")  # evicts b, the least recently used
    assert [cache.get(k)[0] for k in (b"a", b"b", b"c", b"d")] == [True, False, True, True]
    assert len(cache) == 3
    with pytest.raises(ValueError, match="max_entries must be at least 1"):
        MemoryCache(max_entries=0)


def test_memory_cache_is_bounded_by_default() -> None:
    assert MemoryCache().max_entries == MEMORY_CACHE_ENTRIES


@pytest.mark.parametrize("fails_first", [False, True])
def test_concurrent_equal_async_calls_run_once(fails_first: bool) -> None:
    """Equal calls of a cached async task in one fan-out: the first runs, the others
    await its result (single flight). If the first fails, each waiting call runs itself."""
    calls: list[int] = []

    @namu.task(cache=True, on_error="skip")
    async def fetch(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0.01)
        if fails_first and x == 7 and calls.count(7) == 1:
            raise ConnectionError("flaky")
        return x * 10

    @namu.workflow
    def many(xs: list[int]) -> list[int]:
        return [fetch(x) for x in xs]

    result = many.run([7, 7, 7, 8, 8])
    if fails_first:
        assert result.value == [70, 70, 80, 80]  # the first item failed and was skipped
        assert [s.index for s in result.skipped] == [0]
        assert sorted(calls) == [7, 7, 7, 8]  # the two waiting calls ran themselves
    else:
        assert result.value == [70, 70, 70, 80, 80]
        assert sorted(calls) == [7, 8]


def test_concurrent_equal_thread_mode_calls_run_once() -> None:
    """The same for synchronous calls on the worker pool: equal calls in flight at once
    wait for the first one's result instead of running again. (Later equal calls hit the
    cache anyway, so any repeat here would be a concurrent duplicate.)"""
    calls: list[int] = []

    @namu.task(cache=True, mode="thread")
    def slow(x: int) -> int:
        calls.append(x)
        time.sleep(0.2)
        return x * 10

    @namu.workflow
    def many(xs: list[int]) -> list[int]:
        return [slow(x) for x in xs]

    assert many.run([1, 2, 1, 1], workers=4).value == [10, 20, 10, 10]
    assert sorted(calls) == [1, 2]


# ---------------------------------------------------------------------- a hit is a fresh copy
def make_alias() -> namu.Workflow:
    """The QA report's workflow: a cached task builds a list, a plain task appends to it."""

    @namu.task(cache=True)
    def mk(n: int) -> list:
        return [0] * n

    @namu.task
    def push(xs: list) -> int:
        xs.append(1)
        return len(xs)

    @namu.workflow
    def alias(n: int) -> int:
        return push(mk(n))

    return alias


def test_a_callers_mutation_of_a_cached_result_does_not_leak_into_later_runs(executor: str) -> None:
    alias = make_alias()
    assert [alias.fn(n=3) for _ in range(3)] == [4, 4, 4]  # plain Python
    assert [alias.run(n=3, executor=executor).value for _ in range(3)] == [4, 4, 4]


def test_a_result_served_from_disk_is_a_copy_too(tmp_path: Path, executor: str) -> None:
    assert make_alias().run(n=3, executor=executor, cache_dir=tmp_path).value == 4  # stored
    alias = make_alias()  # a new function: its memory cache is empty, the disk has the result
    assert [alias.run(n=3, executor=executor, cache_dir=tmp_path).value for _ in range(3)] == [4, 4, 4]


def test_pure_task_results_are_copies(executor: str) -> None:
    @namu.task(pure=True)
    def table(n: int) -> dict:
        return {"rows": [0] * n}

    @namu.task
    def grow(t: dict) -> int:
        t["rows"].append(1)
        return len(t["rows"])

    @namu.workflow
    def wf(n: int) -> int:
        return grow(table(n))

    assert [wf.run(2, executor=executor).value for _ in range(3)] == [3, 3, 3]


def test_calls_waiting_on_an_equal_thread_mode_call_get_their_own_copies() -> None:
    calls: list[int] = []

    @namu.task(cache=True, mode="thread")
    def slow_list(n: int) -> list:
        calls.append(n)
        time.sleep(0.2)
        return [0] * n

    @namu.task
    def push(xs: list) -> int:
        xs.append(1)
        return len(xs)

    @namu.workflow
    def many(ns: list[int]) -> list[int]:
        return [push(slow_list(n)) for n in ns]

    assert many.run([2, 2, 2, 2], workers=4).value == [3, 3, 3, 3]
    assert calls == [2]  # one call ran; the others waited for it (single flight)


def test_calls_waiting_on_an_equal_async_call_get_their_own_copies() -> None:
    calls: list[int] = []

    @namu.task(cache=True)
    async def fetch(n: int) -> list:
        calls.append(n)
        await asyncio.sleep(0.05)
        return [0] * n

    @namu.task
    def push(xs: list) -> int:
        xs.append(1)
        return len(xs)

    @namu.workflow
    def many(ns: list[int]) -> list[int]:
        return [push(fetch(n)) for n in ns]

    assert many.run([2, 2, 2]).value == [3, 3, 3]
    assert calls == [2]


def test_a_cached_task_returning_a_generator_fails_at_its_first_call(executor: str) -> None:
    @namu.task(cache=True)
    def numbers(n: int):  # no annotation: only the value tells
        return (i for i in range(n))

    @namu.task
    def total(xs: Any) -> int:
        return sum(xs)

    @namu.workflow
    def wf(n: int) -> int:
        return total(numbers(n))

    with pytest.raises(namu.TaskError, match=r"task 'numbers' .*returned a generator.*cannot be cached.*return a list or a tuple") as info:
        wf.run(3, executor=executor)
    assert info.value.task == "numbers"
    assert "test_cache.py:" in str(info.value)  # the workflow line of the call


def test_a_cached_task_returning_an_iterator_fails_at_its_first_call() -> None:
    @namu.task(pure=True)
    def letters(s: str) -> Any:
        return iter(list(s))  # an iterator can be pickled, but a copy is not a fresh call's

    @namu.workflow
    def wf(s: str) -> Any:
        return letters(s)

    with pytest.raises(namu.TaskError, match=r"task 'letters' .*returned an iterator \(list_iterator\).*pure=True"):
        wf.run("ab")


def test_a_result_that_cannot_be_copied_fails_at_its_first_call() -> None:
    @namu.task(cache=True)
    def guard(n: int) -> Any:
        return {"n": n, "lock": threading.Lock()}

    @namu.workflow
    def wf(n: int) -> Any:
        return guard(n)

    with pytest.raises(namu.TaskError, match=r"task 'guard' .*returned a dict, which cannot be cached.*lock"):
        wf.run(1)


@pytest.mark.parametrize("options", [{"cache": True}, {"pure": True}])
def test_a_cached_task_declared_to_return_an_iterator_is_refused_at_declaration(options: dict[str, Any]) -> None:
    def numbers(n: int) -> Iterator[int]:
        return iter(range(n))

    def evens(n: int) -> Generator[int, None, None]:
        yield from range(0, n, 2)

    def counted(n: int):  # a generator function, whatever its annotation
        yield n

    async def stream(n: int) -> AsyncIterator[int]:
        raise NotImplementedError

    for fn in (numbers, evens, counted, stream):
        with pytest.raises(namu.TaskDefinitionError, match=rf"task '{fn.__name__}' cannot be cached.*return a list or a tuple"):
            namu.task(**options)(fn)
    namu.task(numbers)  # without caching an iterator is fine
    namu.task(cache=True)(lambda n: list(range(n)))  # and so is an unannotated function


def test_memory_cache_hits_are_copies_and_immutable_results_are_shared() -> None:
    cache = MemoryCache()
    rows = [[1, 2], {"a": {3}}]
    entry = cache.put(b"rows", rows)
    rows[0].append(99)  # the caller's own result: the cache kept a snapshot
    found, hit = cache.get(b"rows")
    assert found and hit == [[1, 2], {"a": {3}}]
    hit[1]["a"].add(4)
    assert cache.get(b"rows") == (True, [[1, 2], {"a": {3}}])
    assert entry.copy() == [[1, 2], {"a": {3}}]
    frozen = ("text", 1, 2.5, None, b"x", frozenset({(1, 2)}), 3j, range(3))
    cache.put(b"frozen", frozen)
    assert cache.get(b"frozen")[1] is frozen  # immutable: no copy to make
    half = ("text", [1])
    cache.put(b"half", half)
    assert cache.get(b"half")[1] is not half  # a tuple holding a list is mutable


def test_memory_cache_copies_arrays_and_keeps_them_writable_or_read_only() -> None:
    np = pytest.importorskip("numpy")
    cache = MemoryCache()
    array = np.arange(6.0).reshape(2, 3)
    frozen = np.arange(3)
    frozen.flags.writeable = False
    cache.put(b"k", {"array": array, "t": array.T, "frozen": frozen})
    hit = cache.get(b"k")[1]
    hit["array"][0, 0] = 99.0
    again = cache.get(b"k")[1]
    assert again["array"][0, 0] == 0.0 and again["array"].flags.writeable
    assert (again["t"] == array.T).all()
    assert not again["frozen"].flags.writeable


def test_memory_cache_copies_values_pickle_cannot_hold() -> None:
    class Local:  # defined in a function: pickle cannot find it, a deep copy still works
        def __init__(self) -> None:
            self.items = [1]

    cache = MemoryCache()
    cache.put(b"k", Local())
    first = cache.get(b"k")[1]
    first.items.append(2)
    assert type(first) is Local and cache.get(b"k")[1].items == [1]


_plain_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4)
    | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    | st.frozensets(st.integers(), max_size=3).map(set),
    max_leaves=20,
)


def _mutable_parts(value: Any) -> list[Any]:
    """The mutable containers inside ``value`` (itself included)."""
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, dict, set)):
            found.append(item)
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set)):
            stack.extend(item)
    return found


@given(_plain_values)
@settings(max_examples=200, deadline=None)
def test_a_memory_cache_hit_equals_the_result_and_shares_no_mutable_part(value: Any) -> None:
    cache = MemoryCache()
    cache.put(b"k", value)
    found, hit = cache.get(b"k")
    assert found and hit == value and type(hit) is type(value)
    stored = {id(part) for part in _mutable_parts(value)}
    assert not any(id(part) in stored for part in _mutable_parts(hit))
