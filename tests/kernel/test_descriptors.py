"""The plan protocol: the op descriptors that cross from Python into the kernel, checked
when they are made, and what ``namu._kernel`` says about itself (version, native ops)."""

from __future__ import annotations

import operator
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from namu import _kernel
from namu._kernel import Call, Function, If, Loop, Map, Native, Plan, Seq, SeqStep
from namu.errors import KernelError

ROOT = Path(__file__).resolve().parents[2]


#: a body returning its one input; a branch taking and returning nothing.
BODY, BRANCH = Plan(1, [], [0], [0]), Plan(0, [], [], [])


def registry_native_names() -> set[str]:
    """Every native kernel op name namu's op registry maps an op to: the fixed names, and
    those an attribute picks (``namu.Compare``'s comparison, ``namu.Arith``'s operator)."""
    from namu.ops import registered
    from namu.ops.values import COMPARISONS, NATIVE_ARITH

    fixed = {d.native for d in registered() if isinstance(d.native, str)}
    return fixed | set(COMPARISONS) | set(NATIVE_ARITH)


def test_version_is_the_crate_version() -> None:
    cargo = tomllib.loads((ROOT / "kernel" / "Cargo.toml").read_text())
    assert _kernel.__version__ == cargo["package"]["version"]


def test_native_ops_are_exactly_those_the_registry_uses() -> None:
    assert isinstance(_kernel.NATIVE_OPS, tuple)
    assert len(set(_kernel.NATIVE_OPS)) == len(_kernel.NATIVE_OPS)
    assert set(_kernel.NATIVE_OPS) == registry_native_names()
    for name in _kernel.NATIVE_OPS:
        assert Native(name).name == name


def test_descriptors_round_trip_their_fields() -> None:
    body, then_b, else_b = BODY, BRANCH, Plan(0, [], [], [])

    def hook(*args: object) -> None:
        return None

    call = Call(print, "thread")
    assert (call.fn, call.mode) == (print, "thread")
    assert Call(fn=len).mode == "inline"
    assert Native("add").name == "add" and Native("add") == Native("add") != Native("sub")
    assert hash(Native("eq")) == hash(Native("eq"))
    fan = Map(body, [3, 4], flatten=True, on_item_error=hook, on_start=hook, on_item_done=None)
    assert (fan.body, fan.keys, fan.flatten) == (body, (3, 4), True)
    assert (fan.on_item_error, fan.on_start, fan.on_item_done) == (hook, hook, None)
    bare = Map(body)
    assert (bare.keys, bare.flatten, bare.on_item_error, bare.on_start, bare.on_item_done) == ((), False, None, None, None)
    branch = If(then_b, else_b, keys=(1,))
    assert (branch.then_branch, branch.else_branch, branch.keys) == (then_b, else_b, (1,))
    loop = Loop(body, 2)
    assert (loop.body, loop.n_carried, loop.keys) == (body, 2, ())
    assert Function(body).body is body
    step = SeqStep(Native("neg"), [0], error_handler=hook)
    assert (step.op, step.args, step.error_handler) == (Native("neg"), (0,), hook)
    assert SeqStep(len).args == () and SeqStep(len).op is len
    seq = Seq([step, SeqStep(len, [1])])
    assert [s.args for s in seq.steps] == [(0,), (1,)]


def test_descriptors_are_frozen_and_readable() -> None:
    call = Call(len)
    with pytest.raises(AttributeError):
        call.mode = "thread"  # type: ignore[misc]
    assert repr(call) == "Call(fn=<built-in function len>, mode='inline')"
    assert repr(Native("getitem")) == "Native(name='getitem')"
    assert repr(SeqStep(Native("len"), [0])) == "SeqStep(op=Native(name='len'), args=(0,), error_handler=None)"
    assert repr(Loop(BODY, 0)).startswith("Loop(body=<namu._kernel.Plan: 0 nodes, 1 slots>, n_carried=0")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Call(5), "Call.fn: expected a callable, got 'int'"),
        (lambda: Call(print, "fibers"), "Call.mode: expected 'inline', 'thread' or 'async', got 'str'"),
        (lambda: Call(print, 1), "Call.mode: expected 'inline', 'thread' or 'async', got 'int'"),
        (lambda: Native("nope"), 'Native.name: unknown native op "nope" (see namu._kernel.NATIVE_OPS)'),
        (lambda: Native(3), "Native.name: expected an op name, got 'int'"),
        (lambda: Map(5), "Map.body: expected a Plan, got 'int'"),
        (lambda: Map(BODY, "ab"), "Map.keys: expected a list, got 'str'"),
        (lambda: Map(BODY, ["a"]), "Map.keys: expected an int, got 'str'"),
        (lambda: Map(BODY, flatten=1), "Map.flatten: expected a bool, got 'int'"),
        (lambda: Map(BODY, on_item_error=3), "Map.on_item_error: expected a callable or None, got 'int'"),
        (lambda: Map(BODY, on_start="x"), "Map.on_start: expected a callable or None, got 'str'"),
        (lambda: Map(BODY, on_item_done=3), "Map.on_item_done: expected a callable or None, got 'int'"),
        (lambda: If(BODY, None), "If.else_branch: expected a Plan, got 'NoneType'"),
        (lambda: Loop(BODY, -1), "Loop.n_carried: expected a non-negative count, got -1"),
        (lambda: Loop(BODY, 2**70), "Loop.n_carried: 1180591620717411303424 is out of range"),
        (lambda: Function(print), "Function.body: expected a Plan, got 'builtin_function_or_method'"),
        (lambda: Seq([]), "Seq.steps: expected at least one step"),
        (lambda: Seq("steps"), "Seq.steps: expected a list, got 'str'"),
        (lambda: Seq([(print, [0], None)]), "Seq.steps: expected a list of SeqStep, got 'tuple'"),
        (lambda: SeqStep(5), "SeqStep.op: expected a callable or a Native, got 'int'"),
        (lambda: SeqStep(Call(print)), "SeqStep.op: expected a callable or a Native, got 'Call'"),
        (lambda: SeqStep(print, [-1]), "SeqStep.args: expected value indices (0 ..= 4294967295), got -1"),
        (lambda: SeqStep(print, ["a"]), "SeqStep.args: expected an int, got 'str'"),
        (lambda: SeqStep(print, [0], 3), "SeqStep.error_handler: expected a callable or None, got 'int'"),
    ],
)
def test_bad_arguments_are_named(make: Any, message: str) -> None:
    with pytest.raises(KernelError, match=f"^{re.escape(message)}$"):
        make()


def test_missing_or_unknown_arguments_are_type_errors() -> None:
    with pytest.raises(TypeError):
        Loop(BODY)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Call(print, mode="inline", workers=2)  # type: ignore[call-arg]


def test_a_plan_takes_a_callable_or_a_descriptor_as_an_op() -> None:
    plan = Plan(4, [(operator.neg, [0], [1]), (Native("add"), [1, 1], [2]), (Call(abs, "inline"), [2], [3])], [0], [3])
    assert plan.run([5]) == [10]
    with pytest.raises(KernelError, match=r"^node 0: 'tuple' object is not callable, nor an op descriptor"):
        Plan(2, [(("native", "add"), [0, 0], [1])], [0], [1])
