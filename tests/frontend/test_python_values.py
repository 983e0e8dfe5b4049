"""Operators, slices, builtins and methods on every kind of value mean what Python says.

For operands annotated ``str``, ``list``, ``tuple``, ``dict``, ``int``, ``float``,
``bool`` or nothing at all (so the compiler cannot know their type), and values hypothesis draws
for them (text, big ints, floats with nan and inf, nested lists and dicts), each
expression must give Python's value, of Python's type, or raise Python's exception type
(``"a" < 1`` raises ``TypeError`` when the run gets there, ``1 == "1"`` is False),
compiled at ``-O0`` and ``-O2`` and run on both executors.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import namu
from tests.frontend.wf_samples import (
    AVAILABLE_EXECUTORS,
    OPT_LEVELS,
    assert_python_meaning,
    identical,
    outcome,
)
from tests.frontend.wf_samples import import_source as _import

#: expressions of operands ``a`` and ``b``; the workflow's ``op`` picks one
EXPRESSIONS = (
    "a + b", "a * 2", "2 * a", "a * b", "a % b", "a & b", "a | b", "a ^ b", "a << 2", "-a", "~a",
    "a == b", "a != b", "a < b", "a <= b", "a > b", "a >= b", "a in b", "a not in b",
    "a and b", "a or b", "not a", "a or b or 7", "a and not b",
    "a[1:]", "a[:-1]", "a[::-1]", "a[::2]", "a[1:3:1]", "a[b:]",
    "len(a)", "bool(a)", "str(a)", "sorted(a)", "list(a)", "tuple(a)", "min(a)", "max(a)", "sum(a)",
    "abs(a)", "round(a)", "any(a)", "all(a)", "int(a)", "float(a)", "set(a) == set(b)",
    "isinstance(a, str)", "isinstance(a, (int, float))", "isinstance(a, (list, tuple))",
    "a.upper()", "a.split()", "a.strip()", "','.join(a)", "a.get('k')", "a.count(b)", "a.startswith(b)",
    "'%s|%r' % (a, b)", "'{}-{}'.format(a, b)", "f'{a}{b!r}'",
    "[x for x in a]", "[i for i in range(len(a))]", "[(i, x) for i, x in enumerate(a)]",
    "[x for x, _ in zip(a, a)]", "{a, 1}",
)
TYPES = ("str", "list", "tuple", "dict", "int", "float", "bool", "any")
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.text(max_size=6)
ints = st.one_of(st.integers(-5, 5), st.integers(), st.sampled_from([2**63, -(2**63) - 1, 10**40]))
floats = st.one_of(st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.5]))
scalars = st.one_of(texts, ints, floats, st.booleans(), st.none())
nested = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)), max_leaves=6)
#: the values each annotation accepts; unannotated operands take anything
VALUES = {
    "str": texts,
    "list": st.lists(st.one_of(ints, texts, floats), max_size=4),
    "tuple": st.lists(st.one_of(ints, texts), max_size=4).map(tuple),
    "dict": st.dictionaries(st.sampled_from(["k", "j", "x"]), ints, max_size=3),
    "int": ints,
    "float": floats,
    "bool": st.booleans(),
    "any": nested,
}
#: expressions the compiler refuses for an operand type (a located error, not a run-time one)
STATIC_ERRORS = {"int": ("[x for x in a]",), "float": ("[x for x in a]",), "bool": ("[x for x in a]",)}
#: expressions per workflow (an if/elif ladder nests one level per expression)
GROUP = 16


def _module_source() -> str:
    lines = ["import namu", ""]
    for left, right in itertools.product(TYPES, TYPES):
        a = "" if left == "any" else f": {left}"
        b = "" if right == "any" else f": {right}"
        for start in range(0, len(EXPRESSIONS), GROUP):
            lines += ["@namu.workflow", f"def wf_{left}_{right}_{start // GROUP}(op: int, a{a}, b{b}):"]
            for i, expression in enumerate(EXPRESSIONS[start : start + GROUP]):
                if expression in STATIC_ERRORS.get(left, ()):
                    expression = "None"
                lines += [f"    {'if' if i == 0 else 'elif'} op == {start + i}:", f"        return {expression}"]
            lines += ["    return None", ""]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, int], tuple[namu.Workflow, list[namu.Artifact]]]:
    """Per operand annotations and group of expressions: the workflow, and its artifacts
    at -O0 and -O2."""
    module = _import(tmp_path_factory.mktemp("values") / "namu_value_samples.py", _module_source())
    return {
        (left, right, group): (wf, [namu.compile(wf, opt_level=level) for level in OPT_LEVELS])
        for left, right in itertools.product(TYPES, TYPES)
        for group in range(math.ceil(len(EXPRESSIONS) / GROUP))
        for wf in [getattr(module, f"wf_{left}_{right}_{group}")]
    }


def _workflow(compiled: dict, left: str, right: str, op: int) -> tuple[namu.Workflow, list[namu.Artifact]]:
    return compiled[left, right, op // GROUP]


@pytest.mark.parametrize(("left", "right"), list(itertools.product(TYPES, TYPES)))
@SETTINGS
@given(data=st.data(), op=st.integers(0, len(EXPRESSIONS) - 1))
def test_expressions_mean_python(compiled: dict, left: str, right: str, data: st.DataObject, op: int) -> None:
    a = data.draw(VALUES[left], label="a")
    b = data.draw(VALUES[right], label="b")
    wf, artifacts = _workflow(compiled, left, right, op)
    assert_python_meaning(artifacts, wf, op, a, b)


@pytest.mark.parametrize(
    ("left", "right", "expression", "a", "b", "expected"),
    [
        ("int", "str", "a == b", 1, "1", False),
        ("str", "int", "a < b", "a", 1, TypeError),
        ("str", "str", "a < b", "apple", "banana", True),
        ("list", "list", "a + b", [1], ["x"], [1, "x"]),
        ("str", "tuple", "a % b", "%s=%d", ("n", 3), "n=3"),  # a tuple right operand: its items are the arguments
        ("str", "int", "a % b", "%s=%s", 3, TypeError),  # not enough arguments for format string
        ("str", "str", "'%s|%r' % (a, b)", "x", "y", "x|'y'"),
        ("int", "int", "a and b", 0, 5, 0),
        ("int", "int", "a or b", 0, 5, 5),
        ("str", "int", "a[b:]", "namu", 2, "mu"),
        ("str", "str", "a[::-1]", "namu", "", "uman"),
        ("list", "list", "sum(a)", [1, 2.5], [], 3.5),
        ("dict", "str", "a.get('k')", {"j": 1}, "", None),
        ("str", "str", "a.split()", " a  b ", "", ["a", "b"]),
        ("tuple", "int", "a.count(b)", (1, 2, 1), 1, 2),
        ("int", "int", "~a", 5, 0, -6),
        ("int", "int", "a << 2", 2**62, 0, 2**64),  # no 64-bit overflow
        ("float", "float", "a == b", math.nan, math.nan, False),
    ],
)
def test_known_answers(compiled: dict, left: str, right: str, expression: str, a: Any, b: Any, expected: Any) -> None:
    op = EXPRESSIONS.index(expression)
    wf, artifacts = _workflow(compiled, left, right, op)
    kind, value = assert_python_meaning(artifacts, wf, op, a, b)
    if isinstance(expected, type):
        assert (kind, value) == ("raises", expected)
    else:
        assert (kind, identical(value, expected)) == ("value", True)


def test_and_or_evaluate_their_right_side_only_when_python_does(tmp_path: Path) -> None:
    calls: list[int] = []
    module = _import(
        tmp_path / "namu_lazy_samples.py",
        "import namu\n\nCALLS = []\n\n@namu.task\ndef seen(x: int) -> int:\n    CALLS.append(x)\n    return x\n\n"
        "@namu.workflow\ndef wf(a: str, n: int):\n    return a and seen(n), a or seen(n + 1)\n",
    )
    for executor in AVAILABLE_EXECUTORS:
        module.CALLS.clear()
        assert module.wf.compile().run("", 1, executor=executor).value == ("", 2)
        assert module.CALLS == [2]
        module.CALLS.clear()
        assert module.wf.compile().run("x", 1, executor=executor).value == (1, "x")
        assert module.CALLS == [1]
    assert calls == []


def test_methods_and_builtins_are_ops_in_the_ir(tmp_path: Path) -> None:
    module = _import(
        tmp_path / "namu_ir_samples.py",
        "import namu\n\n@namu.workflow\ndef wf(s: str, xs: list[int]):\n"
        "    return s.strip().split(','), sorted(xs, reverse=True), xs[::-1], isinstance(s, str)\n",
    )
    art = namu.compile(module.wf)
    ops = {(n.op_type, n.attributes["name"].as_string() if "name" in n.attributes else "") for n in art.model.graph}
    assert {("CallMethod", "strip"), ("CallMethod", "split"), ("Builtin", "sorted"), ("Slice", ""), ("IsInstance", "")} <= ops
    assert art(" a,b ", [1, 3, 2]) == (["a", "b"], [3, 2, 1], [2, 3, 1], True)


def test_loop_variables_may_change_type(tmp_path: Path) -> None:
    """A loop-carried variable takes the join of its types (the loop's phi), as Python's
    variable holds whichever value came last: an int before the first iteration, a
    float after."""
    module = _import(
        tmp_path / "namu_phi_samples.py",
        "import namu\n\n@namu.workflow\ndef halves(n: int):\n    x = 0\n    while x < n:\n        x = x + 0.5\n    return x\n\n"
        "@namu.workflow\ndef joined(d: dict):\n    acc = ''\n    for k, v in sorted(d.items()):\n        acc = acc + k + str(v)\n    return acc\n",
    )
    for n in (0, 2, -1):
        assert_python_meaning([namu.compile(module.halves, opt_level=level) for level in OPT_LEVELS], module.halves, n)
    for d in ({}, {"b": 2, "a": 1}):
        assert_python_meaning([namu.compile(module.joined, opt_level=level) for level in OPT_LEVELS], module.joined, d)


COMPREHENSIONS = '''
import namu

CALLS = []


@namu.task
def sq(x: int) -> int:
    CALLS.append(x)
    return x * x


@namu.workflow
def comprehensions(xs: list[int], words: list[str]):
    return (
        sum(sq(x) for x in xs),
        {x % 3 for x in xs},
        {w: len(w) for w in words if w},
        {k: v for k, v in zip(words, xs)},
        max((len(w) for w in words), default=-1),
        ", ".join(w.upper() for w in words),
        sorted(x for x in xs if x % 2),
        {(a, b) for a in xs for b in words if a > 1},
        any(x > 2 for x in xs),
    )


@namu.workflow
def walrus(xs: list[int], x: int):
    if (n := len(xs)) > 2:
        y = n * 2
    else:
        y = (m := sq(x)) + m
    total = 0
    for v in xs:
        total = total + (w := v * 2) + w
    return y, n, total, (z := x + 1) * z, [n := n + 1, n]


@namu.workflow
def conditional_walrus(xs: list[int], x: int):
    """:= where it may not run: the name keeps its old value (None if it had none) there."""
    y, t = -1, None
    r = x > 0 and (y := sq(x)) > 3
    s = x or (t := x + 1)
    v = (w := sq(x)) if x % 2 else (w := x - 1)
    k = 0
    ok = x < len(xs) < (k := sq(len(xs)))
    out = []
    while (item := xs[0] if xs else None) is not None:
        out = out + [sq(item)]
        xs = xs[1:]
    return r, y, s, t, v, w, ok, k, out, item


@namu.workflow
def comprehension_walrus(xs: list[int], x: int):
    """:= in a comprehension binds in the function, from the last item that ran it."""
    y = None
    kept = [y for v in xs if (y := sq(v) - x) > 0]
    z = None
    firsts = {v % 3: (z := v) for v in xs}
    return kept, y, firsts, z
'''


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(xs=st.lists(st.integers(-3, 9), max_size=5), words=st.lists(st.sampled_from(["", "a", "bb", "ccc"]), max_size=4), x=ints)
def test_comprehensions_and_assignment_expressions_mean_python(tmp_path_factory: pytest.TempPathFactory, xs: list[int], words: list[str], x: int) -> None:
    """Set and dict comprehensions, generator expressions passed to builtins and methods,
    nested generators, and ``:=``: Python's value, compiled at -O0 and -O2, both
    executors."""
    module = _compiled_module(tmp_path_factory)
    assert_python_meaning(module.artifacts["comprehensions"], module.comprehensions, xs, words)
    assert_python_meaning(module.artifacts["walrus"], module.walrus, xs, x)
    assert_python_meaning(module.artifacts["conditional_walrus"], module.conditional_walrus, xs, x)
    assert_python_meaning(module.artifacts["comprehension_walrus"], module.comprehension_walrus, xs, x)


_MODULES: dict[str, Any] = {}


def _compiled_module(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The module of :data:`COMPREHENSIONS`, its workflows compiled once per session."""
    if "module" not in _MODULES:
        module = _import(tmp_path_factory.mktemp("comprehensions") / "namu_comprehension_samples.py", COMPREHENSIONS)
        module.artifacts = {
            name: [namu.compile(getattr(module, name), opt_level=level) for level in OPT_LEVELS] for name in ("comprehensions", "walrus", "conditional_walrus", "comprehension_walrus")
        }
        _MODULES["module"] = module
    return _MODULES["module"]


def test_a_generator_expression_fans_out() -> None:
    """``sum(f(x) for x in xs)`` is a ``namu.Map`` then ``namu.Builtin``, a dict
    comprehension builds its dict after the Map."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        module = _import(Path(scratch) / "namu_fanout_sum_samples.py", COMPREHENSIONS)
        ops = [n.op_type for n in namu.compile(module.comprehensions).model.graph]
    assert ops.count("Map") >= 8 and "Builtin" in ops


def test_literal_constants_of_modules_and_classes_fold_in(tmp_path: Path) -> None:
    """``math.pi``, ``Config.NAME.upper()``, ``SEP.join(xs)``: literal constants reached
    through module-level names are constants of the IR, read again when they change."""
    module = _import(tmp_path / "namu_module_constants.py", """
import math

import namu

SEP = ", "


class Config:
    RETRIES = 3
    NAME = "cfg"


@namu.workflow
def consts(x: float, xs: list[str]):
    return x * math.pi, Config.RETRIES + 1, Config.NAME.upper(), math.inf > x, SEP.join(xs)
""")
    assert module.consts(2.0, ["a", "b"]) == module.consts.fn(2.0, ["a", "b"]) == (2.0 * math.pi, 4, "CFG", True, "a, b")
    module.Config.RETRIES = 10
    assert module.consts(2.0, [])[1] == 11  # the compile read Config.RETRIES: it is stale now


SHORT_CIRCUIT = '''
import namu

CALLS = []


@namu.task
def check(x: int) -> bool:
    CALLS.append(x)
    if x < 0:
        raise ValueError(x)
    return x > 2


@namu.workflow
def scan(xs: list[int]):
    found = any(check(x) for x in xs)
    if all(check(x) for x in xs if x != 0):
        return found, "all"
    return found, any(x > 100 for x in xs)
'''


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(xs=st.lists(st.integers(-1, 5), max_size=6))
def test_any_and_all_stop_at_the_first_decisive_item(tmp_path_factory: pytest.TempPathFactory, xs: list[int]) -> None:
    """``any``/``all`` of a generator, as a statement's value or an ``if``'s test, call the
    tasks Python calls, in order, and no more (a later item's exception never happens)."""
    if "scan" not in _MODULES:
        module = _import(tmp_path_factory.mktemp("short_circuit") / "namu_short_circuit_samples.py", SHORT_CIRCUIT)
        module.artifacts = [namu.compile(module.scan, opt_level=level) for level in OPT_LEVELS]
        _MODULES["scan"] = module
    module = _MODULES["scan"]
    module.CALLS.clear()
    expected = outcome(module.scan.fn, xs)
    expected_calls = list(module.CALLS)
    for art, executor in itertools.product(module.artifacts, ("kernel", "reference")):
        module.CALLS.clear()
        assert outcome(lambda: art.run(xs, executor=executor).value) == expected
        assert module.CALLS == expected_calls
