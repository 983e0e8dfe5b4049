"""Single flight: a cached call made while an equal one runs waits for its result."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from namu.runtime.cache import CachedResult

__all__ = ["ASYNC_FLIGHTS", "THREAD_FLIGHTS", "Flights", "landed"]


class Flights:
    """Calls of cached tasks in flight, by key ("single flight", as Go's singleflight
    package or an HTTP cache's request collapsing): a call with equal arguments made
    while the first is still running waits for its result instead of running the task
    again. The first call *lands* its flight with the :class:`CachedResult` the cache
    kept, and each waiting call gets its own copy of it (as from a cache hit); or with
    None when it failed (or its result could not be stored), and each waiting call then
    runs the task itself. Entries live only while their call runs.
    """

    def __init__(self) -> None:
        self._calls: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def lead_or_join(self, key: Any, new_future: Callable[[], Any]) -> tuple[Any, tuple[Any, Any] | None]:
        """``(first, None)``: the future of an equal call in flight, to wait on; or
        ``(None, flight)``: this call leads, runs the task and lands ``flight``."""
        with self._lock:
            first = self._calls.get(key)
            if first is not None:
                return first, None
            future = self._calls[key] = new_future()
        return None, (key, future)

    def land(self, flight: tuple[Any, Any] | None, landed: CachedResult | None) -> None:
        """End a flight: waiting calls get the kept result, or None to run themselves."""
        if flight is not None:
            key, future = flight
            with self._lock:
                del self._calls[key]
            future.set_result(landed)


def landed(kept: CachedResult | None) -> tuple[bool, Any]:
    """``(True, a copy of the result)`` from a flight the first call landed with its
    result, else ``(False, None)``: it failed, so this call runs the task itself."""
    return (True, kept.copy()) if kept is not None else (False, None)


#: synchronous calls (thread mode, concurrent runs), by result key.
THREAD_FLIGHTS = Flights()
#: async calls, by (event loop, result key): a future belongs to one loop.
ASYNC_FLIGHTS = Flights()
