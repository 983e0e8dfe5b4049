"""Gates at run time: a ``namu.Gate``'s policy is what runs, on both executors; fallbacks;
bare tasks of gated artifacts run plain; older artifacts keep their tasks' options."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import onnx
import onnx_ir as ir
import pytest

import namu
from namu.ir import metadata
from namu.ir.opsets import NAMU_DOMAIN
from namu.passes import CompileConfig
from namu.runtime.artifact import Artifact
from namu.runtime.tasks import retries as task_retries
from tests.conftest import run_both
from tests.passes.conftest import parse, run_model


def _gates_in(graph: ir.Graph) -> list[ir.Node]:
    return [n for n in ir.traversal.RecursiveGraphIterator(graph) if n.op_type == "Gate" and n.domain == NAMU_DOMAIN]


def _gates(art: namu.Artifact) -> list[ir.Node]:
    return _gates_in(art.model.graph)


def _ungate(gate: ir.Node) -> ir.Node:
    """Put the op a gate guards back in the gate's place (as if the gate were never made)."""
    graph = gate.graph
    assert graph is not None
    body = gate.attributes["body"].as_graph()
    inner = next(iter(body))
    body.remove(inner)
    for i, value in enumerate(gate.inputs):
        inner.replace_input_with(i, value)
    body.outputs.clear()
    graph.insert_before(gate, inner)
    ir.convenience.replace_all_uses_with(list(gate.outputs), list(inner.outputs), replace_graph_outputs=True)
    graph.remove(gate, safe=True)
    return inner


def _with_signature(model: ir.Model, *params: str, returns: str = "value") -> ir.Model:
    """``model`` with a signature taking int parameters ``params`` (hand-built models)."""
    signature = metadata.Signature(
        name=model.graph.name or "g",
        file="",
        params=[metadata.Parameter(name=p, type="int") for p in params],
        returns=returns,  # type: ignore[arg-type]
    )
    model.metadata_props[metadata.SIGNATURE_KEY] = metadata.dump(signature)
    return model


def _set(node: ir.Node, **attrs: Any) -> None:
    for name, value in attrs.items():
        if isinstance(value, str):
            node.attributes[name] = ir.AttrString(name, value)
        elif isinstance(value, float):
            node.attributes[name] = ir.AttrFloat32(name, value)
        else:
            node.attributes[name] = ir.AttrInt64(name, value)


@namu.task
def ids(n: int) -> list[int]:
    return list(range(n))


