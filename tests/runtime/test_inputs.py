"""Workflow inputs are validated against their annotations (pydantic)."""

from __future__ import annotations

import pytest

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


def test_lax_conversion_of_compatible_values() -> None:
    assert sentence(["a"], times="3") == "a"  # "3" is a valid int


@pytest.mark.parametrize(
    ("kwargs", "parameter", "expected"),
    [
        ({"words": "not a list"}, "words", "list[str]"),
        ({"words": ["a"], "times": "many"}, "times", "int"),
        ({"words": [1, 2]}, "words", "list[str]"),
    ],
)
def test_bad_input_names_parameter_and_type(kwargs: dict, parameter: str, expected: str) -> None:
    with pytest.raises(namu.InputError) as info:
        sentence(**kwargs)
    assert info.value.parameter == parameter
    assert f"`{parameter}` expects {expected}" in str(info.value)


def test_missing_and_unknown_arguments() -> None:
    with pytest.raises(namu.InputError, match="missing a required argument: 'words'"):
        sentence()
    with pytest.raises(namu.InputError, match="unexpected keyword argument 'colour'"):
        sentence(["a"], colour="red")
