"""Hypothesis-generated workflows: plain Python, the kernel and the reference agree.

Each example is a random DAG of statements (task calls, scalar ops, conditional
expressions, if/else, while loops, fan-outs, tasks that fail on some inputs), written as
real source into a module, compiled, and run three ways.
"""

from __future__ import annotations

import hashlib
import textwrap

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import namu
from namu.runtime.modules import import_path

PRELUDE = '''
import namu

@namu.task
def add2(a: int, b: int) -> int:
    return a + b

@namu.task
def mix(a: int, b: int) -> int:
    return (a * 31 + b) % 1009

@namu.task
def span(n: int) -> list[int]:
    return list(range(n))

@namu.task
def total(xs: list[int]) -> int:
    return sum(xs)

@namu.task
def boom(a: int) -> int:
    if a % 7 == 3:
        raise ValueError(f"boom on {a}")
    return a + 1
'''


@st.composite
def workflows(draw: st.DrawFn) -> tuple[str, int]:
    """Source of a workflow `wf(p0: int, p1: int)` and its number of statements."""
    n_stmts = draw(st.integers(min_value=1, max_value=14))
    names = ["p0", "p1"]
    lines: list[str] = []
    for i in range(n_stmts):
        def pick() -> str:
            return draw(st.sampled_from(names))

        v = f"v{i}"
        kind = draw(st.sampled_from(["task", "mix", "op", "ifexp", "if", "fanout", "while", "boom", "for"]))
        a, b, c = pick(), pick(), pick()
        if kind == "task":
            lines.append(f"{v} = add2({a}, {b})")
        elif kind == "mix":
            lines.append(f"{v} = mix({a}, b={b})")
        elif kind == "op":
            op = draw(st.sampled_from(["+", "-", "*", "%", "//"]))
            rhs = f"({b} % 97 + 1)" if op in ("%", "//") else b
            lines.append(f"{v} = ({a} {op} {rhs}) % 100003")
        elif kind == "ifexp":
            lines.append(f"{v} = {a} if {b} > {c} else add2({c}, 1)")
        elif kind == "if":
            lines.append(f"if {a} % 2 == 0:\n    {v} = add2({a}, 1)\nelse:\n    {v} = {b} * 2")
        elif kind == "fanout":
            lines.append(f"{v} = total([mix(x, {a}) for x in span({b} % 5)])")
        elif kind == "while":
            lines.append(
                f"{v} = {a}\nk{i} = 0\nwhile k{i} < {b} % 4:\n    {v} = add2({v}, k{i})\n    k{i} = k{i} + 1"
            )
        elif kind == "for":
            lines.append(f"{v} = {a}\nfor x in span({b} % 4):\n    {v} = mix({v}, x)")
        else:
            lines.append(f"{v} = boom({a})")
        names.append(v)
    outs = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3))
    ret = outs[0] if len(outs) == 1 else ", ".join(outs)
    body = "\n".join(lines) + f"\nreturn {ret}"
    source = PRELUDE + "\n\n@namu.workflow\ndef wf(p0: int, p1: int):\n" + textwrap.indent(body, "    ") + "\n"
    return source, n_stmts


def _plain(fn, *args):
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001 - compared across runs
        return ("error", type(exc).__name__)


def _compiled(art: namu.Artifact, executor: str, *args):
    try:
        return ("ok", art.run(*args, executor=executor).value)
    except namu.TaskError as exc:
        assert exc.__cause__ is not None
        return ("error", type(exc.__cause__).__name__)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(program=workflows(), p0=st.integers(-50, 50), p1=st.integers(-50, 50))
def test_random_workflow_agrees_with_plain_python(tmp_path_factory: pytest.TempPathFactory, program: tuple[str, int], p0: int, p1: int) -> None:
    source, _ = program
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    directory = tmp_path_factory.getbasetemp() / "random_workflows"
    directory.mkdir(exist_ok=True)
    path = directory / f"rwf_{digest}.py"
    if not path.exists():
        path.write_text(source)
    module = import_path(path)
    art = namu.compile(module.wf)
    onnx.checker.check_model(art.to_proto(), full_check=True)
    expected = _plain(module.wf.fn, p0, p1)
    assert _compiled(art, "reference", p0, p1) == expected
    assert _compiled(art, "kernel", p0, p1) == expected
