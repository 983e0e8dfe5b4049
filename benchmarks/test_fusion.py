"""fuse-tasks on scenario 1: the 10,000-task chain with and without the pass, one run.

With the pass the whole chain is one ``namu.Fused`` node, which the kernel runs as one
``Seq`` op (the calls straight-line, no ready-queue traffic); without it
(``namu.compile(wf, disable=["fuse-tasks"])``) every call is its own node. Group
``fusion``; the plain loop is the floor. Off by default, like every benchmark::

    python -m pytest benchmarks/test_fusion.py --benchmark-enable
    python benchmarks/table.py -k fusion
"""

from __future__ import annotations

import onnx_ir as ir
import pytest

import namu
from benchmarks.conftest import N
from benchmarks.test_scenarios import plain_chain

pytestmark = pytest.mark.timeout(3600)


@pytest.mark.benchmark(group="fusion")
def test_fusion_plain_loop(benchmark, workloads) -> None:
    assert benchmark(plain_chain, workloads) == N


@pytest.mark.benchmark(group="fusion")
@pytest.mark.parametrize("executor", ["kernel", "reference"])
@pytest.mark.parametrize("fusion", ["fused", "unfused"])
def test_fusion_namu(benchmark, workloads, fusion: str, executor: str) -> None:
    art = namu.compile(workloads.chain, disable=["fuse-tasks"] if fusion == "unfused" else [])
    fused = [n for n in ir.traversal.RecursiveGraphIterator(art.model.graph) if n.op_type == "Fused"]
    assert len(fused) == (1 if fusion == "fused" else 0)
    assert benchmark(lambda: art.run(0, executor=executor).value) == N
