"""Workloads to profile namu's Python side with py-spy (see docs/performance.md)::

    py-spy record --rate 500 --format raw -o chain.txt -- python benchmarks/profile_workloads.py chain
    py-spy record --rate 500 --format raw -o fanout.txt -- python benchmarks/profile_workloads.py fanout
    py-spy record --rate 500 --format raw -o compile.txt -- python benchmarks/profile_workloads.py compile

``chain`` runs the 10,000-task chain 3,000 times, ``fanout`` the 10,000-item fan-out
1,500 times, ``compile`` compiles the generated 10,000-op workflow 8 times.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import namu  # noqa: E402
from benchmarks.compile_gen import namu_source  # noqa: E402
from benchmarks.conftest import TASKS, N  # noqa: E402
from namu.runtime.user_code import import_path  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", choices=["chain", "fanout", "compile"])
    workload = parser.parse_args().workload
    directory = Path(tempfile.mkdtemp())
    if workload == "compile":
        path = directory / "gen10k.py"
        path.write_text(namu_source(10_000))
        module = import_path(path)
        for _ in range(8):
            namu.compile(module.big)
        return
    chain = "\n".join(["@namu.workflow", "def chain(x: int) -> int:"] + ["    x = inc(x)"] * N + ["    return x", ""])
    fanout = "\n".join(
        ["@namu.workflow", "def fanout(n: int) -> int:", "    ys = [inc(x) for x in items(n)]", "    return total(ys)", ""]
    )
    path = directory / "workloads.py"
    path.write_text(TASKS + "\n\n" + chain + "\n\n" + fanout)
    art = namu.compile(getattr(import_path(path), workload))
    arg, rounds = (0, 3_000) if workload == "chain" else (N, 1_500)
    for _ in range(rounds):
        art(arg)


if __name__ == "__main__":
    main()
