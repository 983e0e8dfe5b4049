"""Workflow inputs reach the workflow unchanged when they fit their annotations (PEP 484,
numeric tower included), and are refused with InputError when they do not."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import namu


@namu.task
def join(words: list[str], sep: str) -> str:
    return sep.join(words)


@namu.workflow
def sentence(words: list[str], sep: str = " ", times: int = 1) -> str:
    return join(words, sep)


def test_valid_inputs_and_defaults(executor: str) -> None:
    assert sentence.run(["a", "b"], executor=executor).value == "a b"
    assert sentence.run(words=["a", "b"], sep="-", executor=executor).value == "a-b"


@namu.task
def kind(x: Any) -> str:
    return type(x).__name__


@namu.workflow
def show(a: float, b: bool, c: int, xs: list[int], t: tuple[int, ...], pair: tuple[int, str]) -> str:
    return f"{a!r}|{b!r}|{c!r}|" + kind(xs) + "|" + kind(t) + "|" + kind(pair)


def test_values_that_fit_reach_the_workflow_unchanged(executor: str) -> None:
    """An int where float is annotated stays an int, a bool where int is stays a bool."""
    kwargs = {"a": 3, "b": True, "c": True, "xs": [1, 2], "t": (1, 2), "pair": (1, "x")}
    assert show.run(executor=executor, **kwargs).value == show.fn(**kwargs) == "3|True|True|list|tuple|tuple"


@settings(max_examples=40, deadline=None)
@given(
    a=st.one_of(st.floats(allow_nan=False), st.integers(), st.booleans()),
    c=st.one_of(st.integers(), st.booleans()),
    xs=st.lists(st.one_of(st.integers(), st.booleans()), max_size=5),
)
def test_any_fitting_value_means_what_plain_python_means(a: Any, c: Any, xs: list) -> None:
    kwargs = {"a": a, "b": False, "c": c, "xs": xs, "t": (), "pair": (0, "")}
    assert show(**kwargs) == show.fn(**kwargs)


@pytest.mark.parametrize(
    ("name", "value", "expected", "given"),
    [
        ("b", 1, "bool", "int"),
        ("c", "3", "int", "str"),
        ("c", 3.0, "int", "float"),
        ("c", None, "int", "NoneType"),
        ("a", "3.5", "float", "str"),
        ("xs", (1, 2), "list[int]", "tuple"),
        ("xs", [1, "2"], "list[int]", "list"),
        ("xs", [1, 2.0], "list[int]", "list"),
        ("t", [1, 2], "tuple", "list"),
        ("pair", (1, 2), "tuple[int, str]", "tuple"),
        ("pair", (1, "x", 3), "tuple[int, str]", "tuple"),
    ],
)
def test_values_that_do_not_fit_are_refused(name: str, value: Any, expected: str, given: str) -> None:
    kwargs = {"a": 1.0, "b": True, "c": 1, "xs": [1], "t": (1,), "pair": (1, "x"), name: value}
    with pytest.raises(namu.InputError) as info:
        show(**kwargs)
    assert info.value.parameter == name
    assert f"parameter `{name}` expects {expected}, got " in str(info.value)
    assert f"({given})" in str(info.value)


def test_a_bad_item_is_named() -> None:
    with pytest.raises(namu.InputError, match=r"expects list\[int\], got \[1, 2, 'x'\] \(list\): item 2 is 'x' \(str\)"):
        show(a=1.0, b=True, c=1, xs=[1, 2, "x"], t=(), pair=(1, "x"))


def test_missing_and_unknown_arguments() -> None:
    with pytest.raises(namu.InputError, match="missing a required argument: 'words'"):
        sentence()
    with pytest.raises(namu.InputError, match="unexpected keyword argument 'colour'"):
        sentence(["a"], colour="red")
