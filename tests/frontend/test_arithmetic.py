"""Arithmetic and comparison operators mean exactly Python's operators.

For every pair of operand annotations (``int``, ``float``, ``bool``) and every value
those annotations accept (an ``int`` or a ``bool`` where ``float`` is annotated, a
``bool`` where ``int`` is; ints of any size, every float), each of ``+ - * / // % **``,
the comparisons and unary ``-``/``+`` must give Python's value, of Python's type, or
raise Python's exception type (``ZeroDivisionError``, ``OverflowError``), when the
workflow is compiled at ``-O0`` and at ``-O2`` and run on both executors. On literal
operands the same holds for what ``fold-constants`` computes at compile time.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import namu
from tests.frontend.wf_samples import OPT_LEVELS, assert_python_meaning
from tests.frontend.wf_samples import identical as same
from tests.frontend.wf_samples import import_source as _import

#: (the expression, with operands ``a`` and ``b``); the workflow's ``op`` picks one.
EXPRESSIONS = (
    "a + b", "a - b", "a * b", "a / b", "a // b", "a % b", "a ** b",
    "a == b", "a != b", "a < b", "a <= b", "a > b", "a >= b",
    "-a", "+a", "a ** 2", "a ** -2", "2 ** b", "a * 2.5 - b",
)
TYPES = ("int", "float", "bool")

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

special_ints = st.sampled_from([0, 1, -1, 2, 7, 2**53 + 1, 2**63, -(2**63) - 1, 63050394783186951, 10**399, 10**400, -(10**400)])
ints = st.one_of(st.integers(-100, 100), st.integers(), special_ints, st.integers(-(10**420), 10**420))
floats = st.one_of(st.floats(), st.sampled_from([0.0, -0.0, 0.5, -2.5, 1e308, 2.0**53]))
#: the values each annotation accepts (PEP 484's numeric tower: unchanged)
VALUES = {
    "bool": st.booleans(),
    "int": st.one_of(ints, st.booleans()),
    "float": st.one_of(floats, ints, st.booleans()),
}


def _module_source() -> str:
    lines = ["import namu", ""]
    for left, right in itertools.product(TYPES, TYPES):
        lines += ["@namu.workflow", f"def wf_{left}_{right}(op: int, a: {left}, b: {right}):"]
        for i, expression in enumerate(EXPRESSIONS):
            lines += [f"    {'if' if i == 0 else 'elif'} op == {i}:", f"        return {expression}"]
        lines += ["    return None", ""]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], tuple[namu.Workflow, list[namu.Artifact]]]:
    """Per operand annotations: the workflow, and its artifacts at -O0 and -O2."""
    module = _import(tmp_path_factory.mktemp("arith") / "namu_arith_samples.py", _module_source())
    result = {}
    for left, right in itertools.product(TYPES, TYPES):
        wf = getattr(module, f"wf_{left}_{right}")
        result[left, right] = (wf, [namu.compile(wf, opt_level=level) for level in OPT_LEVELS])
    return result


def too_big(expression: str, a: Any, b: Any) -> bool:
    """``a ** b`` whose value has millions of digits: plain Python would take ages too."""
    if "**" not in expression:
        return False
    base, exponent = (a, b) if "a ** b" in expression else (2, b) if "2 ** b" in expression else (a, 2)
    if isinstance(base, float) or isinstance(exponent, float):
        return False
    return abs(exponent) > 64 and abs(base) > 1


@pytest.mark.parametrize(("left", "right"), list(itertools.product(TYPES, TYPES)))
@SETTINGS
@given(data=st.data(), op=st.integers(0, len(EXPRESSIONS) - 1))
def test_operators_mean_python_operators(compiled: dict, left: str, right: str, data: st.DataObject, op: int) -> None:
    a = data.draw(VALUES[left], label="a")
    b = data.draw(VALUES[right], label="b")
    assume(not too_big(EXPRESSIONS[op], a, b))
    wf, artifacts = compiled[left, right]
    assert_python_meaning(artifacts, wf, op, a, b)


@pytest.mark.parametrize(
    ("expression", "a", "b", "expected"),
    [
        ("a / b", 63050394783186951, 7, 9007199254740992.0),  # not float(a) / 7
        ("a / b", 10**400, 10**399, 10.0),  # no OverflowError: int / int is exact
        ("a / b", 10**400, 3, OverflowError),
        ("a / b", 1, 0, ZeroDivisionError),
        ("a // b", 10**400 + 1, 10**399, 10),
        ("a % b", -7, 2, 1),
        ("a ** b", 2, -2, 0.25),
        ("a ** b", 0, -1, ZeroDivisionError),
        ("a ** b", 2, 100, 2**100),
        ("a * 2.5 - b", 10**400, 0, OverflowError),
        ("a == b", 2**53 + 1, 2**53, False),
    ],
)
def test_known_answers(compiled: dict, expression: str, a: Any, b: Any, expected: Any) -> None:
    wf, artifacts = compiled["int", "int"]
    kind, value = assert_python_meaning(artifacts, wf, EXPRESSIONS.index(expression), a, b)
    if isinstance(expected, type):
        assert (kind, value) == ("raises", expected)
    else:
        assert (kind, same(value, expected)) == ("value", True)


# ------------------------------------------------------------------ literal operands: folded
literal_ints = st.one_of(st.integers(-100, 100), st.integers(-(2**63) + 1, 2**63 - 1))
literal_floats = st.floats(allow_nan=False, allow_infinity=False)
literals = st.one_of(literal_ints, literal_floats, st.booleans())
_counter = itertools.count()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(op=st.sampled_from(EXPRESSIONS), a=literals, b=literals)
def test_folded_literals_mean_python_operators(tmp_path: Path, op: str, a: Any, b: Any) -> None:
    """``fold-constants`` (at -O2) computes what Python computes, or leaves the op to raise."""
    assume(not too_big(op, a, b))
    expression = re.sub(r"\b[ab]\b", lambda m: f"({a!r})" if m.group() == "a" else f"({b!r})", op)
    name = f"namu_folded_{next(_counter)}"
    module = _import(tmp_path / f"{name}.py", f"import namu\n\n@namu.workflow\ndef wf():\n    return {expression}\n")
    artifacts = [namu.compile(module.wf, opt_level=level) for level in OPT_LEVELS]
    assert_python_meaning(artifacts, module.wf)


def _ops(art: namu.Artifact) -> list[str]:
    return [f"{node.domain}::{node.op_type}" if node.domain else node.op_type for node in art.model.graph]


def test_two_to_the_minus_one_folds_to_a_half() -> None:
    @namu.workflow
    def half(a: int, b: int) -> float:
        return a**b + 2**-1

    assert math.isclose(half(a=2, b=-2), 0.75)
    assert half(a=2, b=-2) == half.fn(a=2, b=-2) == 0.75
    assert same(half(a=2, b=2), 4.5)
    art = namu.compile(half, opt_level=2)
    constants = [node for node in art.model.graph if node.op_type == "Constant"]
    assert any(node.attributes["value"].as_tensor().numpy().item() == 0.5 for node in constants)
    pows = [node for node in art.model.graph if node.op_type == "Arith" and node.attributes["op"].as_string() == "pow"]
    assert len(pows) == 1  # a ** b only; 2 ** -1 is the constant 0.5


def test_int_pow_types() -> None:
    """``int ** int`` is a float for a negative constant exponent, else an int; either
    passes to a ``float`` task parameter."""

    @namu.task
    def half_of(x: float) -> float:
        return x / 2

    @namu.workflow
    def powers(a: int, b: int):
        return half_of(a**b), a**2, a**-1

    assert same(powers(a=3, b=2), (4.5, 9, 1 / 3))
    assert same(powers(a=2, b=-1), (0.25, 4, 0.5))


def test_a_power_with_a_run_time_exponent_stays_a_loop_carried_int(executor: str) -> None:
    @namu.workflow
    def bits(n: int, e: int) -> float:
        total = 0
        i = 0
        while i < n:
            total = total + 2**i
            i = i + 1
        return total + 2**e

    for n, e in [(10, 3), (70, -2)]:
        expected = bits.fn(n, e)
        value = bits.run(n, e, executor=executor).value
        assert value == expected and type(value) is type(expected)
