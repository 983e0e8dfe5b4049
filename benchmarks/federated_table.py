"""Run the federated benchmarks (``benchmarks/test_federated.py``) once and print their
three tables: accuracy after each round (namu, Flower's two simulations, and a
centralized model trained for as many epochs); each framework's own time per round of
FedAvg on digits (round wall time less the clients' training, timed inside the client
code) and per client, with the ratio to namu's; and the time per client per round with
a trivial client at 1,000 clients (Flower: 100 and 1,000).

    python benchmarks/federated_table.py [-k EXPR] [--json out.json]
    python benchmarks/federated_table.py --from out.json     # print a kept run again
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.table import Row, machine_line, ratio, run_suite

NAMES = {
    "plain_loop": "plain Python loop (floor)",
    "namu": "namu (one process, LocalFederation)",
    "run_simulation": "Flower run_simulation (Ray)",
    "start_simulation": "Flower start_simulation (Ray, legacy)",
}


def _rows(data: dict[str, Any], group: str) -> list[tuple[str, dict[str, Any]]]:
    """The benchmarks of ``group`` as (engine, benchmark), in the order they ran."""
    return [(Row.of(b).engine, b) for b in data["benchmarks"] if b["group"] == group]


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    return table


def accuracy_table(rows: list[tuple[str, dict[str, Any]]]) -> Table:
    """Accuracy after each round, one column per engine (the plain loop's equals namu's:
    the benchmark asserts it), and the centralized baseline after as many epochs."""
    extra = {engine: b["extra_info"] for engine, b in rows}
    engines = [e for e in ("namu", "run_simulation", "start_simulation") if e in extra]
    central = extra.get("plain_loop", {}).get("centralized")
    table = _table("Held-out accuracy after each round: FedAvg, 10 clients, Dirichlet(0.5), one local epoch",
                   "round", *(NAMES[e] for e in engines), *(["centralized (same epochs)"] if central else []))
    rounds = max(len(extra[e]["accuracy"]) for e in engines)
    for r in range(rounds):
        cells = [f"{extra[e]['accuracy'][r]:.4f}" if r < len(extra[e]["accuracy"]) else "" for e in engines]
        table.add_row(str(r + 1), *cells, *([f"{central[r]:.4f}"] if central else []))
    return table


def round_table(rows: list[tuple[str, dict[str, Any]]]) -> Table:
    """Per engine: medians over rounds 2-20 of the wall time, the clients' training and
    the difference (the framework's own time), per round and per client, and ratios."""
    extra = {engine: b["extra_info"] for engine, b in rows}
    runs = ", ".join(f"{NAMES[e].split(' (')[0]} {x['runs']}" for e, x in extra.items())
    table = _table(f"Time per round, FedAvg on digits, 10 clients: medians over rounds 2-20 (runs pooled: {runs})",
                   "engine", "round wall ms", "clients' training ms", "own ms", "own µs / client",
                   "less floor: µs / client", "own × namu")
    floor = extra.get("plain_loop", {}).get("median_own_us_per_client")
    namu = extra.get("namu", {}).get("median_own_us_per_client")
    for engine in sorted(extra, key=lambda e: extra[e]["median_own_ms"]):
        x = extra[engine]
        own = x["median_own_us_per_client"]
        table.add_row(NAMES.get(engine, engine), f"{x['median_wall_ms']:,.2f}", f"{x['median_train_ms']:,.2f}",
                      f"{x['median_own_ms']:,.2f}", f"{own:,.1f}",
                      f"{own - floor:,.1f}" if floor is not None and engine != "plain_loop" else "",
                      ratio(own / namu) if namu else "-")
    return table


def clients_table(rows: list[tuple[str, dict[str, Any]]]) -> Table:
    """Per engine and client count: the median round (after the first) and the time per
    client per round, less the floor's, as a ratio to namu's; and the whole timed run
    (namu and the floor: every round, the first and any garbage collection included;
    Flower: Ray's start and stop too)."""
    table = _table("Trivial client (params + peer): time per client per round, median over the rounds after the first",
                   "engine", "clients", "rounds", "round ms", "µs / client", "less floor: µs / client",
                   "× namu", "whole run s", "whole run: µs / client / round")
    per_client = {(e, b["extra_info"]["clients"]): b["extra_info"]["median_own_us_per_client"] for e, b in rows}
    floor = next((v for (e, _), v in per_client.items() if e == "plain_loop"), None)
    namu = next((v for (e, _), v in per_client.items() if e == "namu"), None)
    for engine, bench in sorted(rows, key=lambda r: (per_client[(r[0], r[1]["extra_info"]["clients"])], r[0])):
        x = bench["extra_info"]
        us = x["median_own_us_per_client"]
        whole = bench["stats"]["median"]
        table.add_row(NAMES.get(engine, engine), f"{x['clients']:,}", str(x["rounds"]), f"{x['median_wall_ms']:,.2f}",
                      f"{us:,.2f}", f"{us - floor:,.2f}" if floor is not None and engine != "plain_loop" else "",
                      ratio(us / namu) if namu else "-", f"{whole:,.3f}",
                      f"{whole / (x['rounds'] * x['clients']) * 1e6:,.2f}")
    return table


def main() -> int:
    code, data = run_suite("test_federated.py", __doc__)
    console = Console()
    digits = _rows(data, "federated_digits")
    if digits:
        console.print(accuracy_table(digits))
        console.print(round_table(digits))
    clients = _rows(data, "federated_clients")
    if clients:
        console.print(clients_table(clients))
    print(machine_line(data))
    return code


if __name__ == "__main__":
    sys.exit(main())
