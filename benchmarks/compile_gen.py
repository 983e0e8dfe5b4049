"""Generated workloads for the compile-time benchmark: the same graph for namu, onnxscript
and Hamilton, at a chosen size.

``namu_source(n)`` is a module with a few tasks and one workflow ``big(x, y)`` whose body
lowers to about ``n`` IR ops: a random DAG of task calls (pure and impure), scalar
arithmetic and comparisons, with an ``if``/``else`` every 40 statements and a fan-out
(list comprehension over a task's result) every 100. ``onnxscript_source(n)`` is an
onnxscript function of ``n`` ops over the same DAG shape (standard ops, since onnxscript
has no tasks), and ``hamilton_source(n)`` a Hamilton module of ``n`` functions.
"""

from __future__ import annotations

import random

__all__ = ["hamilton_source", "namu_source", "onnxscript_source"]

_NAMU_PRELUDE = '''
import namu

@namu.task
def inc(a: int) -> int:
    return a + 1

@namu.task(pure=True)
def mix(a: int, b: int) -> int:
    return (a * 31 + b) % 1009

@namu.task
def log(a: int) -> int:
    return a

@namu.task(pure=True)
def span(n: int) -> list[int]:
    return list(range(n % 5))

@namu.task
def total(xs: list[int]) -> int:
    return sum(xs)
'''


def _pick(rng: random.Random, names: list[str]) -> str:
    return names[-1 - min(int(rng.expovariate(0.2)), len(names) - 1)]


def namu_source(n_ops: int, seed: int = 7) -> str:
    """A module whose workflow ``big(x: int, y: int) -> int`` lowers to about ``n_ops`` ops."""
    rng = random.Random(seed)
    names = ["x", "y"]
    lines = ["@namu.workflow", "def big(x: int, y: int) -> int:"]
    ops = 0
    i = 0
    while ops < n_ops:
        v = f"v{i}"
        a, b = _pick(rng, names), _pick(rng, names)
        if i % 100 == 99:  # fan-out: span task, Map with one task inside, total task
            lines += [f"    ys{i} = [inc(k) for k in span({a})]", f"    {v} = total(ys{i})"]
            ops += 4
        elif i % 40 == 39:  # branch: comparison, If, one task per branch
            lines += [f"    if {a} > {b}:", f"        {v} = inc({a})", "    else:", f"        {v} = mix({a}, {b})"]
            ops += 4
        else:
            kind = rng.random()
            if kind < 0.35:
                lines.append(f"    {v} = mix({a}, {b})")
            elif kind < 0.6:
                lines.append(f"    {v} = inc({a})")
            elif kind < 0.7:
                lines.append(f"    {v} = log({a})")
            elif kind < 0.9:
                lines.append(f"    {v} = {a} + {b}")
            else:
                lines.append(f"    {v} = {a} - {b}")
            ops += 1
        names.append(v)
        i += 1
    lines.append(f"    return {names[-1]}")
    return _NAMU_PRELUDE + "\n\n" + "\n".join(lines) + "\n"


def onnxscript_source(n_ops: int, seed: int = 7) -> str:
    """An onnxscript module with ``big(x, y)``: ``n_ops`` standard ops over the same DAG shape."""
    rng = random.Random(seed)
    names = ["x", "y"]
    lines = [
        "from onnxscript import script, opset18 as op, INT64",
        "",
        "@script()",
        "def big(x: INT64, y: INT64) -> INT64:",
    ]
    for i in range(n_ops):
        v = f"v{i}"
        a, b = _pick(rng, names), _pick(rng, names)
        kind = rng.random()
        call = "op.Add" if kind < 0.4 else "op.Mul" if kind < 0.7 else "op.Sub" if kind < 0.9 else "op.Max"
        lines.append(f"    {v} = {call}({a}, {b})")
        names.append(v)
    lines.append(f"    return {names[-1]}")
    return "\n".join(lines) + "\n"


def hamilton_source(n_ops: int, seed: int = 7) -> str:
    """A Hamilton module: one function (node) per op over the same DAG shape."""
    rng = random.Random(seed)
    names = ["x", "y"]
    lines: list[str] = []
    for i in range(n_ops):
        v = f"v{i}"
        a, b = _pick(rng, names), _pick(rng, names)
        params = f"{a}: int" if a == b else f"{a}: int, {b}: int"
        lines.append(f"def {v}({params}) -> int:\n    return {a} + {b}\n")
        names.append(v)
    return "\n".join(lines)
