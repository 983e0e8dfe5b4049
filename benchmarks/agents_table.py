"""Run the agent benchmarks (``benchmarks/test_agents.py``) once and print their five
tables: time per ReAct iteration without the server's share and its ratio to the floor,
measured one engine after another and in pairs with the floor;
requests per second of 1,000 concurrent runs; time and memory per agent made; cold
start wall times.

    python benchmarks/agents_table.py [-k EXPR] [--json out.json]
    python benchmarks/agents_table.py --from out.json        # print a kept run again
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
    "server": "server + loopback (bare socket, no client)",
    "floor": "floor: hand-written loop, AsyncAnthropic",
    "namu": "namu, run history off",
    "namu_history": "namu, run history on (SQLite)",
    "langgraph": "LangGraph create_react_agent",
    "pydantic_ai": "PydanticAI Agent",
    "namu_agent": "namu.agent(path)",
    "namu_compile": "namu.compile(agent)",
    "python": "python -c pass",
    "import_namu": "import namu",
    "namu_help": "namu --help",
    "namu_dry_run": "namu run agent.yaml --dry-run",
    "import_langgraph": "import langgraph.prebuilt, langchain_anthropic",
    "import_pydantic_ai": "import pydantic_ai (+ its Anthropic model)",
}


def _rows(data: dict[str, Any], group: str) -> dict[str, dict[str, Any]]:
    """The benchmarks of ``group`` by engine."""
    return {Row.of(b).engine: b for b in data["benchmarks"] if b["group"] == group}


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    return table


def iteration_table(rows: dict[str, dict[str, Any]]) -> Table:
    """µs per iteration (median run / 2), less the server's share (its own median), and
    that as a ratio to the floor's."""
    table = _table("Per ReAct iteration, one run at a time (median of 200 runs of 2 iterations)",
                   "engine", "µs / iteration", "less server: µs", "× floor")
    server = rows.get("server")
    server_us = server["stats"]["median"] / server["extra_info"]["iterations"] * 1e6 if server else 0.0
    client = {name: b["stats"]["median"] / b["extra_info"]["iterations"] * 1e6 - server_us for name, b in rows.items()}
    floor = client.get("floor")
    for name in sorted(rows, key=lambda n: client[n] if n != "server" else -1):
        wall = client[name] + server_us
        if name == "server":
            table.add_row(NAMES[name], f"{wall:,.0f}", "", "")
            continue
        table.add_row(NAMES.get(name, name), f"{wall:,.0f}", f"{client[name]:,.0f}", ratio(client[name] / floor) if floor else "-")
    return table


def paired_table(rows: dict[str, dict[str, Any]]) -> Table:
    """Per engine, the paired medians (µs per iteration) of the server exchange, the floor
    and the engine, and the engine's ratio to the floor, both less the server's share."""
    rounds = next(iter(rows.values()))["extra_info"]["rounds"]
    table = _table(f"Per ReAct iteration, paired: each of {rounds} rounds times the server exchange, "
                   "a floor run and an engine run back to back (medians)",
                   "engine", "server µs", "floor µs", "engine µs", "engine less server: µs", "× floor")
    for name in sorted(rows, key=lambda n: rows[n]["extra_info"]["medians_us"][n]):
        medians = rows[name]["extra_info"]["medians_us"]
        server, floor, engine = medians["server"], medians["floor"], medians[name]
        table.add_row(NAMES.get(name, name), f"{server:,.0f}", f"{floor:,.0f}", f"{engine:,.0f}",
                      f"{engine - server:,.0f}", ratio((engine - server) / (floor - server)))
    return table


def throughput_table(rows: dict[str, dict[str, Any]]) -> Table:
    any_row = next(iter(rows.values()), None)
    extra = any_row["extra_info"] if any_row else {"runs": 0, "cap": 0}
    table = _table(f"Throughput: {extra['runs']:,} runs of 2 iterations, at most {extra['cap']} at once (median of 3)",
                   "engine", "wall s", "requests / s", "× floor")
    rate = {name: b["extra_info"]["requests"] / b["stats"]["median"] for name, b in rows.items()}
    floor = rate.get("floor")
    for name in sorted(rows, key=lambda n: -rate[n]):
        table.add_row(NAMES.get(name, name), f"{rows[name]['stats']['median']:.2f}", f"{rate[name]:,.0f}",
                      ratio(rate[name] / floor) if floor else "-")
    return table


def instantiation_table(rows: dict[str, dict[str, Any]]) -> Table:
    table = _table("Making one agent: 1,000 after 10 warm-up; memory held per agent, 1,000 kept alive (tracemalloc)",
                   "engine", "µs / agent (median)", "µs (mean)", "KiB / agent")
    for name in sorted(rows, key=lambda n: rows[n]["stats"]["median"]):
        stats = rows[name]["stats"]
        table.add_row(NAMES.get(name, name), f"{stats['median'] * 1e6:,.0f}", f"{stats['mean'] * 1e6:,.0f}",
                      f"{rows[name]['extra_info']['kib']:,.1f}")
    return table


def cold_table(rows: dict[str, dict[str, Any]]) -> Table:
    table = _table("Cold start: wall time of a fresh process (median of 7)", "command", "ms", "less python -c pass: ms")
    base = rows["python"]["stats"]["median"] if "python" in rows else 0.0
    for name in sorted(rows, key=lambda n: rows[n]["stats"]["median"]):
        median = rows[name]["stats"]["median"]
        table.add_row(NAMES.get(name, name), f"{median * 1e3:,.0f}", "" if name == "python" else f"{(median - base) * 1e3:,.0f}")
    return table


def main() -> int:
    code, data = run_suite("test_agents.py", __doc__)
    console = Console()
    for group, render in (("agent_iteration", iteration_table), ("agent_iteration_paired", paired_table),
                          ("agent_throughput", throughput_table),
                          ("agent_instantiation", instantiation_table), ("cold_start", cold_table)):
        rows = _rows(data, group)
        if rows:
            console.print(render(rows))
    print(machine_line(data))
    return code


if __name__ == "__main__":
    sys.exit(main())
