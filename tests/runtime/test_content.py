"""Content digests: stable, order-independent where Python is, collision-free by structure."""

from __future__ import annotations

import collections
import copy
import dataclasses
import enum
import json
import math
import os
import struct
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import namu
from namu.runtime.content import DIGEST_SIZE, UnhashableValue, content_digest


class Color(enum.Enum):
    RED = 1
    GREEN = 2


@dataclasses.dataclass(frozen=True)
class Point:
    x: Any
    y: Any


class Item(pydantic.BaseModel):
    name: str
    size: Any


# ---------------------------------------------------------------------- strategies
_floats = st.floats(allow_nan=True, allow_infinity=True)
_ints = st.one_of(st.integers(), st.integers(min_value=-(2**200), max_value=2**200))
_hashable_atoms = st.one_of(
    st.none(),
    st.booleans(),
    _ints,
    st.floats(allow_nan=False),  # two NaN objects may share a set; their digest would count both
    st.text(max_size=8),
    st.binary(max_size=8),
    st.sampled_from(list(Color)),
)
hashables = st.recursive(
    _hashable_atoms,
    lambda inner: st.one_of(
        st.tuples(inner, inner), st.frozensets(inner, max_size=4), st.builds(Point, inner, inner)
    ),
    max_leaves=8,
)
_arrays = hnp.arrays(
    dtype=st.sampled_from([np.int8, np.int64, np.float32, np.float64, np.bool_, np.dtype("U3")]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
)
_atoms = st.one_of(
    _hashable_atoms,
    _floats,
    st.binary(max_size=8).map(bytearray),
    _arrays,
    st.sampled_from([np.int64(3), np.float32(1.5), np.float64(-0.0), np.bool_(True)]),
)
values = st.recursive(
    _atoms,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(hashables, inner, max_size=4),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4),
        st.builds(Point, inner, inner),
        st.builds(Item, name=st.text(max_size=4), size=inner),
    ),
    max_leaves=12,
)


def shape(value: Any) -> Any:
    """A hashable description of ``value`` that is equal exactly when digests must be."""
    cls = type(value)
    if cls is float:
        return (float, "nan" if math.isnan(value) else struct.pack(">d", value))
    if cls in (list, tuple):
        return (cls, tuple(shape(v) for v in value))
    if cls is dict:
        return (dict, frozenset((shape(k), shape(v)) for k, v in value.items()))
    if cls in (set, frozenset):
        return (cls, frozenset(shape(v) for v in value))
    if cls is bytearray:
        return (bytearray, bytes(value))
    if cls is np.ndarray:
        return (np.ndarray, value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, np.generic):
        return (cls, value.tobytes())
    if cls is Point:
        return (Point, shape(value.x), shape(value.y))
    if cls is Item:
        return (Item, value.name, shape(value.size))
    return (cls, value)


def rebuilt(value: Any) -> Any:
    """An equal copy of ``value`` whose dicts and sets were filled in reverse order."""
    cls = type(value)
    if cls is list:
        return [rebuilt(v) for v in value]
    if cls is tuple:
        return tuple(rebuilt(v) for v in value)
    if cls is dict:
        return {rebuilt(k): rebuilt(v) for k, v in reversed(list(value.items()))}
    if cls in (set, frozenset):
        return cls(rebuilt(v) for v in reversed(list(value)))
    if cls is Point:
        return Point(rebuilt(value.x), rebuilt(value.y))
    if cls is Item:
        return Item(name=value.name, size=rebuilt(value.size))
    if cls is np.ndarray:
        return np.array(value, copy=True)
    if cls is bytearray:
        return bytearray(value)
    return value


# ---------------------------------------------------------------------- properties
@settings(max_examples=300, deadline=None)
@given(values)
def test_equal_values_have_equal_digests(value: Any) -> None:
    digest = content_digest(value)
    assert isinstance(digest, bytes) and len(digest) == DIGEST_SIZE
    assert content_digest(copy.deepcopy(value)) == digest
    assert content_digest(rebuilt(value)) == digest


@settings(max_examples=200, deadline=None)
# Keys unique by shape and by equality: a dict or set keeps the first of two equal keys
# (False and 0, 0.0 and -0.0), so their order does matter there, in Python itself.
@given(st.lists(st.tuples(hashables, values), max_size=8, unique_by=(lambda kv: shape(kv[0]), lambda kv: kv[0])), st.randoms())
def test_dict_and_set_insertion_order_does_not_matter(pairs: list[tuple[Any, Any]], rng: Any) -> None:
    shuffled = list(pairs)
    rng.shuffle(shuffled)
    assert content_digest(dict(pairs)) == content_digest(dict(shuffled))
    keys = [k for k, _ in pairs]
    assert content_digest(set(keys)) == content_digest(set(reversed(keys)))
    assert content_digest(frozenset(keys)) == content_digest(frozenset(k for k, _ in shuffled))


@settings(max_examples=300, deadline=None)
@given(st.lists(values, min_size=2, max_size=6, unique_by=shape))
def test_distinct_values_have_distinct_digests(distinct: list[Any]) -> None:
    digests = [content_digest(v) for v in distinct]
    assert len(set(digests)) == len(digests)


