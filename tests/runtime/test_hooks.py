"""Run hooks: a run tells its hooks what happens, on both executors, at no cost when
none listens."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

import namu
from namu.runtime.hooks import CallStats, RunInfo, TaskCall, compose, emit, needs

EXECUTORS = ["kernel", "reference"]
attempts: dict[str, int] = {}


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("namu.runtime.tasks.retries.retry_delay_s", lambda *_args, **_kw: 0.0)


class Recorder(namu.RunHooks):
    """Records every event as a tuple (thread-safe: thread-mode calls report from workers)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def _add(self, *event: Any) -> None:
        with self._lock:
            self.events.append(event)

    def on_run_start(self, run: RunInfo) -> None:
        self._add("run_start", run.workflow, run.executor)

    def on_run_end(self, run: RunInfo, error: BaseException | None) -> None:
        self._add("run_end", type(error).__name__ if error is not None else None)

    def on_task_start(self, call: TaskCall) -> None:
        self._add("task_start", call.task)

    def on_task_end(self, call: TaskCall, source: str) -> None:
        self._add("task_end", call.task, source)

    def on_task_error(self, call: TaskCall, error: BaseException) -> None:
        self._add("task_error", call.task, type(error).__name__)

    def on_task_retry(self, call: TaskCall, attempt: int, error: BaseException, delay_s: float) -> None:
        self._add("task_retry", call.task, attempt)

    def on_task_skip(self, item: Any) -> None:
        self._add("task_skip", item.task, item.index)

    def on_fanout(self, items: int) -> None:
        self._add("fanout", items)

    def on_item_done(self) -> None:
        self._add("item_done")

    def on_event(self, name: str, data: Any) -> None:
        self._add("event", name, dict(data))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] == kind]


@namu.task
def items(n: int) -> list[int]:
    return list(range(n))


@namu.task
def total(xs: list[int]) -> int:
    return sum(xs)


@namu.task
def square(x: int) -> int:
    return x * x


@namu.task(on_error="skip")
def picky(x: int) -> int:
    if x == 2:
        raise ValueError("no twos")
    return x


@namu.task(retries=2)
def flaky(key: str) -> str:
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] < 3:
        raise ConnectionError("try again")
    return key


@namu.task
def boom(x: int) -> int:
    raise KeyError(x)


@namu.task(cache=True)
def cached_double(x: int) -> int:
    return 2 * x


@namu.task
def counts_tokens(text: str) -> int:
    emit("tokens", used=len(text.split()))
    return len(text)


@namu.task
async def slow_echo(x: int) -> int:
    await asyncio.sleep(0)
    return x


@namu.workflow
def pipeline(n: int, key: str) -> int:
    kept = [picky(x) for x in items(n)]
    squares = [square(x) for x in kept]
    flaky(key)
    return total(squares)


@namu.workflow
def failing(x: int) -> int:
    return boom(x)


@namu.workflow
def twice(x: int) -> int:
    return cached_double(x) + cached_double(x)


@namu.workflow
def tokens(text: str) -> int:
    return counts_tokens(text)


@namu.workflow
def echoes(n: int) -> list[int]:
    return [slow_echo(x) for x in items(n)]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_run_tells_its_hooks_every_event_in_order(executor: str) -> None:
    hooks = Recorder()
    assert pipeline.run(4, f"k-{executor}", executor=executor, hooks=hooks).value == 0 + 1 + 9
    events = hooks.events
    assert events[0] == ("run_start", "pipeline", executor) and events[-1] == ("run_end", None)
    assert hooks.of("fanout") == [("fanout", 4), ("fanout", 3)]
    assert len(hooks.of("item_done")) == 7
    assert hooks.of("task_skip") == [("task_skip", "picky", 2)]
    assert hooks.of("task_retry") == [("task_retry", "flaky", 0), ("task_retry", "flaky", 1)]
    assert hooks.of("task_error") == [("task_error", "picky", "ValueError")]
    starts = [e[1] for e in hooks.of("task_start")]
    assert starts.count("picky") == 4 and starts.count("square") == 3 and starts.count("flaky") == 1
    ended = ["items", "total", "flaky"] + ["picky"] * 3 + ["square"] * 3
    assert sorted(e[1] for e in hooks.of("task_end")) == sorted(ended)
    assert {e[2] for e in hooks.of("task_end")} == {"run"}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_failing_run_ends_with_its_error(executor: str) -> None:
    hooks = Recorder()
    with pytest.raises(namu.TaskError):
        failing.run(1, executor=executor, hooks=hooks)
    assert hooks.of("task_error") == [("task_error", "boom", "KeyError")]
    assert hooks.events[-1] == ("run_end", "TaskError")


