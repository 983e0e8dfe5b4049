"""Run options (one pydantic model, ``RunOptions``) and executors registered by name."""

from __future__ import annotations

import inspect
import re

import pytest

import namu
from namu.runtime.executor_registry import executor_class, executor_names, register_executor
from namu.runtime.executors import ReferenceExecutor
from namu.runtime.options import RunOptions
from tests.runtime.counting_executor import CountingExecutor


@namu.task
def upto(n: int) -> list[int]:
    return list(range(n))


@namu.task
def double(x: int) -> int:
    return 2 * x


@namu.workflow
def doubled(n: int = 3) -> list[int]:
    return [double(i) for i in upto(n)]


# ---------------------------------------------------------------------- executors
def test_a_registered_executor_runs_a_workflow() -> None:
    before = CountingExecutor.nodes_run
    result = doubled.run(4, executor="counting")
    assert result.value == doubled.run(4, executor="reference").value == [0, 2, 4, 6]
    assert result.executor == "counting"
    assert CountingExecutor.nodes_run > before  # the main graph and the Map body, per item
    assert executor_class("counting") is CountingExecutor
    assert {"counting", "kernel", "reference"} <= set(executor_names())


@pytest.mark.parametrize("name", executor_names())
def test_every_registered_executor_gives_the_reference_result(name: str) -> None:
    assert doubled.run(5, executor=name).value == [0, 2, 4, 6, 8]


def test_an_unknown_executor_lists_the_registered_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown executor 'nope'; registered executors: .*counting.*kernel, reference"):
        doubled.run(2, executor="nope")
    with pytest.raises(ValueError, match="unknown executor 'nope'"):
        doubled.with_options(executor="nope")  # refused where it is set, before any run


def test_registering_a_name_twice_or_a_non_executor_is_refused() -> None:
    with pytest.raises(ValueError, match="executor 'reference' is already registered"):

        @register_executor("reference")
        class Other(ReferenceExecutor):
            pass

    with pytest.raises(TypeError, match="must be a subclass of namu.runtime.executors.Executor"):
        register_executor("function")(lambda: None)  # type: ignore[arg-type]
    register_executor("counting")(CountingExecutor)  # the same class again: nothing changes
    assert "function" not in executor_names()


# ---------------------------------------------------------------------- run options
def test_run_options_are_the_keywords_of_run() -> None:
    keywords = [p.name for p in inspect.signature(namu.Artifact.run).parameters.values() if p.kind is p.KEYWORD_ONLY]
    assert keywords == list(RunOptions.model_fields)
    defaults = {p.name: p.default for p in inspect.signature(namu.Artifact.run).parameters.values() if p.kind is p.KEYWORD_ONLY}
    assert defaults == RunOptions().model_dump()


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"task_mode": "fibers"}, ValueError, "task_mode must be 'inline' or 'thread', got 'fibers'"),
        ({"max_concurrency": 0}, ValueError, "max_concurrency must be at least 1, got 0"),
        ({"workers": 0}, ValueError, "workers must be at least 1, got 0"),
        ({"workers": "8"}, ValueError, "workers: Input should be a valid integer, got '8'"),
        ({"cache_dir": 3}, ValueError, "cache_dir must be a path (str or os.PathLike) or None, got 3"),
        ({"worker": 2}, TypeError, "unknown run option(s) 'worker'; run options are: executor, hooks, cache_dir"),
    ],
)
def test_bad_run_options_are_one_clear_error(options: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        RunOptions.of(options)
    assert str(info.value).startswith(message), str(info.value)
    with pytest.raises(error, match=re.escape(message)):
        doubled.with_options(**options)


def test_run_options_example() -> None:
    """The example of docs "Run options"."""
    art = namu.compile(doubled)
    threaded = art.with_options(executor="reference", max_concurrency=16)
    assert threaded(n=2) == [0, 2]  # the preset options, and the input n=2
    assert threaded.run(n=2, executor="counting").executor == "counting"  # given again: wins
    assert RunOptions.of({"task_mode": "thread"}).workers is None  # the others keep their defaults
    with pytest.raises(ValueError, match="max_concurrency must be at least 1, got 0"):
        art.run(n=2, max_concurrency=0)
