"""The kernel's op kinds: native builtin ops, fan-out, branches, loops, function bodies,
context-captured values, thread and async modes, and their validation errors."""

from __future__ import annotations

import asyncio
import contextvars
import operator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from namu._kernel import Context, Plan
from namu.errors import KernelError
from namu.runtime.async_bridge import driver_factory

NATIVE = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "getitem": operator.getitem,
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
    "gt": operator.gt, "ge": operator.ge, "and": lambda a, b: a and b, "or": lambda a, b: a or b,
}
UNARY = {"neg": operator.neg, "not": operator.not_, "truth": bool, "identity": lambda x: x, "len": len}
SCALARS = st.one_of(st.integers(-10, 10), st.floats(-5, 5, allow_nan=False), st.booleans(), st.text(max_size=3))


def native(name: str, *args: object) -> object:
    plan = Plan(len(args) + 1, [(("native", name), list(range(len(args))), [len(args)])], list(range(len(args))), [len(args)])
    return plan.run(list(args))[0]


@pytest.mark.parametrize("name", sorted(NATIVE))
@given(a=SCALARS, b=SCALARS)
def test_native_binary_ops_match_python(name: str, a: object, b: object) -> None:
    try:
        expected = NATIVE[name](a, b)
    except Exception as exc:  # noqa: BLE001 - the kernel must raise the same type
        with pytest.raises(type(exc)):
            native(name, a, b)
        return
    got = native(name, a, b)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("name", sorted(UNARY))
@given(a=st.one_of(SCALARS, st.lists(st.integers(), max_size=3)))
def test_native_unary_ops_match_python(name: str, a: object) -> None:
    try:
        expected = UNARY[name](a)
    except Exception as exc:  # noqa: BLE001
        with pytest.raises(type(exc)):
            native(name, a)
        return
    got = native(name, a)
    assert got == expected and type(got) is type(expected)


def test_native_list_and_tuple() -> None:
    assert native("list", 1, "a") == [1, "a"]
    assert native("tuple", 1, "a") == (1, "a")
    assert native("tuple") == ()


def body(n_slots: int, nodes: list, inputs: list[int], outputs: list[int], outer: list[tuple[int, int]] = ()) -> Plan:
    return Plan(n_slots, nodes, inputs, outputs, outer=list(outer))


def test_map_reads_captured_values_from_the_context() -> None:
    # item -> item * k, where k (slot 1 of the main plan) is captured under key 7
    item_body = body(3, [(("native", "mul"), [0, 1], [2])], [0], [2], outer=[(1, 7)])
    main = Plan(3, [(("map", item_body, [7], False, None, None, None), [0, 1], [2])], [0, 1], [2])
    assert main.run([[1, 2, 3], 10]) == [[10, 20, 30]]
    assert main.run([(), 10]) == [[]]
    assert main.run([range(3), 2]) == [[0, 2, 4]]


def test_map_flatten_and_item_errors() -> None:
    def explode(x: int) -> list[int]:
        if x == 2:
            raise ValueError("two")
        return [x, x]

    item_body = body(2, [(explode, [0], [1])], [0], [1])
    dropped: list[int] = []

    def on_item_error(exc: BaseException, index: int) -> BaseException | None:
        dropped.append(index)
        return None if isinstance(exc, ValueError) else exc

    main = Plan(2, [(("map", item_body, [], True, on_item_error, None, None), [0], [1])], [0], [1])
    assert main.run([[1, 2, 3]]) == [[1, 1, 3, 3]]
    assert dropped == [1]
    strict = Plan(2, [(("map", item_body, [], True, None, None, None), [0], [1])], [0], [1])
    with pytest.raises(ValueError, match="two"):
        strict.run([[1, 2, 3]])


def test_if_and_loop_and_function() -> None:
    then_b = body(2, [(("native", "add"), [0, 0], [1])], [], [1], outer=[(0, 1)])
    else_b = body(2, [(("native", "neg"), [0], [1])], [], [1], outer=[(0, 1)])
    choose = Plan(3, [(("if", then_b, else_b, [1]), [0, 1], [2])], [0, 1], [2])
    assert choose.run([True, 5]) == [10]
    assert choose.run([0, 5]) == [-5]
    # Loop: carried acc += i while i < trip count
    loop_body = body(4, [(("native", "add"), [2, 0], [3])], [0, 1, 2], [1, 3])
    loop = Plan(4, [(("loop", loop_body, 1, []), [0, 1, 2], [3])], [0, 1, 2], [3])
    assert loop.run([5, True, 0]) == [0 + 1 + 2 + 3 + 4]
    assert loop.run([0, True, 42]) == [42]
    assert loop.run([None, False, 42]) == [42]
    fn_body = body(3, [(("native", "sub"), [0, 1], [2])], [0, 1], [2])
    call = Plan(3, [(("function", fn_body), [0, 1], [2])], [0, 1], [2])
    assert call.run([7, 2]) == [5]


def test_outer_values_come_from_the_given_context() -> None:
    plan = body(2, [(("native", "add"), [0, 0], [1])], [], [1], outer=[(0, 3)])
    assert plan.run([], context=Context().set(3, 21)) == [42]
    with pytest.raises(KernelError, match="no value for key 3"):
        plan.run([])


def test_async_nodes_need_a_driver_and_respect_the_cap() -> None:
    state = {"now": 0, "peak": 0}

    async def nap(x: int) -> int:
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.01)
        state["now"] -= 1
        return x + 1

    item_body = body(2, [(("call", nap, "async"), [0], [1])], [0], [1])
    main = Plan(2, [(("map", item_body, [], False, None, None, None), [0], [1])], [0], [1])
    assert main.concurrent
    with pytest.raises(KernelError, match="async mode, but run\\(\\) was given no driver"):
        main.run([[1]])
    driver = driver_factory(contextvars.copy_context())
    assert main.run([list(range(10))], driver=driver, max_concurrency=3) == [list(range(1, 11))]
    assert state["peak"] == 3


def test_thread_nodes_run_on_the_pool() -> None:
    plan = Plan(2, [(("call", lambda x: x * 2, "thread"), [0], [1])], [0], [1])
    assert plan.concurrent
    assert plan.run([21], workers=1) == [42]


@pytest.mark.parametrize(
    ("op", "inputs", "outputs", "message"),
    [
        (("native", "nope"), [0], [1], 'unknown native op "nope"'),
        (("native", "add"), [0], [1], "takes 2 inputs, got 1"),
        (("call", print, "fibers"), [0], [1], "expected a mode"),
        (("warp", 1), [0], [1], 'unknown op kind "warp"'),
        (("map", 5, [], False, None, None, None), [0], [1], "expected a Plan"),
        (("map", Plan(1, [], [0], [0]), [1], False, None, None, None), [0], [1], "one input per key"),
        (("if", Plan(1, [], [0], [0]), Plan(1, [], [0], [0]), []), [0], [1], "if branches take no inputs"),
        (("loop", Plan(1, [], [0], [0]), 0, []), [0, 0], [], "a loop body takes"),
        (("map", Plan(1, [], [0], [0]), [], False, 3, None, None), [0], [1], "expected a callable or None"),
    ],
)
def test_op_validation_errors(op: tuple, inputs: list[int], outputs: list[int], message: str) -> None:
    with pytest.raises(KernelError, match=message):
        Plan(2, [(op, inputs, outputs)], [0], outputs)