@pytest.mark.parametrize("executor", EXECUTORS)
def test_cache_and_checkpoint_hits_say_where_the_result_came_from(executor: str, tmp_path: Path) -> None:
    stats = CallStats()
    art = namu.compile(twice, disable=["eliminate-common-subexpressions"])  # two calls, not one
    x = {"kernel": 21, "reference": 22}[executor]  # the memory cache outlives a run
    assert art.run(x, executor=executor, hooks=stats).value == 4 * x
    assert (stats.calls["cached_double", "miss"], stats.calls["cached_double", "cache"]) == (1, 1)
    assert stats.hit_rate == 0.5 and stats.total("run") == 1

    again = Recorder()
    checkpoint = tmp_path / "run.ckpt"
    art.run(5, executor=executor, checkpoint=checkpoint)
    art.run(5, executor=executor, checkpoint=checkpoint, hooks=again)
    assert {e[2] for e in again.of("task_end")} == {"checkpoint"}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_ops_report_their_own_events(executor: str) -> None:
    hooks = Recorder()
    assert tokens.run("a b c", executor=executor, hooks=hooks).value == 5
    assert hooks.of("event") == [("event", "tokens", {"used": 3})]
    emit("tokens", used=1)  # outside a run: nobody listens, nothing happens


@pytest.mark.parametrize("executor", EXECUTORS)
def test_async_calls_report_too(executor: str) -> None:
    hooks = Recorder()
    assert echoes.run(3, executor=executor, hooks=hooks).value == [0, 1, 2]
    assert sorted(e[1] for e in hooks.of("task_end")) == ["items"] + ["slow_echo"] * 3


def test_hooks_compose_and_each_gets_only_what_it_overrides() -> None:
    class Fanouts(namu.RunHooks):
        def __init__(self) -> None:
            self.items: list[int] = []

        def on_fanout(self, items: int) -> None:
            self.items.append(items)

    recorder, fanouts = Recorder(), Fanouts()
    assert needs(fanouts) == {"fanout"} and needs(None) == frozenset()
    pipeline.run(3, "compose", hooks=[recorder, fanouts])
    assert fanouts.items == [3, 2] and recorder.of("fanout") == [("fanout", 3), ("fanout", 2)]
    assert compose(None, [fanouts]) is fanouts and compose() is None
    assert needs(compose(recorder, fanouts)) == needs(recorder)


def test_hooks_must_be_run_hooks() -> None:
    with pytest.raises(ValueError, match="run hooks must be namu.RunHooks objects, got str"):
        pipeline.run(1, "x", hooks="progress")


def test_hooks_that_need_no_task_event_leave_task_calls_direct() -> None:
    """Zero cost: a plain task stays the user's own function, called by the kernel, unless
    the hooks need a task event (``benchmarks/test_hooks.py`` measures it)."""

    class Fanouts(namu.RunHooks):
        def on_fanout(self, items: int) -> None: ...

    art = namu.compile(pipeline)
    art.run(2, "direct", hooks=Fanouts())
    art.run(2, "direct-2")
    art.run(2, "direct-3", hooks=Recorder())
    prepared = {key[1] for key in art._runners}
    assert prepared == {frozenset(), frozenset({"fanout"}), needs(Recorder()) & {"fanout", "item_done", "task_start", "task_end", "task_error", "task_retry"}}


shouted: list[str] = []


@namu.task
def shout(text: str) -> str:
    shouted.append(text)
    return text.upper()


@namu.workflow
def louder(text: str) -> str:
    return shout(text)


class Store(namu.RunHooks):
    """A store of results serving calls it has seen (as the checkpoint journal does)."""

    def __init__(self) -> None:
        self.kept: dict[tuple[str, bytes], str] = {}

    def on_task_lookup(self, call: TaskCall, args_digest: bytes) -> tuple[bool, Any]:
        key = (call.digest, args_digest)
        if key in self.kept:
            return True, self.kept[key]
        return False, lambda result: self.kept.__setitem__(key, result)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_hook_can_serve_calls_and_the_checkpoint_is_such_a_hook(executor: str, tmp_path: Path) -> None:
    shouted.clear()
    store, seen = Store(), Recorder()
    text = f"hi {executor}"
    assert louder.run(text, executor=executor, hooks=store).value == text.upper()
    assert louder.run(text, executor=executor, hooks=[store, seen]).value == text.upper()
    assert shouted == [text] and seen.of("task_end") == [("task_end", "shout", "checkpoint")]
    # the journal comes first; the store serves, and the journal records what it served
    checkpoint = tmp_path / "run.ckpt"
    assert louder.run(text, executor=executor, hooks=store, checkpoint=checkpoint).value == text.upper()
    result = louder.run(text, executor=executor, checkpoint=checkpoint)
    assert (result.value, result.resumed_calls, shouted) == (text.upper(), 1, [text])
