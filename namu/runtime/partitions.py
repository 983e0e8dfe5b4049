"""Run a model in one process: its partitions on threads, values over an in-process wire.

After the ``partition`` pass a model with several placements holds one
``namu.partition`` function per placement and a launcher main graph that calls the
default one (see ``docs/ir.md``). :func:`prepare_model` prepares one runner per
partition with the run's executor (kernel or reference). A run opens a
:class:`~namu.runtime.wire.Bus`, starts every other partition on its own thread and
runs the default partition on the caller's thread with the workflow's inputs; its
outputs are the run's. The threads run in copies of the caller's ``contextvars``
context, so tasks everywhere see the run (journal, caches, hooks).

**Failure.** The first partition to raise wins: the bus records its exception and wakes
every ``Recv`` still waiting (:class:`~namu.runtime.wire.RunAborted`), so the other
partitions stop at their next wire op; the run joins every thread, then raises that
first exception (with a note naming a non-default partition). No thread outlives the
run, unless a task that cannot be interrupted is still running when Ctrl+C arrives.

**No deadlock.** The reference executor runs each partition's ops in their stored order,
which the ``partition`` pass keeps globally topological, with blocking ``Recv``: that
cannot deadlock (the argument is in ``namu.passes.partition``). The kernel runs ``Recv``
as an async op that holds no thread and no run loop, so it follows data dependencies
only; each partition's ``max_concurrency`` is raised by its number of ``Recv`` ops, so
waiting receives never take the places of async task calls.
"""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Callable
from typing import Any

import onnx_ir as ir

from namu.errors import IRVerificationError
from namu.ir.metadata import HANDLERS_KEY
from namu.ir.opsets import NAMU_DOMAIN, PARTITION_DOMAIN
from namu.runtime.wire import RunAborted, open_bus

__all__ = ["PartitionedRunner", "prepare_model"]

#: runs a prepared graph: (inputs, run options) -> outputs.
Runner = Callable[..., list[Any]]


def prepare_model(executor: Any, model: ir.Model, wire_timeout_s: float | None = None) -> Runner:
    """The runner of ``model``'s main graph with ``executor`` (an
    :class:`~namu.runtime.executors.Executor`), partitions included.

    Args:
        executor: prepares graphs into runners.
        model: the IR.
        wire_timeout_s: how long a ``Recv`` waits (seconds), or None for ever.

    Returns:
        ``runner(inputs, **options) -> outputs``: the executor's own runner for a model
        without wire ops, else one that opens a bus for each run (and starts the
        partitions, for a partitioned model).

    Raises:
        IRVerificationError: the model has partitions but its main graph is not a
            launcher (one call of a ``namu.partition`` function).
    """
    partitions = {f.name: f for f in model.functions.values() if f.domain == PARTITION_DOMAIN}
    if partitions:
        launcher = list(model.graph)
        if len(launcher) != 1 or launcher[0].domain != PARTITION_DOMAIN or launcher[0].op_type not in partitions:
            raise IRVerificationError("a partitioned model's main graph must be one call of its default partition")
        default = launcher[0].op_type
        handlers = set(json.loads(model.metadata_props.get(HANDLERS_KEY, "{}")))
        remote = [(name, executor.prepare(f.graph), _recvs(f.graph)) for name, f in partitions.items()
                  if name != default and name not in handlers]
        runner = executor.prepare(partitions[default].graph)
        if remote or _wire_ops(partitions[default].graph):
            runner = PartitionedRunner(runner, _recvs(partitions[default].graph), remote, wire_timeout_s)
        if not handlers:
            return runner
        from namu.runtime.federation import FederatedRunner, WireGates, artifact_digest

        gates = {
            n.attributes["channel"].as_string(): WireGates.of(n)
            for n in ir.traversal.RecursiveGraphIterator(partitions[default].graph)
            if n.domain == NAMU_DOMAIN and n.op_type == "Scatter"
        }
        prepared = {
            name: {
                n.attributes["channel"].as_string(): executor.prepare(n.attributes["body"].as_graph())
                for n in partitions[name].graph
                if n.domain == NAMU_DOMAIN and n.op_type == "Handle"
            }
            for name in handlers
        }
        return FederatedRunner(runner, prepared, gates, artifact_digest(model))
    runner = executor.prepare(model.graph)
    if not _wire_ops(model.graph):
        return runner
    return PartitionedRunner(runner, _recvs(model.graph), [], wire_timeout_s)


class PartitionedRunner:
    """Runs one default partition on the caller's thread and the others on threads.

    Args:
        local: runner of the default partition (the workflow's inputs and outputs).
        local_recvs: how many ``Recv`` ops the default partition has.
        remote: ``(placement, runner, number of Recv ops)`` of every other partition.
        wire_timeout_s: how long a ``Recv`` waits (seconds), or None for ever.
    """

    def __init__(
        self,
        local: Runner,
        local_recvs: int,
        remote: list[tuple[str, Runner, int]],
        wire_timeout_s: float | None = None,
    ) -> None:
        self.local = local
        self.local_recvs = local_recvs
        self.remote = remote
        self.wire_timeout_s = wire_timeout_s

    def __call__(self, inputs: list[Any], **options: Any) -> list[Any]:
        outputs: list[Any] = []
        with open_bus(self.wire_timeout_s) as bus:
            threads = []
            for place, runner, n_recvs in self.remote:
                context = contextvars.copy_context()
                thread = threading.Thread(
                    target=context.run,
                    args=(_run_partition, bus, place, runner, _widened(options, n_recvs)),
                    name=f"namu-partition-{place}",
                    daemon=True,
                )
                thread.start()
                threads.append(thread)
            try:
                outputs = self.local(inputs, **_widened(options, self.local_recvs))
            except BaseException as exc:  # noqa: BLE001 - recorded, re-raised below
                bus.fail(exc)
            finally:
                try:
                    for thread in threads:
                        thread.join()
                except BaseException as exc:  # Ctrl+C while joining: stop the others, give up
                    bus.fail(exc)
                    raise
        if bus.failure is not None:
            raise bus.failure
        return outputs


def _run_partition(bus: Any, place: str, runner: Runner, options: dict[str, Any]) -> None:
    try:
        runner([], **options)
    except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread through the bus
        if not isinstance(exc, RunAborted) and bus.fail(exc):
            exc.add_note(f"(in partition {place!r})")


def _widened(options: dict[str, Any], n_recvs: int) -> dict[str, Any]:
    """Run options with room for ``n_recvs`` waiting receives in the async window."""
    if n_recvs and "max_concurrency" in options:
        return {**options, "max_concurrency": options["max_concurrency"] + n_recvs}
    return options


def _wire_ops(graph: ir.Graph, ops: tuple[str, ...] = ("Send", "Recv")) -> int:
    """How many wire ops ``graph`` holds (a gate may guard one, so bodies count)."""
    return sum(1 for n in ir.traversal.RecursiveGraphIterator(graph) if n.domain == NAMU_DOMAIN and n.op_type in ops)


def _recvs(graph: ir.Graph) -> int:
    return _wire_ops(graph, ("Recv",))
