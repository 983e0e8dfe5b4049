"""Run the compile-time benchmark once and print two tables: namu's compile time per
size next to onnxscript and Hamilton, and namu's per-pass times with the log-log slope
from 1,000 to 100,000 ops (1.0 = linear).

    python benchmarks/compile_table.py [--json out.json]
    python benchmarks/compile_table.py --from out.json       # print a kept run again
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.table import machine_line, run_suite  # noqa: E402
ENGINES = {
    "test_compile_namu": "namu: frontend + all passes",
    "test_compile_onnxscript": "onnxscript: convert (@script)",
    "test_optimize_onnxscript": "onnxscript: optimizer.optimize",
    "test_graph_build_hamilton": "Hamilton: driver build",
}


def slope(points: dict[int, float]) -> float | None:
    """Log-log slope between the smallest and the largest size."""
    if len(points) < 2:
        return None
    lo, hi = min(points), max(points)
    if points[lo] <= 0 or points[hi] <= 0:
        return None
    return math.log(points[hi] / points[lo]) / math.log(hi / lo)


def render(data: dict[str, Any]) -> None:
    console = Console()
    overview = Table(title="Compile time, one run (median of rounds)")
    for column in ("engine", "ops", "seconds", "µs / op"):
        overview.add_column(column, justify="left" if column == "engine" else "right")
    namu_rows: list[dict[str, Any]] = []
    for bench in data["benchmarks"]:
        base = bench["name"].split("[")[0]
        extra = bench.get("extra_info", {})
        ops = extra.get("ops", 0)
        median = bench["stats"]["median"]
        overview.add_row(ENGINES.get(base, base), f"{ops:,}", f"{median:.3f}", f"{median / max(ops, 1) * 1e6:.1f}")
        if base == "test_compile_namu":
            namu_rows.append({"ops": ops, "total": median, **extra})
    console.print(overview)
    if not namu_rows:
        return
    namu_rows.sort(key=lambda r: r["ops"])
    passes = list(namu_rows[-1]["passes"])
    per_pass = Table(title="namu: seconds per pass (last round of each size)")
    per_pass.add_column("stage")
    for row in namu_rows:
        per_pass.add_column(f"{row['ops']:,} ops", justify="right")
    per_pass.add_column("slope", justify="right")

    def add(name: str, values: dict[int, float]) -> None:
        s = slope(values)
        per_pass.add_row(name, *[f"{values.get(r['ops'], 0.0):.4f}" for r in namu_rows], f"{s:.2f}" if s is not None else "-")

    add("frontend (lowering)", {r["ops"]: r["lower_s"] for r in namu_rows})
    for name in passes:
        add(name, {r["ops"]: r["passes"].get(name, 0.0) for r in namu_rows})
    add("all passes", {r["ops"]: sum(r["passes"].values()) for r in namu_rows})
    add("namu.compile (median)", {r["ops"]: r["total"] for r in namu_rows})
    console.print(per_pass)
    print(machine_line(data))


def main() -> int:
    code, data = run_suite("test_compile.py", __doc__)
    render(data)
    return code


if __name__ == "__main__":
    sys.exit(main())