@settings(max_examples=300, deadline=None)
@given(values, values)
def test_digests_are_equal_exactly_when_values_are(a: Any, b: Any) -> None:
    assert (content_digest(a) == content_digest(b)) == (shape(a) == shape(b))


# ---------------------------------------------------------------------- examples
@pytest.mark.parametrize(
    ("a", "b"),
    [
        (["ab"], ["a", "b"]),
        (["a", "bc"], ["ab", "c"]),
        ([b"ab"], [b"a", b"b"]),
        ((1,), [1]),
        (1, 1.0),
        (1, True),
        (0, False),
        (0.0, -0.0),
        ("a", b"a"),
        (b"a", bytearray(b"a")),
        ({1: 2}, {2: 1}),
        ({}, set()),
        (set(), frozenset()),
        ([[]], []),
        ([[], []], [[[]]]),
        ({"a": [1, 2]}, {"a": [1], "": [2]}),
        (None, ()),
        (2**64, 2**64 + 1),
        (-1, 2**64 - 1),
        (np.int64(1), 1),
        (np.float64(1.0), 1.0),
        (np.arange(4, dtype=np.int32), np.arange(4, dtype=np.int64)),
        (np.zeros((2, 3)), np.zeros((3, 2))),
        (np.zeros(6).reshape(2, 3), np.zeros(6)),
        (Color.RED, 1),
        (Point(1, 2), (1, 2)),
        (Point(1, 2), Item(name="1", size=2)),
        (collections.namedtuple("P", "x y")(1, 2), (1, 2)),
    ],
)
def test_different_structures_never_collide(a: Any, b: Any) -> None:
    assert content_digest(a) != content_digest(b)


def test_every_nan_is_one_value_and_non_contiguous_arrays_are_their_copy() -> None:
    negative_nan = struct.unpack(">d", bytes.fromhex("fff8000000000001"))[0]
    assert math.isnan(negative_nan)
    assert content_digest(float("nan")) == content_digest(negative_nan) == content_digest(-float("nan"))
    matrix = np.arange(12, dtype=np.float64).reshape(3, 4)
    assert not matrix.T.flags.c_contiguous
    assert content_digest(matrix.T) == content_digest(np.ascontiguousarray(matrix.T))
    assert content_digest(matrix.T) != content_digest(matrix)


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (object(), "builtins.object"),
        ([1, {"k": lambda: 0}], "function"),
        (np.ma.array([1, 2], mask=[0, 1]), "MaskedArray"),
        ({1, 2, 3}.__iter__(), "set_iterator"),
    ],
)
def test_unsupported_values_raise_unhashable_value_naming_the_type(value: Any, type_name: str) -> None:
    with pytest.raises(UnhashableValue, match="cannot content-address") as info:
        content_digest(value)
    assert type_name in info.value.type_name
    assert isinstance(info.value, TypeError) and isinstance(info.value, namu.NamuError)


def test_self_referencing_values_raise_a_clear_error() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(UnhashableValue, match="contains itself"):
        content_digest(loop)
    table: dict[str, Any] = {}
    table["me"] = [table]
    with pytest.raises(UnhashableValue, match="builtins.dict contains itself"):
        content_digest(table)
    shared = [1, 2]
    assert content_digest([shared, shared]) == content_digest([[1, 2], [1, 2]])


def test_deep_nesting_is_not_a_recursion_error() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    assert len(content_digest(deep)) == DIGEST_SIZE


_STABILITY_SCRIPT = textwrap.dedent(
    """
    import dataclasses, enum, json, sys
    import numpy as np
    from namu.runtime.content import content_digest

    class Mode(enum.Enum):
        FAST = "fast"

    @dataclasses.dataclass
    class Job:
        name: str
        tags: frozenset

    VALUES = [
        {"beta": 2, "alpha": 1, "gamma": [1, 2.5, None]},
        {"zeta", "eta", "theta", "iota", "kappa"},
        frozenset({("a", 1), ("b", 2), ("c", 3)}),
        {frozenset({"x", "y"}): {"nested": {"q", "r"}}},
        np.arange(6, dtype=np.float32).reshape(2, 3),
        [Mode.FAST, Job("j", frozenset({"p", "q", "s"}))],
        2**100,
        "na\\u00efve \\U0001F600",
    ]
    json.dump([content_digest(v).hex() for v in VALUES], sys.stdout)
    """
)


def test_digests_are_stable_across_processes_and_hash_seeds() -> None:
    outputs = []
    for seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run(
            [sys.executable, "-c", _STABILITY_SCRIPT], env=env, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        outputs.append(json.loads(proc.stdout))
    assert outputs[0] == outputs[1] == outputs[2]
    # The builtin values also match this process (whatever its own hash seed).
    assert outputs[0][0] == content_digest({"alpha": 1, "gamma": [1, 2.5, None], "beta": 2}).hex()
    assert outputs[0][1] == content_digest({"kappa", "iota", "theta", "eta", "zeta"}).hex()
