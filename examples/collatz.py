"""Collatz chains: a fan-out over sub-workflows with a ``while`` loop and branches.

For every ``n`` in ``1..limit`` the sub-workflow :func:`chain` follows the Collatz map
(``n/2`` when even, ``3n+1`` when odd) down to 1, counting the steps and tracking the
highest value reached. That loop is compiled into the graph itself (an ONNX ``Loop``
whose body holds an ``If``), not hidden inside a task. The main workflow fans
:func:`chain` out over all the numbers, picks the longest chain with a task, and
classifies it with ``if``/``elif``/``else``.

Run it::

    namu run examples/collatz.py                   # limit=1000
    namu run examples/collatz.py --input limit=10000 --json

Calling the workflow's function as plain Python (``collatz.fn(100)``) gives the same
result as the compiled run: that is the contract namu keeps.
"""

from __future__ import annotations

import namu


@namu.task
def numbers(limit: int) -> list[int]:
    """``[1, 2, ..., limit]`` (empty when ``limit < 1``)."""
    return list(range(1, limit + 1))


@namu.workflow
def chain(n: int) -> tuple[int, int]:
    """Steps for ``n`` to reach 1 under the Collatz map, and the peak value reached."""
    steps = 0
    peak = n
    while n > 1:
        if n % 2 == 0:
            n = n // 2
        else:
            n = 3 * n + 1
            if n > peak:
                peak = n
        steps += 1
    return steps, peak


@namu.task
def longest(ns: list[int], chains: list) -> tuple[int, int, int, int]:
    """The number with the longest chain (the smallest such number on ties).

    Returns:
        ``(n, steps, peak, total_steps)``; all zero when ``ns`` is empty.
    """
    best_n, best_steps, best_peak = 0, 0, 0
    for n, (steps, peak) in zip(ns, chains):
        if best_n == 0 or steps > best_steps:
            best_n, best_steps, best_peak = n, steps, peak
    total = sum(steps for steps, _ in chains)
    return best_n, best_steps, best_peak, total


@namu.workflow
def collatz(limit: int = 1000) -> dict:
    """The longest Collatz chain starting at or below ``limit``, classified by its length."""
    ns = numbers(limit)
    chains = [chain(n) for n in ns]
    n, steps, peak, total = longest(ns, chains)
    if steps >= 200:
        kind = "long"
    elif steps >= 100:
        kind = "medium"
    elif steps > 0:
        kind = "short"
    else:
        kind = "trivial"
    count = len(ns)
    mean = total / count if count > 0 else 0.0
    return {"n": n, "steps": steps, "peak": peak, "kind": kind, "mean_steps": mean, "count": count}


if __name__ == "__main__":
    print(collatz(1000))
