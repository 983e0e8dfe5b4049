"""Run the benchmark suite once and print one table: wall time, time per task (µs; ns per
operation for the context scenario), the ratio to the scenario's floor (the plain loop,
``asyncio.gather`` under a semaphore, or a dict copy), the ratio to the ideal wall time
where there is one (scenario 4: 40 ms), and the peak memory a run added, measured in a
fresh process (scenario 6). All engines are measured in the same run.

    python benchmarks/table.py [-k EXPR] [--json out.json] [--suite test_hooks.py]
    python benchmarks/table.py --from out.json               # print a kept run again
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
TASKS_PER_RUN = 10_000
#: the engine each scenario is measured against.
FLOORS = {"plain_loop", "asyncio_gather", "dict_copy"}


@dataclass(frozen=True)
class Row:
    engine: str
    median: float  # seconds per timed run
    per_task: float  # seconds per task (or per operation)
    unit: str
    ideal: float | None  # the ideal seconds per run, where the scenario has one
    peak_mb: float | None

    @classmethod
    def of(cls, bench: dict[str, Any]) -> Row:
        extra, group = bench.get("extra_info", {}), bench["group"]
        params = bench.get("params") or {}
        name = bench["name"]
        if "engine" in params:  # parametrized by engine, e.g. test_context[dict_copy-1k]
            engine = params["engine"]
        elif name.startswith(f"test_{group}_"):  # test_fanout_1m_namu, test_sleep_ray
            engine = name.removeprefix(f"test_{group}_")
        else:  # test_chain_namu[kernel]
            engine = name.removeprefix("test_").split("_", 1)[1]
        median = bench["stats"]["median"]
        return cls(engine, median, median / extra.get("tasks", TASKS_PER_RUN), extra.get("unit", "µs / task"),
                   extra.get("ideal_s"), extra.get("peak_mb"))


def ratio(r: float) -> str:
    return f"{r:.3f}" if r < 0.1 else f"{r:.2f}" if r < 10 else f"{r:,.1f}"


def run_suite(test_file: str, description: str | None) -> tuple[int, dict[str, Any]]:
    """Parse the table script's arguments (``-k``, ``--json``, ``--from``), run
    ``benchmarks/<test_file>`` once under pytest-benchmark (unless ``--from`` names a kept
    JSON), and return pytest's exit code and the benchmark JSON."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", default="", help="pytest -k expression to select benchmarks")
    parser.add_argument("--json", type=Path, help="also keep pytest-benchmark's JSON here")
    parser.add_argument("--from", dest="source", type=Path, help="print the table of a kept JSON; run nothing")
    parser.add_argument("--suite", default=test_file, help=f"the benchmark file to run (default: {test_file})")
    args = parser.parse_args()
    code = 0
    if args.source:
        out = args.source
    else:
        out = args.json or Path(tempfile.mkstemp(suffix=".json")[1])
        cmd = [sys.executable, "-m", "pytest", str(ROOT / "benchmarks" / args.suite), "--benchmark-enable", "-q",
               "-p", "no:cacheprovider", f"--benchmark-json={out}"]
        if args.k:
            cmd += ["-k", args.k]
        code = subprocess.call(cmd, cwd=ROOT)
    return code, json.loads(out.read_text())


def machine_line(data: dict[str, Any]) -> str:
    """One line naming the machine a benchmark JSON was measured on."""
    return (f"machine: {os.cpu_count()} cores; {data['machine_info']['cpu'].get('brand_raw', '?')}; "
            f"python {data['machine_info']['python_version']}")


def main() -> int:
    code, data = run_suite("test_scenarios.py", __doc__)
    groups: dict[str, list[Row]] = {}
    for bench in data["benchmarks"]:
        groups.setdefault(bench["group"], []).append(Row.of(bench))
    table = Table(title="namu and peers, one run (median of rounds); tasks per run: 10,000 unless noted")
    for column in ("scenario", "engine", "wall ms", "per task", "× floor", "× ideal", "peak MB"):
        table.add_column(column, justify="left" if column in ("scenario", "engine") else "right")
    for group, rows in groups.items():
        floor = next((r.per_task for r in rows if r.engine in FLOORS), None)
        for row in sorted(rows, key=lambda r: r.per_task):
            table.add_row(
                group,
                escape(row.engine),
                f"{row.median * 1e3:,.1f}",
                f"{row.per_task * 1e9:,.0f} ns" if row.unit == "ns / op" else f"{row.per_task * 1e6:,.2f} µs",
                ratio(row.per_task / floor) if floor else "-",
                f"{row.median / row.ideal:.2f}" if row.ideal else "",
                f"{row.peak_mb:,.1f}" if row.peak_mb is not None else "",
            )
        table.add_section()
    Console().print(table)
    print(machine_line(data))
    return code


if __name__ == "__main__":
    sys.exit(main())
