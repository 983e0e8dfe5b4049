"""`namu._kernel.Context`: a persistent map; forks share, writes never leak."""

from __future__ import annotations

import gc
import weakref

import pytest
from hypothesis import given
from hypothesis import strategies as st

from namu._kernel import Context

KEYS = st.one_of(st.integers(-5, 5), st.sampled_from(["a", "b", "c", "ä"]))


def test_fork_set_get() -> None:
    parent = Context({"x": 1})
    child = parent.fork().set("y", 2)
    sibling = parent.fork().set("x", 10)
    assert (parent["x"], parent.get("y")) == (1, None)
    assert (child["x"], child["y"]) == (1, 2)  # a child sees its parent's values
    assert (sibling["x"], "y" in sibling) == (10, False)  # siblings do not see each other
    assert len(parent) == 1 and len(child) == 2
    assert sorted(child.keys()) == ["x", "y"]
    assert dict(child.items()) == {"x": 1, "y": 2}
    assert "x" not in child.delete("x") and "x" in child


def test_errors() -> None:
    ctx = Context()
    with pytest.raises(KeyError):
        ctx["missing"]
    with pytest.raises(KeyError):
        ctx.delete("missing")
    with pytest.raises(TypeError, match="Context keys are str or int, got 'float'"):
        ctx.set(1.5, "x")
    assert ctx.get("missing", 7) == 7


class Box:
    pass


def test_values_are_freed_with_the_last_context() -> None:
    box = Box()
    ref = weakref.ref(box)
    ctx = Context().set("box", box)
    forks = [ctx.fork() for _ in range(3)]
    del box
    del ctx
    assert ref() is not None
    del forks
    gc.collect()
    assert ref() is None


def test_reference_cycle_through_a_context_is_collected() -> None:
    box = Box()
    ref = weakref.ref(box)
    box.ctx = Context().set("self", box)  # type: ignore[attr-defined]
    del box
    gc.collect()
    assert ref() is None


@given(st.lists(st.tuples(st.integers(0, 7), st.sampled_from(["fork", "set", "delete"]), KEYS, st.integers()), max_size=60))
def test_behaves_like_copied_dicts(ops: list[tuple[int, str, object, int]]) -> None:
    """Model: each context is an independent dict; forking copies, writes make new ones."""
    contexts = [Context()]
    models: list[dict[object, int]] = [{}]
    for which, op, key, value in ops:
        i = which % len(contexts)
        if op == "fork":
            contexts.append(contexts[i].fork())
            models.append(dict(models[i]))
        elif op == "set":
            contexts.append(contexts[i].set(key, value))
            models.append({**models[i], key: value})
        elif key in models[i]:
            contexts.append(contexts[i].delete(key))
            models.append({k: v for k, v in models[i].items() if k != key})
    for ctx, model in zip(contexts, models):
        assert len(ctx) == len(model)
        assert dict(ctx.items()) == model