class Flaky:
    """A task body that fails its first ``failures`` calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[Any] = []

    def __call__(self, x: int) -> int:
        self.calls.append(x)
        if len(self.calls) <= self.failures:
            raise ConnectionError(f"failure {len(self.calls)}")
        return x * 10


# ---------------------------------------------------------------------- the gate's policy runs
def test_a_gates_edited_retries_are_what_runs(executor: str) -> None:
    flaky = Flaky(failures=3)

    @namu.task(retries=1)
    def fetch(x: int) -> int:
        return flaky(x)

    @namu.workflow
    def wf(x: int) -> int:
        return fetch(x)

    art = namu.compile(wf)
    (gate,) = _gates(art)
    assert gate.attributes["retries"].as_int() == 1
    _set(gate, retries=3)  # the task says 1; the gate now says 3
    assert art.run(2, executor=executor).value == 20
    assert flaky.calls == [2, 2, 2, 2]


def test_a_gates_backoff_is_what_runs(executor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[tuple[int, float, float]] = []

    def record(attempt: int, rng: Any = None, *, base_s: float, max_s: float) -> float:
        delays.append((attempt, base_s, max_s))
        return 0.0

    monkeypatch.setattr(task_retries, "retry_delay_s", record)
    flaky = Flaky(failures=2)

    @namu.task(retries=2)
    def fetch(x: int) -> int:
        return flaky(x)

    @namu.workflow
    def wf(x: int) -> int:
        return fetch(x)

    art = namu.compile(wf)
    (gate,) = _gates(art)
    _set(gate, backoff_base_s=0.25, backoff_max_s=4.0)
    assert art.run(1, executor=executor).value == 10
    assert delays == [(0, 0.25, 4.0), (1, 0.25, 4.0)]


def test_a_gates_timeout_is_what_runs(executor: str) -> None:
    @namu.task
    def slow(x: int) -> int:
        time.sleep(1.0)
        return x

    @namu.task(timeout_s=30.0)
    def patient(x: int) -> int:
        return slow.fn(x)

    @namu.workflow
    def wf(x: int) -> int:
        return patient(x)

    art = namu.compile(wf)
    (gate,) = _gates(art)
    _set(gate, timeout_s=0.05)
    start = time.perf_counter()
    with pytest.raises(namu.TaskTimeoutError) as info:
        art.run(1, executor=executor)
    assert info.value.task == "patient"
    assert time.perf_counter() - start < 0.9  # the gate's 0.05 s, not the task's 30 s


def test_bare_tasks_of_gated_artifacts_run_without_retries(executor: str) -> None:
    flaky = Flaky(failures=1)

    @namu.task(retries=2)
    def fetch(x: int) -> int:
        return flaky(x)

    @namu.workflow
    def wf(x: int) -> int:
        return fetch(x)

    art = namu.compile(wf)
    (gate,) = _gates(art)
    _ungate(gate)
    assert "insert-resilience-gates" in art.passport.passes
    with pytest.raises(namu.TaskError):
        art.run(1, executor=executor)
    assert flaky.calls == [1]


def test_artifacts_compiled_without_gates_keep_the_task_options(executor: str) -> None:
    flaky = Flaky(failures=2)

    @namu.task(retries=2)
    def fetch(x: int) -> int:
        return flaky(x)

    @namu.workflow
    def wf(x: int) -> int:
        return fetch(x)

    art = namu.compile(wf, passes=["verify-structure", "inline-functions"])
    assert not _gates(art)
    assert art.run(3, executor=executor).value == 30
    assert flaky.calls == [3, 3, 3]


def test_hand_built_models_keep_the_task_options(executor: str) -> None:
    flaky = Flaky(failures=1)

    @namu.task(retries=1)
    def fetch(x: int) -> int:
        return flaky(x)

    model = parse('g (int64 x) => (int64 y) { y = namu.Task <task = "fetch"> (x) }', task_options={"fetch": {"retries": 1}})
    _with_signature(model, "x")
    assert run_model(model, {"fetch": fetch}, 4, executor=executor) == 40
    assert flaky.calls == [4, 4]


def test_a_nodes_cache_attribute_is_what_runs(executor: str) -> None:
    calls: list[int] = []

    @namu.task
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    @namu.workflow
    def wf(x: int) -> list[int]:
        return [square(v) for v in [x, x, x]]

    art = namu.compile(wf, config=CompileConfig(cache=True))
    assert art.run(3, executor=executor).value == [9, 9, 9]
    assert calls == [3]


def test_gates_around_other_ops_retry_and_keep_the_ops_error(executor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    retried: list[int] = []
    monkeypatch.setattr(task_retries, "retry_delay_s", lambda attempt, rng=None, **_: retried.append(attempt) or 0.0)
    model = parse(
        """
        g (int64 a, int64 b) => (int64 q, int64 s) {
          q = namu.Gate <body = gq (int64 a_g, int64 b_g) => (int64 q_g) { q_g = Div(a_g, b_g) }, retries = 2> (a, b)
          s = namu.Gate <body = gs (int64 a_h, int64 b_h) => (int64 s_g) { s_g = Add(a_h, b_h) }, retries = 2> (a, b)
        }
        """
    )
    _with_signature(model, "a", "b", returns="tuple")
    assert run_model(model, {}, 7, 2, executor=executor) == (3, 9)
    assert retried == []
    with pytest.raises(ZeroDivisionError):
        run_model(model, {}, 7, 0, executor=executor)
    assert retried == [0, 1]


# ---------------------------------------------------------------------- fallbacks
def test_fallback_is_called_with_the_same_arguments_when_retries_run_out(executor: str) -> None:
    seen: list[tuple[int, int]] = []
    flaky = Flaky(failures=5)

    @namu.task
    def cached_answer(x: int, scale: int = 1) -> int:
        seen.append((x, scale))
        return -x * scale

    @namu.task(retries=1, fallback=cached_answer)
    def answer(x: int, scale: int = 1) -> int:
        return flaky(x) * scale

    @namu.workflow
    def wf(x: int) -> int:
        return answer(x, scale=3)

    art = namu.compile(wf)
    onnx.checker.check_model(art.to_proto(), full_check=True)
    (gate,) = _gates(art)
    assert gate.attributes["fallback"].as_string() == "cached_answer"
    assert art.run(5, executor=executor).value == -15
    assert flaky.calls == [5, 5]
    assert seen == [(5, 3)]


def test_fallback_after_a_timeout(executor: str) -> None:
    @namu.task
    def quick(x: int) -> int:
        return x + 100

    @namu.task(timeout_s=0.05, fallback=quick)
    def slow(x: int) -> int:
        time.sleep(1.0)
        return x

    @namu.workflow
    def wf(x: int) -> int:
        return slow(x)

    assert wf.run(1, executor=executor).value == 101


def test_a_failing_fallback_fails_the_call_naming_both(executor: str) -> None:
    @namu.task
    def backup(x: int) -> int:
        raise ValueError(f"no backup for {x}")

    @namu.task(fallback=backup)
    def primary(x: int) -> int:
        raise ConnectionError("down")

    @namu.workflow
    def wf(x: int) -> int:
        return primary(x)

    with pytest.raises(namu.TaskError) as info:
        wf.run(7, executor=executor)
    err = info.value
    assert type(err) is namu.TaskError and err.task == "primary"
    assert "ConnectionError: down" in str(err) and "its fallback 'backup' failed too: ValueError: no backup for 7" in str(err)
    assert isinstance(err.__cause__, ValueError)


def test_fallback_results_are_not_cached_as_the_tasks_own(executor: str) -> None:
    flaky = Flaky(failures=1)

    @namu.task
    def stale(x: int) -> int:
        return -1

    @namu.task(cache=True, fallback=stale)
    def fresh(x: int) -> int:
        return flaky(x)

    @namu.workflow
    def wf(x: int) -> list[int]:
        return [fresh(v) for v in [x, x, x]]

    assert wf.run(4, executor=executor).value == [-1, 40, 40]
    assert flaky.calls == [4, 4]


def test_skip_applies_only_when_the_fallback_fails_too(executor: str) -> None:
    @namu.task
    def guess(x: int) -> int:
        if x == 3:
            raise LookupError("no guess for 3")
        return -x

    @namu.task(on_error="skip", fallback=guess)
    def measure(x: int) -> int:
        if x % 2:
            raise ValueError(f"odd {x}")
        return x

    @namu.workflow
    def wf(n: int) -> list[int]:
        return [measure(i) for i in ids(n)]

    result = wf.run(5, executor=executor)
    assert result.value == [0, -1, 2, 4]
    (skipped,) = result.skipped
    assert (skipped.task, skipped.index) == ("measure", 3)
    assert skipped.error == "LookupError: no guess for 3"


@pytest.mark.parametrize("kinds", [("async", "async"), ("async", "sync"), ("sync", "async")])
def test_fallback_across_sync_and_async_tasks(kinds: tuple[str, str]) -> None:
    primary_kind, fallback_kind = kinds
    observed: list[bool] = []

    def backup_body(x: int) -> int:
        observed.append(namu.runtime.result.current_run() is not None)
        return x - 1

    if fallback_kind == "async":

        @namu.task
        async def backup(x: int) -> int:
            await asyncio.sleep(0)
            return backup_body(x)

    else:

        @namu.task
        def backup(x: int) -> int:
            return backup_body(x)

    if primary_kind == "async":

        @namu.task(retries=1, fallback=backup)
        async def primary(x: int) -> int:
            await asyncio.sleep(0)
            raise ConnectionError("down")

    else:

        @namu.task(retries=1, fallback=backup)
        def primary(x: int) -> int:
            raise ConnectionError("down")

    @namu.workflow
    def wf(n: int) -> list[int]:
        return [primary(i) for i in ids(n)]

    assert run_both(wf, 4).value == [-1, 0, 1, 2]
    assert observed == [True] * 12  # 3 runs (kernel, reference, -O0); every fallback call saw the run


def test_fallback_tasks_are_in_the_task_table_under_their_key() -> None:
    def make(name_suffix: int) -> namu.Task:
        def shared(x: int) -> int:
            return x + name_suffix

        return namu.task(shared)

    first, second = make(1), make(2)  # two different tasks named "shared"

    @namu.task(fallback=second)
    def primary(x: int) -> int:
        raise ConnectionError("down")

    @namu.workflow
    def wf(x: int) -> int:
        return first(x) + primary(x)

    art = namu.compile(wf)
    table = art.task_table.by_key()
    assert set(table) == {"shared", "primary", "shared_2"}
    assert table["primary"].options.fallback == "shared_2"
    assert art.run(10, executor="kernel").value == 11 + 12
    saved = art.to_proto()
    assert metadata.TaskTable.model_validate_json(
        {p.key: p.value for p in saved.metadata_props}[metadata.TASKS_KEY]
    ).by_key()["primary"].options.fallback == "shared_2"


def test_fallback_must_be_a_task() -> None:
    with pytest.raises(namu.TaskDefinitionError, match="fallback: expected a @namu.task"):

        @namu.task(fallback=lambda x: x)
        def primary(x: int) -> int:
            return x


def test_older_artifacts_without_fallback_gates_still_fall_back(executor: str) -> None:
    @namu.task
    def backup(x: int) -> int:
        return 0

    @namu.task(fallback=backup)
    def primary(x: int) -> int:
        raise ConnectionError("down")

    @namu.workflow
    def wf(x: int) -> int:
        return primary(x)

    art = namu.compile(wf, passes=["verify-structure", "inline-functions"])
    assert not _gates(art)
    assert art.run(1, executor=executor).value == 0
    # A loaded copy of the same model binds the fallback from the task table too.
    copy = Artifact(art.model, {k: b for k, b in art.bindings.items()})
    assert copy.run(1, executor=executor).value == 0


# ---------------------------------------------------------------------- wire receives
def test_receives_run_in_gates_under_a_wire_timeout(executor: str) -> None:
    delay = {"s": 0.0}

    @namu.task(placement="gpu")
    def embed(x: int) -> int:
        time.sleep(delay["s"])
        return x * 2

    @namu.task
    def finish(x: int) -> int:
        return x + 1

    @namu.workflow
    def wf(x: int) -> int:
        return finish(embed(x))

    art = namu.compile(wf, config=CompileConfig(wire_timeout_s=0.1))
    onnx.checker.check_model(art.to_proto(), full_check=True)
    gated = [gate.attributes["body"].as_graph().node(0).op_type for f in art.model.functions.values() for gate in _gates_in(f.graph)]
    assert sorted(gated) == ["Recv", "Recv"] and all(
        gate.attributes["timeout_s"].as_float() == pytest.approx(0.1)
        for f in art.model.functions.values()
        for gate in _gates_in(f.graph)
    )
    assert art.run(3, executor=executor).value == 7
    delay["s"] = 0.6
    with pytest.raises(TimeoutError) as info:
        art.run(3, executor=executor)
    assert any("while evaluating Recv at" in note for note in getattr(info.value, "__notes__", []))
