"""Functions the python tool tests name as targets (``tests.agents.python_tools:NAME`` or
``python_tools.py:NAME`` from this directory)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import Literal

from pydantic import BaseModel

import namu


class Point(BaseModel):
    x: int
    y: int


@dataclasses.dataclass
class Forecast:
    city: str
    degrees: float


@namu.tool
def weather(city: str, units: Literal["C", "F"] = "C", days: int = 1) -> Forecast:
    """The weather forecast for a city.

    Uses no network: the answer is made up.

    Args:
        city: the city's name,
            e.g. "Lisbon".
        units (str): the temperature scale.
        days: how many days ahead.

    Returns:
        The forecast.
    """
    return Forecast(city, 21.5 if units == "C" else 70.7)


@namu.tool(name="distance", description="Distance between two points.", timeout_s=5)
async def distance_between(a: Point, b: Point, /) -> float:
    await asyncio.sleep(0)
    return ((a.x - b.x) ** 2 + (a.y - b.y) ** 2) ** 0.5


def plain(words: list[str], separator: str | None = None) -> str:
    """Join words (a function without @namu.tool)."""
    return (separator or " ").join(words)


def thread_name() -> str:
    """The name of the thread the call runs in."""
    return threading.current_thread().name


def nothing() -> None:
    """Return nothing."""


def broken(n: int) -> int:
    """Fail, as real code does."""
    raise RuntimeError(f"broken with {n}")


NOT_A_FUNCTION = 42
