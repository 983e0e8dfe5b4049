"""Compile-time benchmark: generated workflows of 1,000, 10,000 and 100,000 ops through
namu's frontend and all 18 passes, next to onnxscript (its Python-to-ONNX converter and
its optimizer) and Hamilton (its graph build) on the same DAG shapes.

Each namu row records the per-pass times of its last round in ``extra_info``; the table
(``python benchmarks/compile_table.py``) prints them with the log-log slope of the total.
Peers run at 1,000 and 10,000 ops (onnxscript's optimizer takes about a minute at 10,000
on a 2-core machine, and its converter and Hamilton's build grow too slow past that).
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from types import ModuleType

import pytest

import namu
from benchmarks import peers
from benchmarks.compile_gen import hamilton_source, namu_source, onnxscript_source
from namu.compiler import lower
from namu.ir.printer import count_nodes
from namu.runtime.user_code import import_path

SIZES = {"1k": 1_000, "10k": 10_000, "100k": 100_000}
PEER_SIZES = {"1k": 1_000, "10k": 10_000}


def _module(directory: Path, name: str, source: str) -> ModuleType:
    path = directory / f"{name}.py"
    path.write_text(source)
    return import_path(path)


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compile_bench")


def _rounds(n: int) -> int:
    return 1 if n >= 100_000 else 3


@pytest.mark.parametrize("size", SIZES)
def test_compile_namu(benchmark, gen_dir: Path, size: str) -> None:
    n = SIZES[size]
    module = _module(gen_dir, f"namu_{size}", namu_source(n))
    records: list = []

    def compile_once() -> namu.Artifact:
        gc.collect()
        art = namu.compile(module.big)
        records[:] = art.pass_records
        return art

    art = benchmark.pedantic(compile_once, rounds=_rounds(n), iterations=1, warmup_rounds=0)
    lower_s = []
    for _ in range(_rounds(n)):  # the frontend's share, timed on its own
        gc.collect()
        start = time.perf_counter()
        model = lower(module.big).model
        lower_s.append(time.perf_counter() - start)
    benchmark.extra_info.update(
        ops=count_nodes(model),
        ops_after=count_nodes(art.model),
        lower_s=min(lower_s),
        passes={r.name: r.seconds for r in records},
        changes={r.name: r.changes for r in records},
    )
    assert art(3, 4) == module.big.fn(3, 4)


@pytest.mark.parametrize("size", PEER_SIZES)
def test_compile_onnxscript(benchmark, gen_dir: Path, size: str) -> None:
    peers.need("onnxscript")
    import onnxscript

    n = PEER_SIZES[size]
    module = _module(gen_dir, f"onnxscript_{size}", onnxscript_source(n))
    fn = module.big.function
    proto = benchmark.pedantic(lambda: onnxscript.script()(fn).to_model_proto(), rounds=_rounds(n), iterations=1)
    benchmark.extra_info.update(ops=len(proto.graph.node), what="convert")
    assert len(proto.graph.node) == n


@pytest.mark.parametrize("size", PEER_SIZES)
def test_optimize_onnxscript(benchmark, gen_dir: Path, size: str) -> None:
    peers.need("onnxscript")
    import onnxscript
    import onnxscript.optimizer

    n = PEER_SIZES[size]
    module = _module(gen_dir, f"onnxscript_opt_{size}", onnxscript_source(n))
    proto = onnxscript.script()(module.big.function).to_model_proto()
    benchmark.pedantic(lambda: onnxscript.optimizer.optimize(proto), rounds=1, iterations=1)
    benchmark.extra_info.update(ops=n, what="optimize")


@pytest.mark.parametrize("size", PEER_SIZES)
def test_graph_build_hamilton(benchmark, gen_dir: Path, size: str) -> None:
    peers.need("hamilton")
    from hamilton import driver

    n = PEER_SIZES[size]
    module = _module(gen_dir, f"hamilton_{size}", hamilton_source(n))
    dr = benchmark.pedantic(lambda: driver.Builder().with_modules(module).build(), rounds=_rounds(n), iterations=1)
    benchmark.extra_info.update(ops=n, what="graph build")
    assert len(dr.list_available_variables()) >= n
