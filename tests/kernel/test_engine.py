"""The kernel's op kinds: native builtin ops, fan-out, branches, loops, function bodies,
context-captured values, thread and async modes, and their validation errors."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import operator
import sys
import weakref

import pytest
from hypothesis import given
from hypothesis import strategies as st

from namu._kernel import (
    Call,
    Context,
    Function,
    If,
    Loop,
    Map,
    Native,
    Plan,
    Seq,
    SeqStep,
)
from namu.errors import KernelError
from namu.runtime.async_bridge import AsyncDriver, async_driver, event_loop

NATIVE = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "getitem": operator.getitem,
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
    "gt": operator.gt, "ge": operator.ge, "and": lambda a, b: a and b, "or": lambda a, b: a or b,
}
UNARY = {"neg": operator.neg, "not": operator.not_, "truth": bool, "identity": lambda x: x, "len": len}
SCALARS = st.one_of(st.integers(-10, 10), st.floats(-5, 5, allow_nan=False), st.booleans(), st.text(max_size=3))


def native(name: str, *args: object) -> object:
    plan = Plan(len(args) + 1, [(Native(name), list(range(len(args))), [len(args)])], list(range(len(args))), [len(args)])
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
    item_body = body(3, [(Native("mul"), [0, 1], [2])], [0], [2], outer=[(1, 7)])
    main = Plan(3, [(Map(item_body, [7]), [0, 1], [2])], [0, 1], [2])
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

    main = Plan(2, [(Map(item_body, flatten=True, on_item_error=on_item_error), [0], [1])], [0], [1])
    assert main.run([[1, 2, 3]]) == [[1, 1, 3, 3]]
    assert dropped == [1]
    strict = Plan(2, [(Map(item_body, flatten=True), [0], [1])], [0], [1])
    with pytest.raises(ValueError, match="two"):
        strict.run([[1, 2, 3]])


def test_if_and_loop_and_function() -> None:
    then_b = body(2, [(Native("add"), [0, 0], [1])], [], [1], outer=[(0, 1)])
    else_b = body(2, [(Native("neg"), [0], [1])], [], [1], outer=[(0, 1)])
    choose = Plan(3, [(If(then_b, else_b, [1]), [0, 1], [2])], [0, 1], [2])
    assert choose.run([True, 5]) == [10]
    assert choose.run([0, 5]) == [-5]
    # Loop: carried acc += i while i < trip count
    loop_body = body(4, [(Native("add"), [2, 0], [3])], [0, 1, 2], [1, 3])
    loop = Plan(4, [(Loop(loop_body, 1), [0, 1, 2], [3])], [0, 1, 2], [3])
    assert loop.run([5, True, 0]) == [0 + 1 + 2 + 3 + 4]
    assert loop.run([0, True, 42]) == [42]
    assert loop.run([None, False, 42]) == [42]
    fn_body = body(3, [(Native("sub"), [0, 1], [2])], [0, 1], [2])
    call = Plan(3, [(Function(fn_body), [0, 1], [2])], [0, 1], [2])
    assert call.run([7, 2]) == [5]


def test_outer_values_come_from_the_given_context() -> None:
    plan = body(2, [(Native("add"), [0, 0], [1])], [], [1], outer=[(0, 3)])
    assert plan.run([], context=Context().set(3, 21)) == [42]
    with pytest.raises(KernelError, match="no value for key 3"):
        plan.run([])


@pytest.mark.parametrize("where", ["inline", "loop-thread"])
def test_async_nodes_need_a_driver_and_respect_the_cap(where: str) -> None:
    state = {"now": 0, "peak": 0}

    async def nap(x: int) -> int:
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.01)
        state["now"] -= 1
        return x + 1

    item_body = body(2, [(Call(nap, "async"), [0], [1])], [0], [1])
    main = Plan(2, [(Map(item_body), [0], [1])], [0], [1])
    assert main.concurrent
    with pytest.raises(KernelError, match="async mode, but run\\(\\) was given no driver"):
        main.run([[1]])
    context = contextvars.copy_context()
    if where == "inline":  # the loop runs on this thread while the kernel waits
        with async_driver(context) as driver:
            assert main.run([list(range(10))], driver=driver, max_concurrency=3) == [list(range(1, 11))]
    else:
        with event_loop() as loop:
            driver = lambda sink: AsyncDriver(sink, context, loop)  # noqa: E731
            assert main.run([list(range(10))], driver=driver, max_concurrency=3) == [list(range(1, 11))]
    assert state["peak"] == 3


def test_thread_nodes_run_on_the_pool() -> None:
    plan = Plan(2, [(Call(lambda x: x * 2, "thread"), [0], [1])], [0], [1])
    assert plan.concurrent
    assert plan.run([21], workers=1) == [42]


@pytest.mark.parametrize(
    ("op", "inputs", "outputs", "message"),
    [
        (Native("add"), [0], [1], 'native op "add" takes 2 inputs, got 1'),
        (("warp", 1), [0], [1], r"node 0: 'tuple' object is not callable, nor an op descriptor"),
        (Map(Plan(1, [], [0], [0]), [1]), [0], [1], "one input per key"),
        (If(Plan(1, [], [0], [0]), Plan(1, [], [0], [0])), [0], [1], "if branches take no inputs"),
        (Loop(Plan(1, [], [0], [0]), 0), [0, 0], [], "a loop body takes"),
        (Function(Plan(1, [], [0], [0])), [0, 0], [1], "a function node's inputs and outputs match its body's"),
    ],
)
def test_op_validation_errors(op: object, inputs: list[int], outputs: list[int], message: str) -> None:
    """Descriptors check their own arguments (tests/kernel/test_descriptors.py); the plan
    checks each against its node."""
    with pytest.raises(KernelError, match=message):
        Plan(2, [(op, inputs, outputs)], [0], outputs)


# --- seq: a fused chain run straight-line in one node --------------------------------------


class Box:
    """A value that supports weak references (ints do not)."""

    def __init__(self, value: object = None) -> None:
        self.value = value


def seq_op(steps: list[tuple]) -> Seq:
    """A ``Seq`` of ``(op, args, error_handler)`` steps."""
    return Seq([SeqStep(op, args, handler) for op, args, handler in steps])


def seq(steps: list[tuple], n_inputs: int = 1, n_outputs: int = 1, **kwargs: object) -> Plan:
    """A plan of one seq node reading slots ``0 .. n_inputs`` and writing the next ones."""
    inputs = list(range(n_inputs))
    outputs = list(range(n_inputs, n_inputs + n_outputs))
    return Plan(n_inputs + n_outputs, [(seq_op(steps), inputs, outputs)], inputs, outputs, **kwargs)


def test_seq_runs_its_steps_in_order_on_inputs_and_earlier_results() -> None:
    calls: list[str] = []

    def step(name: str, fn):  # noqa: ANN001, ANN202
        def call(*args: object) -> object:
            calls.append(name)
            return fn(*args)

        return call

    # values: 0 = x, 1 = y, 2 = x + 1, 3 = (x + 1) * y, 4 = [3] - x
    plan = seq(
        [
            (step("inc", lambda x: x + 1), [0], None),
            (Native("mul"), [2, 1], None),
            (step("sub", operator.sub), [3, 0], None),
        ],
        n_inputs=2,
    )
    assert plan.run([3, 10]) == [37]
    assert calls == ["inc", "sub"]
    assert not plan.concurrent
    # An absent optional input (-1) reads None; the node's result is the last step's.
    absent = Plan(2, [(seq_op([(lambda a, b: (a, b), [0, 1], None)]), [0, -1], [1])], [0], [1])
    assert absent.run(["a"]) == [("a", None)]


def test_seq_results_spread_over_several_outputs_or_none() -> None:
    plan = seq([(lambda x: x + 1, [0], None), (lambda y: (y, -y), [1], None)], n_outputs=2)
    assert plan.run([1]) == [2, -2]
    effects: list[int] = []
    silent = Plan(1, [(seq_op([(effects.append, [0], None), (effects.append, [0], None)]), [0], [])], [0], [])
    assert silent.run([7]) == [] and effects == [7, 7]


def test_a_seq_in_a_map_body_runs_per_item() -> None:
    item_body = Plan(2, [(seq_op([(lambda x: x + 1, [0], None), (Native("neg"), [1], None)]), [0], [1])], [0], [1])
    main = Plan(2, [(Map(item_body), [0], [1])], [0], [1])
    assert main.run([[1, 2, 3]]) == [[-2, -3, -4]]


def test_an_error_in_step_k_goes_through_step_k_handler() -> None:
    error = ValueError("step 1 failed")

    def fail(x: object) -> object:
        raise error

    seen: list[tuple[str, BaseException]] = []

    def handler(name: str):  # noqa: ANN202
        def handle(exc: Exception) -> BaseException:
            seen.append((name, exc))
            return RuntimeError(f"while running {name}")

        return handle

    def identity(x: object) -> object:
        return x

    steps = [(identity, [0], handler("first")), (fail, [1], handler("second")), (identity, [2], handler("third"))]
    after: list[object] = []
    plan = Plan(
        3,
        [(seq_op(steps), [0], [1]), (after.append, [1], [2])],
        [0],
        [],
        error_handlers=[handler("node"), None],
    )
    with pytest.raises(RuntimeError, match="while running second"):
        plan.run([1])
    assert seen == [("second", error)]
    assert after == []  # the node failed: nothing downstream ran
    # Without a step handler the node's applies; without either the exception is unchanged.
    seen.clear()
    node_only = Plan(2, [(seq_op([(identity, [0], None), (fail, [1], None)]), [0], [1])], [0], [1], error_handlers=[handler("node")])
    with pytest.raises(RuntimeError, match="while running node"):
        node_only.run([1])
    bare = seq([(identity, [0], None), (fail, [1], None)])
    with pytest.raises(ValueError) as caught:
        bare.run([1])
    assert caught.value is error
    # A native step fails like a call; a handler that raises replaces the error.
    with pytest.raises(KeyError, match="'k'"):
        seq([(identity, [0], None), (Native("getitem"), [2, 1], None)], n_inputs=2).run([{}, "k"])

    def broken(exc: Exception) -> BaseException:
        raise KeyError("handler")

    with pytest.raises(KeyError, match="handler"):
        seq([(fail, [0], broken)]).run([1])


def test_a_step_raising_a_base_exception_stops_the_run_without_handlers() -> None:
    def leave(x: object) -> object:
        raise SystemExit(3)

    called: list[BaseException] = []
    plan = seq([(lambda x: x, [0], None), (leave, [1], called.append)])
    with pytest.raises(SystemExit):
        plan.run([1])
    assert called == []


def test_seq_releases_each_value_after_its_last_reader() -> None:
    refs: list[weakref.ref[Box]] = []
    alive_at: list[list[bool]] = []

    def make(x: object) -> Box:
        box = Box(x)
        refs.append(weakref.ref(box))
        return box

    def probe(*args: object) -> int:
        alive_at.append([r() is not None for r in refs])
        return 0

    # values: 0 = x, 1 = box A (read by steps 1 and 3), 2 = box B (never read), 3, 4, 5
    plan = seq([(make, [0], None), (make, [0], None), (probe, [1], None), (probe, [1, 3], None), (probe, [0], None)])
    assert plan.run([1]) == [0]
    # step 2 ran after B was dropped (nobody reads it); step 4 after A's last reader.
    assert alive_at == [[True, False], [True, False], [False, False]]


def test_seq_holds_no_references_after_runs() -> None:
    value, constant = Box(), Box()
    error = ValueError("x")

    def fail(*args: object) -> object:
        raise error

    ok = Plan(3, [(seq_op([(lambda v, c: [v, c], [0, 1], None), (Native("len"), [2], None)]), [0, 1], [2])], [0], [2], constants=[(1, constant)])
    bad = Plan(3, [(seq_op([(lambda v, c: (v, c), [0, 1], None), (fail, [2, 0], lambda e: e)]), [0, 1], [2])], [0], [2], constants=[(1, constant)])
    gc.collect()
    before = (sys.getrefcount(value), sys.getrefcount(constant))
    for _ in range(1000):
        assert ok.run([value]) == [2]
        with pytest.raises(ValueError):
            bad.run([value])
    error.__traceback__ = None
    gc.collect()
    assert (sys.getrefcount(value), sys.getrefcount(constant)) == before


@pytest.mark.parametrize("through", ["callable", "handler", "descriptor"])
def test_a_plan_in_a_cycle_through_a_seq_step_is_collected(through: str) -> None:
    def make() -> weakref.ref[Box]:
        sentinel = Box()
        holder: list[object] = []

        def step(x: object) -> object:
            return (sentinel, holder, x)

        if through == "descriptor":  # a descriptor alone: a Map holding the hook
            holder.append(Map(Plan(1, [], [0], [0]), on_start=step))
            return weakref.ref(sentinel)
        callable_, handler = (step, None) if through == "callable" else ((lambda x: x), step)
        holder.append(seq([(callable_, [0], handler)]))
        return weakref.ref(sentinel)

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        ref = make()
        assert ref() is not None, "the cycle keeps the sentinel alive until collected"
        gc.collect()
        assert ref() is None
    finally:
        if was_enabled:
            gc.enable()


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([(print, [1], None)], r"seq step 0 argument 0 reads value 1, but only values 0\.\.1 are defined before it"),
        ([(print, [0], None), (print, [2], None)], "seq step 1 argument 0 reads value 2"),
        ([(Native("add"), [0], None)], 'seq step 0: native op "add" takes 2 inputs, got 1'),
    ],
)
def test_seq_validation_errors(steps: list[tuple], message: str) -> None:
    """A ``Seq`` checks its steps (tests/kernel/test_descriptors.py); the plan checks the
    values each step reads against the node's inputs."""
    with pytest.raises(KernelError, match=message):
        Plan(2, [(seq_op(steps), [0], [1])], [0], [1])
