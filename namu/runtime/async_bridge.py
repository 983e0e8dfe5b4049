"""Run ``async def`` tasks from synchronous code on one background event loop.

The loop lives in a daemon thread started on first use, so async tasks work whether or
not the caller is itself inside a running event loop (Jupyter, an async web handler).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

__all__ = ["run_coroutine"]

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def _get_loop() -> asyncio.AbstractEventLoop:
    global _loop
    if _loop is None:
        with _lock:
            if _loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="namu-asyncio", daemon=True)
                thread.start()
                _loop = loop
    return _loop


def run_coroutine(coro: Coroutine[Any, Any, Any], timeout_s: float | None = None) -> Any:
    """Run ``coro`` to completion on the background loop and return its result.

    Args:
        coro: the coroutine to run.
        timeout_s: cancel the coroutine after this many seconds.

    Raises:
        TimeoutError: the coroutine did not finish within ``timeout_s`` (it is cancelled).
        Exception: whatever the coroutine raised.
    """
    if timeout_s is not None:
        coro = asyncio.wait_for(coro, timeout_s)
    future = asyncio.run_coroutine_threadsafe(coro, _get_loop())
    return future.result()
