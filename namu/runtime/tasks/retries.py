"""Retries and timeouts: the attempts of one call, synchronous or async.

Shared by task calls (:mod:`~namu.runtime.tasks.sync_calls`,
:mod:`~namu.runtime.tasks.async_calls`) and by :func:`guarded`, which puts ops other
than tasks under a ``namu.Gate``'s policy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import dataclasses
import functools
import random
import threading
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from namu.errors import CircuitOpenError

if TYPE_CHECKING:
    from namu.runtime.tasks.breakers import CircuitBreaker

__all__ = [
    "RETRY_BASE_DELAY_S",
    "RETRY_MAX_DELAY_S",
    "RetryPolicy",
    "guarded",
    "retry_delay_s",
    "retrying",
    "retrying_async",
]

#: upper bound of the first retry's delay, in seconds; it doubles with each retry ...
RETRY_BASE_DELAY_S = 0.01
#: ... up to this cap, in seconds.
RETRY_MAX_DELAY_S = 1.0

_rng = random.Random()


def retry_delay_s(
    attempt: int,
    rng: random.Random = _rng,
    *,
    base_s: float = RETRY_BASE_DELAY_S,
    max_s: float = RETRY_MAX_DELAY_S,
) -> float:
    """How long to wait before retry number ``attempt`` (0 for the first retry), in seconds.

    Exponential backoff with "full jitter" (Marc Brooker, "Exponential Backoff And
    Jitter", AWS Architecture Blog, 2015): a uniform draw in
    ``[0, min(max_s, base_s * 2**attempt)]``, so callers that failed together do not
    retry in lockstep.

    Args:
        attempt: the number of retries already made (>= 0).
        rng: the random source (a seeded ``random.Random`` makes delays reproducible).
        base_s: upper bound of the first retry's delay (a gate's ``backoff_base_s``).
        max_s: cap of every delay (a gate's ``backoff_max_s``).

    Returns:
        The delay in seconds.
    """
    ceiling_s = min(max_s, base_s * 2.0 ** min(attempt, 64))
    return rng.uniform(0.0, ceiling_s)


def _timed_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout_s: float) -> Any:
    """``fn(*args, **kwargs)`` in a daemon thread, waited for at most ``timeout_s`` seconds.

    A Python thread cannot be killed: on timeout the call is abandoned (it goes on in the
    background and its result is dropped) and ``TimeoutError`` is raised at once. The
    thread is a daemon, so an abandoned call never keeps the process from exiting
    (``mode="process"`` tasks get a hard timeout instead: their worker process is
    killed). The call runs in a copy of the caller's context: it still sees the run
    (journal, caches, the wire of a partitioned run).
    """
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    context = contextvars.copy_context()

    def attempt() -> None:
        try:
            result = context.run(fn, *args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=attempt, name="namu-timeout", daemon=True).start()
    try:
        return future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        if not future.done():
            raise TimeoutError(f"timed out after {timeout_s} s") from None
        return future.result()  # it finished as the wait ended (or raised TimeoutError itself)


#: ``on_retry(attempt, error, delay_s)``: attempt ``attempt`` (0-based) failed with
#: ``error``; the next one starts in ``delay_s`` seconds.
OnRetry = Callable[[int, Exception, float], None]


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one call is attempted.

    Attributes:
        retries: attempts after the first failing one.
        timeout_s: the limit of one attempt in seconds, or None.
        base_s, max_s: the backoff (:func:`retry_delay_s`).
        on_retry: told of each failed attempt that another follows, or None.
        breaker: the circuit breaker every attempt asks first and reports to, or None.

    An error whose ``retryable`` attribute is False (a refused LLM request, an open
    circuit breaker, an agent's limit) is not retried; one with a ``retry_after_s``
    attribute (a rate limit's ``retry-after``) waits at least that long.
    """

    retries: int = 0
    timeout_s: float | None = None
    base_s: float = RETRY_BASE_DELAY_S
    max_s: float = RETRY_MAX_DELAY_S
    on_retry: OnRetry | None = None
    breaker: CircuitBreaker | None = None

    def failed(self, attempt: int, error: Exception) -> bool:
        """Attempt ``attempt`` (0-based) failed with ``error``: tell the breaker (unless it
        refused the call itself), and say whether that was the last attempt (retries are
        spent, or the error says a retry cannot help)."""
        if self.breaker is not None and not isinstance(error, CircuitOpenError):
            self.breaker.failure()
        return attempt >= self.retries or getattr(error, "retryable", True) is False

    def wait_s(self, attempt: int, error: Exception) -> float:
        """The wait after failed attempt ``attempt`` (0-based, not the last), told to ``on_retry``."""
        delay_s = retry_delay_s(attempt, base_s=self.base_s, max_s=self.max_s)
        asked_s = getattr(error, "retry_after_s", None)
        if isinstance(asked_s, (int, float)) and asked_s > delay_s:
            delay_s = float(asked_s)
        if self.on_retry is not None:
            self.on_retry(attempt, error, delay_s)
        return delay_s


def retrying(fn: Callable[..., Any], policy: RetryPolicy) -> Callable[[tuple[Any, ...], dict[str, Any]], Any]:
    """``invoke(args, kwargs)``: call ``fn`` up to ``1 + policy.retries`` times, each attempt
    under ``policy.timeout_s``, waiting :meth:`RetryPolicy.wait_s` between attempts; the
    last error propagates."""
    timeout_s, breaker = policy.timeout_s, policy.breaker

    def invoke(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        attempt = 0
        while True:
            try:
                if breaker is not None:
                    breaker.before()
                result = _timed_call(fn, args, kwargs, timeout_s) if timeout_s is not None else fn(*args, **kwargs)
            except Exception as exc:
                if policy.failed(attempt, exc):
                    raise
                time.sleep(policy.wait_s(attempt, exc))
                attempt += 1
            else:
                if breaker is not None:
                    breaker.success()
                return result

    return invoke


def retrying_async(fn: Callable[..., Any], policy: RetryPolicy) -> Callable[..., Coroutine[Any, Any, Any]]:
    """As :func:`retrying` for a function returning awaitables: each attempt runs under
    ``asyncio.timeout`` (so it is really cancelled) and the waits are ``asyncio.sleep``."""
    timeout_s, breaker = policy.timeout_s, policy.breaker

    async def attempt(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        awaitable = fn(*args, **kwargs)
        if timeout_s is None:
            return await awaitable
        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline:
                return await awaitable
        except TimeoutError:
            if deadline.expired():  # ours, not one the call raised itself
                raise TimeoutError(f"timed out after {timeout_s} s") from None
            raise

    async def invoke(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        done = 0
        while True:
            try:
                if breaker is not None:
                    breaker.before()
                result = await attempt(args, kwargs)
            except Exception as exc:
                if policy.failed(done, exc):
                    raise
                await asyncio.sleep(policy.wait_s(done, exc))
                done += 1
            else:
                if breaker is not None:
                    breaker.success()
                return result

    return invoke


def guarded(
    fn: Callable[..., Any],
    *,
    retries: int = 0,
    timeout_s: float | None = None,
    backoff_base_s: float = RETRY_BASE_DELAY_S,
    backoff_max_s: float = RETRY_MAX_DELAY_S,
    is_async: bool = False,
    breaker: CircuitBreaker | None = None,
) -> Callable[..., Any]:
    """An op's callable under a ``namu.Gate``'s policy (gates around ops other than tasks,
    such as a ``namu.Recv`` under ``CompileConfig.wire_timeout_s``).

    Args:
        fn: ``fn(*inputs)``; with ``is_async``, a function returning an awaitable.
        retries, timeout_s, backoff_base_s, backoff_max_s: the gate's policy; a timed-out
            synchronous attempt is abandoned in its thread, an async one cancelled.
        breaker: the circuit breaker each attempt asks first, or None.
        is_async: ``fn`` returns awaitables; so does the result. Each attempt's awaitable
            is made in the context ``call`` was called in, as without the gate (the op
            may read it: the run's wire, for a receive).

    Returns:
        ``call(*inputs)``, raising the op's last error (``TimeoutError`` on a timeout).
    """
    policy = RetryPolicy(retries, timeout_s, backoff_base_s, backoff_max_s, breaker=breaker)
    if is_async:

        def call_async(*inputs: Any) -> Coroutine[Any, Any, Any]:
            context = contextvars.copy_context()
            invoke_async = retrying_async(functools.partial(context.run, fn), policy)
            return invoke_async(inputs, {})

        return call_async
    invoke = retrying(fn, policy)
    return lambda *inputs: invoke(inputs, {})
