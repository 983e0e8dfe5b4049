"""Run the benchmark suite once and print one table: microseconds per task and the ratio
to the plain Python loop, per scenario (all engines measured in the same run).

    python benchmarks/table.py [-k EXPR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
TASKS_PER_RUN = 10_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", default="", help="pytest -k expression to select benchmarks")
    parser.add_argument("--json", type=Path, help="also keep pytest-benchmark's JSON here")
    args = parser.parse_args()
    out = args.json or Path(tempfile.mkstemp(suffix=".json")[1])
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "benchmarks"), "--benchmark-enable", "-q",
           "-p", "no:cacheprovider", f"--benchmark-json={out}"]
    if args.k:
        cmd += ["-k", args.k]
    code = subprocess.call(cmd, cwd=ROOT)
    data = json.loads(out.read_text())
    groups: dict[str, list[tuple[str, float]]] = {}
    for bench in data["benchmarks"]:
        name = bench["name"].removeprefix("test_").split("_", 1)[1]  # e.g. namu[kernel]
        groups.setdefault(bench["group"], []).append((name, bench["stats"]["median"]))
    table = Table(title=f"namu and peers, {TASKS_PER_RUN:,} tasks per run (median of rounds)")
    for column in ("scenario", "engine", "µs / task", "× plain loop"):
        table.add_column(column, justify="right" if "×" in column or "µs" in column else "left")
    for group, rows in groups.items():
        floor = dict(rows).get("plain_loop")
        for name, median in sorted(rows, key=lambda r: r[1]):
            ratio = f"{median / floor:.1f}" if floor else "-"
            table.add_row(group, escape(name), f"{median / TASKS_PER_RUN * 1e6:.2f}", ratio)
        table.add_section()
    Console().print(table)
    print(f"machine: {os.cpu_count()} cores; {data['machine_info']['cpu'].get('brand_raw', '?')}; "
          f"python {data['machine_info']['python_version']}")
    return code


if __name__ == "__main__":
    sys.exit(main())
