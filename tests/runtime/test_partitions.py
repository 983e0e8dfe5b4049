"""Partitioned workflows in one process: every partition on its own thread, values over
the in-process wire; same results as the unpartitioned workflow and plain Python, on
both executors; failures stop every partition; artifacts save, load and check."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter

import onnx
import pytest

import namu
from namu.errors import TaskError
from namu.ir.opsets import NAMU_DOMAIN, PARTITION_DOMAIN
from namu.passes import pipeline
from namu.passes.partition import PARTITIONS_KEY
from namu.runtime.wire import Bus, RunAborted, open_bus

EXECUTORS = ("kernel", "reference")
PLACING = ("infer-placement", "synthesize-wire-ops", "partition")

#: (task, thread name) of every call of a task that records where it ran
RAN_ON: list[tuple[str, str]] = []


@namu.task
def prep(n: int) -> int:
    return n + 1


@namu.task(placement="gpu")
def embed(x: int) -> int:
    RAN_ON.append(("embed", threading.current_thread().name))
    return x * 10


@namu.task
def combine(vs: list[int], base: int) -> int:
    RAN_ON.append(("combine", threading.current_thread().name))
    return sum(vs) + base


@namu.task(placement="gpu")
def boost(t: int) -> int:
    return t * 2


@namu.task
def finish(t: int, base: int) -> int:
    return t - base


@namu.workflow
def two_places(xs: list[int], flag: bool) -> int:
    base = prep(len(xs))
    vecs = [embed(x) for x in xs]  # a fan-out on gpu
    total = combine(vecs, base)
    if flag:  # a branch on gpu
        out = boost(total)
    else:
        out = total
    return finish(out, base)


@namu.task(placement="gpu")
def explode(x: int) -> int:
    raise ValueError(f"no gpu for {x}")


@namu.workflow
def fails_remotely(x: int) -> int:
    return finish(explode(prep(x)), x)


@namu.task
def local_boom(x: int) -> int:
    raise RuntimeError("local failure")


@namu.workflow
def fails_locally(x: int) -> int:
    a = local_boom(x)
    return finish(boost(a), x)  # the gpu partition waits for `a` when the local one fails


@namu.task(placement="gpu")
def slow_remote(x: int) -> int:
    time.sleep(0.5)
    return x


@namu.workflow
def waits_long(x: int) -> int:
    return finish(slow_remote(x), x)


@namu.task(placement="gpu")
async def remote_async(x: int) -> int:
    await asyncio.sleep(0.001)
    return x + 1


@namu.task
def local_step(x: int) -> int:
    return x * 2


@namu.workflow
def ping_pong(x: int) -> int:
    a = remote_async(x)
    b = local_step(a)
    c = remote_async(b)
    return local_step(c)


@namu.workflow(inline=False)
def gpu_stage(x: int) -> int:
    return boost(embed(x))


@namu.workflow
def calls_a_stage(xs: list[int]) -> int:
    staged = [gpu_stage(x) for x in xs]
    return combine(staged, gpu_stage(len(xs)))


def unpartitioned(wf: namu.Workflow) -> namu.Artifact:
    """The same workflow compiled without placement: one graph, every task local."""
    return namu.compile(wf, passes=[p for p in pipeline() if p not in PLACING])


def no_partition_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("namu-partition-")]


def test_the_artifact_has_two_partitions_with_paired_wire_ops() -> None:
    art = namu.compile(two_places)
    assert json.loads(art.model.metadata_props[PARTITIONS_KEY]) == ["local", "gpu"]
    partitions = {f.name: f for f in art.model.functions.values() if f.domain == PARTITION_DOMAIN}
    assert list(partitions) == ["local", "gpu"]
    sends, recvs = {}, {}
    for place, function in partitions.items():
        for node in function.graph:
            if node.domain == NAMU_DOMAIN and node.op_type in ("Send", "Recv"):
                channel = node.attributes["channel"].as_string()
                peer = node.attributes["to" if node.op_type == "Send" else "from"].as_string()
                (sends if node.op_type == "Send" else recvs)[channel] = (place, peer)
    assert sends and set(sends) == set(recvs)
    for channel, (source, dest) in sends.items():
        assert recvs[channel] == (dest, source)
    onnx.checker.check_model(art.to_proto(), full_check=True)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("flag", [True, False])
def test_runs_like_the_unpartitioned_workflow_and_plain_python(executor: str, flag: bool) -> None:
    art = namu.compile(two_places)
    RAN_ON.clear()
    value = art.run([1, 2, 3], flag, executor=executor).value
    where = dict(RAN_ON)
    assert where["embed"] == "namu-partition-gpu"  # the gpu partition ran on its own thread
    assert where["combine"] == threading.current_thread().name  # the default one on the caller's
    assert value == unpartitioned(two_places).run([1, 2, 3], flag, executor=executor).value
    assert value == two_places.fn([1, 2, 3], flag) == (124 if flag else 60)
    assert no_partition_threads()


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_remote_task_failure_fails_the_run(executor: str) -> None:
    art = namu.compile(fails_remotely)
    with pytest.raises(TaskError) as caught:
        art.run(3, executor=executor)
    assert isinstance(caught.value.__cause__, ValueError)
    assert "no gpu for 4" in str(caught.value.__cause__)
    assert "(in partition 'gpu')" in caught.value.__notes__
    assert no_partition_threads()


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_local_failure_releases_the_waiting_partition(executor: str) -> None:
    art = namu.compile(fails_locally)
    with pytest.raises(TaskError) as caught:
        art.run(3, executor=executor)
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert no_partition_threads()


@pytest.mark.parametrize("executor", EXECUTORS)
def test_wire_timeout_fails_a_waiting_receive(executor: str) -> None:
    art = namu.compile(waits_long, config=namu.CompileConfig(wire_timeout_s=0.05))
    with pytest.raises(TimeoutError) as caught:  # the Recv's gate or the wire, whichever fires first
        art.run(1, executor=executor)
    text = "\n".join([str(caught.value), *getattr(caught.value, "__notes__", [])])
    assert "0.05 s" in text and "Recv" in text and "test_partitions.py" in text
    assert no_partition_threads()
    assert namu.compile(waits_long).run(1, executor=executor).value == 0  # no timeout: waits


@pytest.mark.parametrize("task_mode", ["inline", "thread"])
@pytest.mark.parametrize("max_concurrency", [1, 256])
def test_async_and_thread_tasks_never_deadlock_on_the_wire(task_mode: str, max_concurrency: int) -> None:
    art = namu.compile(ping_pong)
    for executor in EXECUTORS:
        result = art.run(5, executor=executor, task_mode=task_mode, max_concurrency=max_concurrency)
        assert result.value == ((5 + 1) * 2 + 1) * 2
    assert no_partition_threads()


def test_concurrent_runs_have_their_own_wires() -> None:
    art = namu.compile(two_places)
    results: list[int] = []

    def run(n: int) -> None:
        results.append(art.run(list(range(n)), True).value)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(1, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(results) == Counter(two_places.fn(list(range(n)), True) for n in range(1, 6))


def test_save_and_load_keep_the_partitions(tmp_path) -> None:
    path = namu.compile(two_places).save(tmp_path / "two_places.onnx")
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    loaded = namu.load(path)
    assert json.loads(loaded.model.metadata_props[PARTITIONS_KEY]) == ["local", "gpu"]
    for executor in EXECUTORS:
        assert loaded.run([4, 5], True, executor=executor).value == two_places.fn([4, 5], True)


def test_the_bus_carries_one_value_per_channel() -> None:
    bus = Bus()
    bus.send("a@gpu", 1)
    assert bus.recv("a@gpu") == 1
    results: list[int] = []
    with open_bus() as current:
        waiting = threading.Thread(target=lambda: results.append(current.recv("b@gpu")))
        waiting.start()
        current.send("b@gpu", 2)
        waiting.join()
    assert results == [2]


def test_the_bus_times_out_and_aborts() -> None:
    bus = Bus(timeout_s=0.01)
    with pytest.raises(TimeoutError, match="nothing arrived within 0.01 s"):
        bus.recv("never")
    with pytest.raises(TimeoutError, match="nothing arrived within 0.01 s"):
        asyncio.run(bus.recv_async("never"))

    bus = Bus()
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            bus.recv("late")
        except RunAborted as exc:
            errors.append(exc)

    waiting = threading.Thread(target=wait)
    waiting.start()
    first = ValueError("first")
    assert bus.fail(first) and not bus.fail(ValueError("second"))
    waiting.join()
    assert bus.failure is first and len(errors) == 1
    with pytest.raises(RunAborted):
        bus.send("other", 1)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_called_sub_workflow_runs_in_its_partition(executor: str) -> None:
    art = namu.compile(calls_a_stage)
    partitions = {f.name: f for f in art.model.functions.values() if f.domain == PARTITION_DOMAIN}
    assert [n.op_type for n in partitions["gpu"].graph if n.domain == "namu.workflow"] == ["gpu_stage"]
    onnx.checker.check_model(art.to_proto(), full_check=True)
    assert art.run([1, 2], executor=executor).value == calls_a_stage.fn([1, 2]) == 20 + 40 + 40
