"""Peak memory of one large fan-out (scenario 6), measured in a fresh process per engine.

    python -m benchmarks.peak_memory ENGINE N WORKLOADS_PY

ENGINE is ``namu``, ``plain_loop`` or ``dask_sync``; WORKLOADS_PY is the generated
workload module (``benchmarks.conftest.workloads``). Prints one JSON object: the wall
time of the run and the peak resident set size it added over the baseline taken after
imports and compilation. The peak is the process's ``VmHWM`` (Linux), which sees the
kernel's native allocations (``tracemalloc`` would not). ``ru_maxrss`` would be the
natural call, but Linux carries it over from the parent through fork and exec, so a
child of a big pytest process starts with the parent's peak.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from namu.runtime.user_code import import_path


def _maxrss_mb() -> float:
    """This process's peak resident set size, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise SystemExit("no VmHWM in /proc/self/status (peak memory is measured on Linux only)")


def runner(engine: str, n: int, fns: Any) -> Callable[[], int]:
    """A zero-argument run of the fan-out ``total([inc(x) for x in items(n)])``."""
    if engine == "namu":
        import namu

        art = namu.compile(fns.fanout)
        return lambda: art.run(n).value
    if engine == "plain_loop":
        return lambda: fns.total_fn([fns.inc_fn(x) for x in fns.items_fn(n)])
    if engine == "dask_sync":
        import dask

        from benchmarks.peers import dask_big_fanout_graph

        # Building the graph is part of what Dask needs memory for: it is inside the run.
        return lambda: dask.get(dask_big_fanout_graph(fns, n), "result")
    raise SystemExit(f"unknown engine {engine!r}")


def main(argv: list[str]) -> int:
    engine, n, path = argv[0], int(argv[1]), Path(argv[2])
    run = runner(engine, n, import_path(path))
    baseline = _maxrss_mb()
    start = time.perf_counter()
    value = run()
    wall = time.perf_counter() - start
    if value != n * (n + 1) // 2:
        raise SystemExit(f"{engine}: wrong total {value}")
    print(json.dumps({"engine": engine, "n": n, "wall_s": wall, "peak_mb": _maxrss_mb() - baseline, "baseline_mb": baseline}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
