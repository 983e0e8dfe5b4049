"""Circuit breakers: a gate stops calling what keeps failing, for a while.

The classic three-state breaker (Michael Nygard, "Release It!", 2007; as in
resilience4j and Polly): **closed** -- calls go through, consecutive failures are
counted; after ``threshold`` of them it **opens** -- calls fail at once with
:class:`~namu.errors.CircuitOpenError` (not retried; the gate's fallback still runs);
after ``cooldown_s`` it is **half-open** -- one trial call goes through: success closes
it, failure opens it again. Breakers are process-wide, keyed by name (an LLM's gate uses
``provider/model``), so every run and every agent of a process shares what it learned.
"""

from __future__ import annotations

import threading
import time

from namu.errors import CircuitOpenError

__all__ = ["CircuitBreaker", "breaker", "reset_breakers"]


class CircuitBreaker:
    """One breaker (thread-safe).

    Args:
        key: its name (messages).
        threshold: consecutive failures that open it (>= 1).
        cooldown_s: seconds it stays open before a trial call.
    """

    def __init__(self, key: str, threshold: int, cooldown_s: float) -> None:
        self.key = key
        self.threshold = max(1, threshold)
        self.cooldown_s = cooldown_s
        self.failures = 0
        self.opened_at: float | None = None
        self._trial = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"``."""
        if self.opened_at is None:
            return "closed"
        return "half-open" if time.monotonic() - self.opened_at >= self.cooldown_s else "open"

    def before(self) -> None:
        """Ask to make a call.

        Raises:
            CircuitOpenError: the breaker is open (or half-open with its trial call out).
        """
        with self._lock:
            if self.opened_at is None:
                return
            waited_s = time.monotonic() - self.opened_at
            if waited_s >= self.cooldown_s and not self._trial:
                self._trial = True  # half-open: this call is the trial
                return
            left_s = max(0.0, self.cooldown_s - waited_s)
        raise CircuitOpenError(
            f"circuit breaker {self.key!r} is open after {self.failures} consecutive failures"
            + (f"; next trial call in {left_s:.1f} s" if left_s else "; a trial call is in flight")
        )

    def success(self) -> None:
        """The call succeeded: close the breaker."""
        with self._lock:
            self.failures = 0
            self.opened_at = None
            self._trial = False

    def failure(self) -> None:
        """The call failed: count it; open the breaker at the threshold or after a failed trial."""
        with self._lock:
            self.failures += 1
            if self._trial or self.failures >= self.threshold:
                self.opened_at = time.monotonic()
            self._trial = False


_breakers: dict[str, CircuitBreaker] = {}
_lock = threading.Lock()


def breaker(key: str, threshold: int, cooldown_s: float) -> CircuitBreaker:
    """The process-wide breaker named ``key``, made on first use with ``threshold`` and
    ``cooldown_s`` (later calls get the same breaker, whatever they pass)."""
    found = _breakers.get(key)
    if found is None:
        with _lock:
            found = _breakers.setdefault(key, CircuitBreaker(key, threshold, cooldown_s))
    return found


def reset_breakers() -> None:
    """Forget every breaker (tests, or after fixing what failed)."""
    with _lock:
        _breakers.clear()
