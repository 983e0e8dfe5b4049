"""Tests of the native kernel's `Plan`: semantics, validation, liveness, re-entrancy, GC."""

from __future__ import annotations

import contextlib
import functools
import gc
import heapq
import operator
import sys
import threading
import weakref
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from namu._kernel import Call, Plan
from namu.errors import KernelError


class Box:
    """A value that supports weak references (ints and tuples do not)."""

    def __init__(self, value: Any = None) -> None:
        self.value = value


def identity(x: Any) -> Any:
    return x


# --- basic semantics ---------------------------------------------------------------------


def test_chain_of_1000_nodes() -> None:
    n = 1000
    plan = Plan(n + 1, [(lambda x: x + 1, [i], [i + 1]) for i in range(n)], [0], [n])
    assert plan.n_nodes == n
    assert plan.n_slots == n + 1
    assert plan.run([0]) == [1000]
    assert plan.run([5]) == [1005]


def test_diamond_fan_out_fan_in() -> None:
    # x -> a = x + 1 -> (b = a * 2, c = a * 3) -> d = b - c
    plan = Plan(
        5,
        [
            (lambda x: x + 1, [0], [1]),
            (lambda a: a * 2, [1], [2]),
            (lambda a: a * 3, [1], [3]),
            (operator.sub, [2, 3], [4]),
        ],
        [0],
        [4, 1],
    )
    assert plan.run([1]) == [-2, 2]
    assert plan.run([10]) == [-11, 11]


def test_node_may_read_the_same_slot_twice() -> None:
    plan = Plan(3, [(operator.mul, [0, 0], [1]), (operator.add, [1, 1], [2])], [0], [2])
    assert plan.run([3]) == [18]


def test_multi_output_unpacks_tuples_lists_and_tuple_subclasses() -> None:
    class Pair(NamedTuple):
        a: int
        b: int

    plan = Plan(
        7,
        [
            (lambda x: (x, x + 1), [0], [1, 2]),
            (lambda x: [x * 10, x * 20], [1], [3, 4]),
            (lambda x: Pair(-x, x), [2], [5, 6]),
        ],
        [0],
        [1, 2, 3, 4, 5, 6],
    )
    assert plan.run([1]) == [1, 2, 10, 20, -2, 2]


def test_multi_output_wrong_arity_is_a_kernel_error() -> None:
    plan = Plan(4, [(lambda x: (x, x), [0], [1, 2, 3])], [0], [1])
    with pytest.raises(KernelError, match=r"^node 0 returned 2 values, expected 3$"):
        plan.run([1])


def test_multi_output_non_sequence_is_a_kernel_error() -> None:
    plan = Plan(4, [(identity, [0], [1]), (lambda x: iter((x, x)), [1], [2, 3])], [0], [])
    with pytest.raises(
        KernelError, match="node 1 returned a 'tuple_iterator', expected a tuple or list of 2"
    ):
        plan.run([1])


def test_zero_outputs_discard_the_result_and_one_output_stores_it_as_is() -> None:
    seen: list[Any] = []

    def side_effect(x: Any) -> str:
        seen.append(x)
        return "ignored"

    plan = Plan(
        2,
        [(side_effect, [0], []), (lambda x: (x, x), [0], [1])],
        [0],
        [1],
    )
    assert plan.run([7]) == [(7, 7)]
    assert seen == [7]


def test_absent_optional_input_passes_none() -> None:
    calls = []

    def node(a: Any, b: Any, c: Any) -> str:
        calls.append((a, b, c))
        return "ok"

    plan = Plan(2, [(node, [-1, 0, -1], [1])], [0], [1])
    assert plan.run(["x"]) == ["ok"]
    assert calls == [(None, "x", None)]


def test_constants_are_reused_across_runs() -> None:
    table = {"k": 1}
    plan = Plan(
        3,
        [(lambda t, x: t["k"] + x, [1, 0], [2])],
        [0],
        [2, 1],
        constants=[(1, table)],
    )
    first = plan.run([1])
    second = plan.run([2])
    assert first == [2, table]
    assert second == [3, table]
    assert first[1] is table and second[1] is table


def test_constant_slot_read_by_nothing_and_returned() -> None:
    marker = object()
    plan = Plan(1, [], [], [0, 0], constants=[(0, marker)])
    assert plan.run([]) == [marker, marker]


def test_outputs_may_be_inputs_and_repeated() -> None:
    plan = Plan(2, [(lambda x: x * 2, [0], [1])], [0], [0, 1, 0, 1])
    assert plan.run([4]) == [4, 8, 4, 8]


def test_plan_with_no_nodes_or_slots() -> None:
    assert Plan(0, [], [], []).run([]) == []
    assert Plan(1, [], [0], [0]).run(["v"]) == ["v"]


def test_each_run_returns_a_new_list() -> None:
    plan = Plan(1, [], [0], [0])
    first = plan.run([1])
    first.append(2)
    assert plan.run([1]) == [1]


def test_all_kinds_of_callables() -> None:
    class Adder:
        def __init__(self, k: int) -> None:
            self.k = k

        def add(self, x: int) -> int:
            return x + self.k

        def __call__(self, x: int) -> int:
            return x + 2 * self.k

    log: list[int] = []
    plan = Plan(
        7,
        [
            (Adder(1).add, [0], [1]),  # bound method (vectorcall offset path)
            (Adder(1), [1], [2]),  # instance with __call__
            (functools.partial(operator.add, 100), [2], [3]),  # partial
            (int, [3], [4]),  # a type
            (str, [4], [5]),  # a type with vectorcall
            (log.append, [4], []),  # builtin method
            (len, [5], [6]),  # builtin function
        ],
        [0],
        [4, 5, 6],
    )
    assert plan.run([0]) == [103, "103", 3]
    assert log == [103]


def test_properties_and_repr() -> None:
    plan = Plan(3, [(identity, [0], [1])], [0], [1])
    assert (plan.n_nodes, plan.n_slots) == (1, 3)
    assert repr(plan) == "<namu._kernel.Plan: 1 nodes, 3 slots>"
    with pytest.raises(AttributeError):
        plan.n_nodes = 2  # type: ignore[misc]


# --- exceptions --------------------------------------------------------------------------


def test_exception_propagates_unchanged() -> None:
    cause = KeyError("root")
    error = ValueError("boom")
    ran_after: list[Any] = []

    def fail(x: Any) -> Any:
        try:
            raise cause
        except KeyError as exc:
            raise error from exc

    plan = Plan(
        3,
        [(identity, [0], [1]), (fail, [1], [2]), (ran_after.append, [2], [])],
        [0],
        [],
    )
    with pytest.raises(ValueError) as info:
        plan.run([1])
    assert info.value is error
    assert info.value.__cause__ is cause
    assert any(entry.name == "fail" for entry in info.traceback)
    assert ran_after == []
    # The plan is still usable.
    error.__traceback__ = None
    with pytest.raises(ValueError):
        plan.run([2])


def test_base_exceptions_propagate_too() -> None:
    class Stop(BaseException):
        pass

    def stop(x: Any) -> Any:
        raise Stop(x)

    plan = Plan(2, [(stop, [0], [1])], [0], [1])
    with pytest.raises(Stop):
        plan.run([1])


def test_failed_run_releases_what_it_held() -> None:
    refs: list[weakref.ref[Box]] = []

    def make(x: Any) -> Box:
        box = Box(x)
        refs.append(weakref.ref(box))
        return box

    def fail(x: Any) -> Any:
        raise RuntimeError("fail")

    plan = Plan(
        4,
        [(make, [0], [1]), (fail, [0], [2]), (lambda b, y: (b, y), [1, 2], [3])],
        [0],
        [3],
    )
    with pytest.raises(RuntimeError):
        plan.run([1])
    assert len(refs) == 1
    assert refs[0]() is None


# --- order -------------------------------------------------------------------------------


def test_default_order_is_node_index_order() -> None:
    order: list[int] = []

    def record(i: int) -> Any:
        def node(*args: Any) -> int:
            order.append(i)
            return i

        return node

    # Node i reads node (i // 2)'s output (or the input): index order is topological, but
    # many nodes are ready at once.
    n = 40
    nodes = [(record(i), [0 if i == 0 else (i // 2) + 1], [i + 1]) for i in range(n)]
    plan = Plan(n + 1, nodes, [0], [])
    plan.run([None])
    assert order == list(range(n))


def test_order_runs_producers_first_when_index_order_is_not_topological() -> None:
    order: list[int] = []

    def first(x: Any) -> None:
        order.append(0)

    def second(x: Any) -> Any:
        order.append(1)
        return x

    plan = Plan(
        3,
        [(first, [1], []), (second, [0], [1])],
        [0],
        [],
    )
    plan.run([1])
    assert order == [1, 0]


def test_priorities_order_ready_nodes_of_a_concurrent_plan() -> None:
    order: list[int] = []

    def record(i: int) -> Any:
        def node(*args: Any) -> int:
            order.append(i)
            return i

        return node

    def make(last_mode: str) -> Plan:
        # Nodes 0-3 are independent; node 4 has the highest priority but needs node 0.
        return Plan(
            3,
            [
                (record(0), [0], [1]),
                (record(1), [0], []),
                (record(2), [0], []),
                (record(3), [0], []),
                (Call(record(4), last_mode), [1], [2]),
            ],
            [0],
            [2],
            priorities=[0, 5, 1, 5, 9],
        )

    concurrent = make("thread")
    assert concurrent.concurrent and concurrent.prioritized
    assert concurrent.run([None], workers=1) == [4]
    assert order == [1, 3, 2, 0, 4]
    # All inline: one node runs at a time, so priorities are ignored (program order).
    order.clear()
    inline = make("inline")
    assert not inline.concurrent and not inline.prioritized
    assert inline.run([None]) == [4]
    assert order == [0, 1, 2, 3, 4]


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        pytest.param(
            (2, [(identity, [5], [1])], [0], [1]),
            {},
            r"node 0 input 0: slot 5 is out of range \[0, 2\)",
            id="node-input-out-of-range",
        ),
        pytest.param(
            (2, [(identity, [-2], [1])], [0], [1]),
            {},
            r"node 0 input 0: slot -2 is out of range",
            id="node-input-negative",
        ),
        pytest.param(
            (2, [(identity, [0], [2])], [0], []),
            {},
            r"node 0 output 0: slot 2 is out of range",
            id="node-output-out-of-range",
        ),
        pytest.param(
            (2, [(identity, [0], [-1])], [0], []),
            {},
            r"node 0 output 0: slot -1 is out of range",
            id="node-output-absent",
        ),
        pytest.param(
            (2, [], [2], []),
            {},
            r"input_slots\[0\]: slot 2 is out of range",
            id="input-out-of-range",
        ),
        pytest.param(
            (2, [], [0], [9]),
            {},
            r"output_slots\[0\]: slot 9 is out of range",
            id="output-out-of-range",
        ),
        pytest.param(
            (2, [], [], []),
            {"constants": [(7, "c")]},
            r"constants\[0\]: slot 7 is out of range",
            id="constant-out-of-range",
        ),
        pytest.param(
            (2, [(identity, [0], [1])], [0, 1], []),
            {},
            r"slot 1 is written twice: by input_slots\[1\] and by node 0",
            id="input-and-node",
        ),
        pytest.param(
            (3, [(identity, [0], [1]), (identity, [0], [2, 1])], [0], []),
            {},
            r"slot 1 is written twice: by node 0 and by node 1",
            id="two-nodes",
        ),
        pytest.param(
            (1, [], [0], []),
            {"constants": [(0, 1)]},
            r"slot 0 is written twice: by input_slots\[0\] and by constants\[0\]",
            id="input-and-constant",
        ),
        pytest.param((1, [], [0, 0], []), {}, r"slot 0 is written twice", id="input-twice"),
        pytest.param(
            (3, [(identity, [2], [1])], [0], []),
            {},
            r"node 0 input 0 reads slot 2, which nothing writes",
            id="unwritten-read",
        ),
        pytest.param(
            (3, [(identity, [0], [1])], [0], [2]),
            {},
            r"output_slots\[0\] reads slot 2, which nothing writes",
            id="unwritten-output",
        ),
        pytest.param(
            (3, [(identity, [0, 2], [1]), (identity, [1], [2])], [0], []),
            {},
            r"cycle: node 0 -> node 1 -> node 0",
            id="cycle",
        ),
        pytest.param(
            (2, [(identity, [1], [1])], [], []), {}, r"cycle: node 0 -> node 0", id="self-loop"
        ),
        pytest.param(
            (2, [(identity, [0], [1])], [0], []),
            {"priorities": [1, 2]},
            r"priorities has 2 entries, expected one per node \(1\)",
            id="priorities-length",
        ),
        pytest.param(
            (2, [(42, [0], [1])], [0], []),
            {},
            r"node 0: 'int' object is not callable",
            id="not-callable",
        ),
        pytest.param(
            (-1, [], [], []),
            {},
            r"n_slots must be between 0 and \d+, got -1",
            id="negative-n-slots",
        ),
        pytest.param(
            (2**70, [], [], []),
            {},
            r"n_slots: 1180591620717411303424 is out of range",
            id="huge-n-slots",
        ),
        pytest.param(
            ("3", [], [], []), {}, r"n_slots: expected an int, got 'str'", id="str-n-slots"
        ),
        pytest.param(
            (2, [(identity, [2**64], [1])], [0], []),
            {},
            r"node 0 input 0: 18446744073709551616 is out of range",
            id="huge-slot",
        ),
        pytest.param(
            (2, [(identity, [0.0], [1])], [0], []),
            {},
            r"node 0 input 0: expected an int, got 'float'",
            id="float-slot",
        ),
        pytest.param(
            (2, [(identity, [0])], [0], []),
            {},
            r"node 0: expected an \(op, .*\) tuple, got a tuple of length 2",
            id="short-node",
        ),
        pytest.param(
            (2, [identity], [0], []),
            {},
            r"node 0: expected an \(op, input_slots, output_slots\) tuple, got 'function'",
            id="bare-callable",
        ),
        pytest.param(
            (2, 5, [0], []), {}, r"nodes: expected a list, got 'int'", id="nodes-not-a-list"
        ),
        pytest.param(
            (2, [(identity, "0", [1])], [0], []),
            {},
            r"node 0: expected a list, got 'str'",
            id="slots-as-str",
        ),
        pytest.param(
            (2, [], [0], []),
            {"constants": [0]},
            r"constants\[0\]: expected a \(slot, value\) tuple, got 'int'",
            id="bad-constant",
        ),
        pytest.param(
            (2, [], [0], []),
            {"priorities": ["high"]},
            r"priorities\[0\]: expected an int, got 'str'",
            id="bad-priority",
        ),
    ],
)
def test_validation_errors(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(KernelError, match=message):
        Plan(*args, **kwargs)


def test_cycle_message_names_only_nodes_on_the_cycle() -> None:
    # Node 0 feeds the cycle 1 -> 2 -> 1; node 3 hangs off it.
    with pytest.raises(KernelError, match=r"cycle: node 1 -> node 2 -> node 1$"):
        Plan(
            6,
            [
                (identity, [0], [1]),
                (max, [1, 4], [2]),
                (lambda x: (x, x), [2], [3, 4]),
                (identity, [3], [5]),
            ],
            [0],
            [5],
        )


def test_wrong_number_of_inputs() -> None:
    plan = Plan(2, [(operator.add, [0, 1], [])], [0, 1], [])
    with pytest.raises(KernelError, match=r"run\(\) got 1 inputs, expected 2"):
        plan.run([1])
    with pytest.raises(KernelError, match=r"run\(\) got 3 inputs, expected 2"):
        plan.run([1, 2, 3])


def test_run_inputs_must_be_a_sequence() -> None:
    plan = Plan(1, [], [0], [0])
    with pytest.raises(TypeError):
        plan.run(5)  # type: ignore[arg-type]
    assert plan.run((9,)) == [9]


# --- liveness and references -------------------------------------------------------------


def test_intermediate_is_released_after_its_last_use() -> None:
    refs: list[weakref.ref[Box]] = []
    seen_dead = []

    def make(x: Any) -> Box:
        box = Box(x)
        refs.append(weakref.ref(box))
        return box

    def use(box: Box) -> int:
        return int(box.value) + 1

    def check(x: int) -> int:
        seen_dead.append(refs[0]() is None)
        return x

    plan = Plan(4, [(make, [0], [1]), (use, [1], [2]), (check, [2], [3])], [0], [3])
    assert plan.run([1]) == [2]
    assert seen_dead == [True]


def test_intermediate_lives_until_its_last_reader() -> None:
    refs: list[weakref.ref[Box]] = []
    alive_at = []

    def make(x: Any) -> Box:
        box = Box(x)
        refs.append(weakref.ref(box))
        return box

    def probe(*args: Any) -> int:
        alive_at.append(refs[0]() is not None)
        return 0

    # Slot 1 is read by nodes 1 and 3; node 2 runs in between.
    plan = Plan(
        6,
        [
            (make, [0], [1]),
            (probe, [1], [2]),
            (probe, [2], [3]),
            (probe, [1, 3], [4]),
            (probe, [4], [5]),
        ],
        [0],
        [5],
    )
    plan.run([1])
    assert alive_at == [True, True, True, False]


def test_output_slots_are_not_released() -> None:
    refs: list[weakref.ref[Box]] = []

    def make(x: Any) -> Box:
        box = Box(x)
        refs.append(weakref.ref(box))
        return box

    plan = Plan(3, [(make, [0], [1]), (lambda b: b.value, [1], [2])], [0], [1, 2])
    box, value = plan.run([5])
    assert refs[0]() is box
    assert value == 5


def test_unread_outputs_are_released_at_once() -> None:
    refs: list[weakref.ref[Box]] = []
    seen_dead = []

    def make(x: Any) -> tuple[Box, int]:
        box = Box(x)
        refs.append(weakref.ref(box))
        return box, x

    def check(x: int) -> int:
        seen_dead.append(refs[0]() is None)
        return x

    plan = Plan(4, [(make, [0], [1, 2]), (check, [2], [3])], [0], [3])
    assert plan.run([1]) == [1]
    assert seen_dead == [True]


def test_no_reference_leaks() -> None:
    value, constant = Box(), Box()
    error = ValueError("x")

    def fail(*args: Any) -> Any:
        raise error

    ok = Plan(
        5,
        [(lambda a, c: (a, c), [0, 1], [2, 3]), (lambda a, c, n: [a, c], [2, 3, -1], [4])],
        [0],
        [4, 2],
        constants=[(1, constant)],
    )
    bad = Plan(3, [(identity, [0], [1]), (fail, [1, 2], [])], [0], [], constants=[(2, constant)])
    gc.collect()
    before = (sys.getrefcount(value), sys.getrefcount(constant), sys.getrefcount(None))
    for _ in range(1000):
        ok.run([value])
        with contextlib.suppress(ValueError):
            bad.run([value])
    error.__traceback__ = None
    gc.collect()
    after = (sys.getrefcount(value), sys.getrefcount(constant), sys.getrefcount(None))
    assert after[:2] == before[:2]
    # None is shared with the rest of the process: only look for a leak on every run.
    assert abs(after[2] - before[2]) < 500


# --- re-entrancy, threads, GC ------------------------------------------------------------


def test_callable_may_run_another_plan() -> None:
    inner = Plan(3, [(operator.mul, [0, 1], [2])], [0, 1], [2])
    outer = Plan(
        3,
        [(lambda x: inner.run([x, x])[0], [0], [1]), (lambda y: inner.run([y, 2])[0], [1], [2])],
        [0],
        [2],
    )
    assert outer.run([3]) == [18]


def test_callable_may_run_its_own_plan_recursively() -> None:
    def factorial(n: int) -> int:
        return 1 if n <= 1 else n * plan.run([n - 1])[0]

    plan = Plan(2, [(factorial, [0], [1])], [0], [1])
    assert plan.run([20]) == [2432902008176640000]


def test_unbounded_recursion_raises_recursion_error() -> None:
    def forever(n: int) -> Any:
        return plan.run([n + 1])[0]

    plan = Plan(2, [(forever, [0], [1])], [0], [1])
    with pytest.raises(RecursionError):
        plan.run([0])


def test_threads_run_the_same_plan() -> None:
    n_threads, n_runs, length = 4, 200, 30
    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)

    def step(x: int, k: int) -> int:
        return x + k

    nodes = [(step, [i, length + 1], [i + 1]) for i in range(length)]
    plan = Plan(length + 2, nodes, [0, length + 1], [length, 0])
    barrier = threading.Barrier(n_threads)
    failures: list[BaseException] = []
    results: dict[int, list[list[int]]] = {}

    def worker(t: int) -> None:
        try:
            barrier.wait()
            results[t] = [plan.run([t * 1000 + r, t + 1]) for r in range(n_runs)]
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous_interval)
    assert failures == []
    for t in range(n_threads):
        assert results[t] == [
            [t * 1000 + r + length * (t + 1), t * 1000 + r] for r in range(n_runs)
        ]


def test_plan_in_a_reference_cycle_through_its_callable_is_collected() -> None:
    def make() -> weakref.ref[Box]:
        sentinel = Box()
        holder: list[Plan] = []

        def node(x: Any) -> Any:
            return (sentinel, holder, x)

        holder.append(Plan(2, [(node, [0], [1])], [0], [1]))
        return weakref.ref(sentinel)

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        ref = make()
        assert ref() is not None, "the cycle should keep the sentinel alive until collected"
        gc.collect()
        assert ref() is None
    finally:
        if was_enabled:
            gc.enable()


def test_plan_in_a_reference_cycle_through_a_constant_is_collected() -> None:
    def make() -> weakref.ref[Box]:
        sentinel = Box()
        holder: list[Any] = [sentinel]
        holder.append(Plan(1, [], [], [0], constants=[(0, holder)]))
        return weakref.ref(sentinel)

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        ref = make()
        assert ref() is not None
        gc.collect()
        assert ref() is None
    finally:
        if was_enabled:
            gc.enable()


# --- property tests ----------------------------------------------------------------------


@st.composite
def random_plans(draw: st.DrawFn) -> dict[str, Any]:
    """A random valid plan: a DAG in a random topological order with random slot numbers."""
    n_inputs = draw(st.integers(0, 3))
    n_constants = draw(st.integers(0, 2))
    n_nodes = draw(st.integers(0, 12))
    topo = draw(st.permutations(range(n_nodes)))
    available: list[int] = list(range(n_inputs + n_constants))  # logical slot ids
    node_inputs: dict[int, list[int]] = {}
    node_outputs: dict[int, list[int]] = {}
    next_slot = len(available)
    for node in topo:
        k = draw(st.integers(0, 3))
        node_inputs[node] = []
        for _ in range(k):
            present = bool(available) and draw(st.booleans())
            node_inputs[node].append(draw(st.sampled_from(available)) if present else -1)
        n_out = draw(st.integers(0, 3))
        node_outputs[node] = list(range(next_slot, next_slot + n_out))
        next_slot += n_out
        available.extend(node_outputs[node])
    n_slots = next_slot + draw(st.integers(0, 2))  # possibly some unused slots
    rename = draw(st.permutations(range(n_slots)))

    def slot(s: int) -> int:
        return -1 if s == -1 else rename[s]

    outputs = draw(st.lists(st.sampled_from(available), max_size=4)) if available else []
    priorities = draw(st.none() | st.lists(st.integers(-2, 2), min_size=n_nodes, max_size=n_nodes))
    return {
        "n_slots": n_slots,
        "nodes": [
            ([slot(s) for s in node_inputs[i]], [slot(s) for s in node_outputs[i]])
            for i in range(n_nodes)
        ],
        "input_slots": [slot(s) for s in range(n_inputs)],
        "constants": [(slot(n_inputs + c), 1000 + c) for c in range(n_constants)],
        "output_slots": [slot(s) for s in outputs],
        "priorities": priorities,
    }


def node_value(node: int, args: tuple[Any, ...]) -> int:
    acc = node + 1
    for a in args:
        acc = (acc * 31 + (7 if a is None else a)) % 1_000_003
    return acc


def reference_run(spec: dict[str, Any], inputs: list[int], concurrent: bool) -> tuple[list[int], list[int]]:
    """A straightforward Python model of the kernel's semantics: (outputs, execution order).
    Priorities order only a ``concurrent`` plan's ready nodes."""
    nodes = spec["nodes"]
    values: dict[int, Any] = dict(zip(spec["input_slots"], inputs, strict=True))
    values.update(spec["constants"])
    writer = {s: i for i, (_, outs) in enumerate(nodes) for s in outs}
    waiting = [len({s for s in ins if s in writer}) for ins, _ in nodes]
    priorities = (concurrent and spec["priorities"]) or [0] * len(nodes)
    ready = [(-priorities[i], i) for i in range(len(nodes)) if waiting[i] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(i)
        ins, outs = nodes[i]
        result = node_value(i, tuple(None if s == -1 else values[s] for s in ins))
        for j, s in enumerate(outs):
            values[s] = result if len(outs) == 1 else result + j
        for j, (other_ins, _) in enumerate(nodes):
            produced = len(set(other_ins) & set(outs))
            if produced:
                waiting[j] -= produced
                if waiting[j] == 0:
                    heapq.heappush(ready, (-priorities[j], j))
    return [values[s] for s in spec["output_slots"]], order


def make_callable(node: int, n_outputs: int, order: list[int]) -> Any:
    def call(*args: Any) -> Any:
        order.append(node)
        value = node_value(node, args)
        if n_outputs <= 1:
            return value
        return tuple(value + j for j in range(n_outputs))

    return call


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=random_plans(), concurrent=st.booleans(), data=st.data())
def test_random_plans_match_the_reference_model(spec: dict[str, Any], concurrent: bool, data: st.DataObject) -> None:
    order: list[int] = []
    nodes = [(make_callable(i, len(outs), order), ins, outs) for i, (ins, outs) in enumerate(spec["nodes"])]
    priorities = spec["priorities"]
    if concurrent:  # one more node, on the pool and unconnected: the plan may overlap work
        nodes.append((Call(lambda: None, "thread"), [], []))
        priorities = None if priorities is None else [*priorities, 0]
    plan = Plan(
        spec["n_slots"],
        nodes,
        spec["input_slots"],
        spec["output_slots"],
        constants=spec["constants"],
        priorities=priorities,
    )
    assert plan.concurrent is concurrent
    inputs = data.draw(
        st.lists(
            st.integers(0, 100),
            min_size=len(spec["input_slots"]),
            max_size=len(spec["input_slots"]),
        )
    )
    expected_outputs, expected_order = reference_run(spec, inputs, concurrent)
    for _ in range(2):  # a second run reuses the constants
        order.clear()
        assert plan.run(inputs, workers=1) == expected_outputs
        assert order == expected_order
    if not (concurrent and spec["priorities"]) and all(
        s == -1 or s not in {o for _, outs in spec["nodes"][i:] for o in outs}
        for i, (ins, _) in enumerate(spec["nodes"])
        for s in ins
    ):
        assert expected_order == list(range(len(spec["nodes"])))


def returning_n_values(k: int) -> Any:
    """A callable returning something a node with `k` output slots accepts."""
    return lambda *args: tuple(range(k)) if k > 1 else 0


@settings(max_examples=300, deadline=None)
@given(
    n_slots=st.integers(-2, 6),
    nodes=st.lists(
        st.tuples(
            st.lists(st.integers(-3, 7), max_size=3), st.lists(st.integers(-3, 7), max_size=3)
        ),
        max_size=5,
    ),
    input_slots=st.lists(st.integers(-3, 7), max_size=3),
    output_slots=st.lists(st.integers(-3, 7), max_size=3),
    constants=st.lists(st.integers(-3, 7), max_size=2),
    priorities=st.none() | st.lists(st.integers(-(2**63), 2**63 - 1), max_size=6),
)
def test_arbitrary_arguments_raise_only_kernel_error(
    n_slots: int,
    nodes: list[tuple[list[int], list[int]]],
    input_slots: list[int],
    output_slots: list[int],
    constants: list[int],
    priorities: list[int] | None,
) -> None:
    callables = [returning_n_values(len(outs)) for _, outs in nodes]
    try:
        plan = Plan(
            n_slots,
            [(c, ins, outs) for c, (ins, outs) in zip(callables, nodes, strict=True)],
            input_slots,
            output_slots,
            constants=[(s, s) for s in constants],
            priorities=priorities,
        )
    except KernelError:
        return
    result = plan.run(list(range(len(input_slots))))
    assert len(result) == len(output_slots)


# ---------------------------------------------------------------------- error handlers
def test_error_handler_replaces_the_exception_and_chains_it() -> None:
    class Wrapped(Exception):
        pass

    def fail(x):
        raise KeyError(x)

    def handler(exc: Exception) -> BaseException:
        wrapped = Wrapped(f"wrapped {exc!r}")
        wrapped.__cause__ = exc
        return wrapped

    plan = Plan(2, [(fail, [0], [1])], [0], [1], error_handlers=[handler])
    with pytest.raises(Wrapped) as info:
        plan.run([7])
    assert isinstance(info.value.__cause__, KeyError)
    # without a handler the exception passes through unchanged
    with pytest.raises(KeyError):
        Plan(2, [(fail, [0], [1])], [0], [1], error_handlers=[None]).run([7])


def test_error_handler_is_not_called_for_base_exceptions_or_success() -> None:
    calls = []

    def interrupt(x):
        raise KeyboardInterrupt

    def handler(exc):
        calls.append(exc)
        return RuntimeError("no")

    assert Plan(2, [(lambda x: x + 1, [0], [1])], [0], [1], error_handlers=[handler]).run([1]) == [2]
    with pytest.raises(KeyboardInterrupt):
        Plan(2, [(interrupt, [0], [1])], [0], [1], error_handlers=[handler]).run([1])
    assert calls == []


def test_a_failing_handler_raises_its_own_exception() -> None:
    def fail(x):
        raise ValueError(x)

    def broken(exc):
        raise TypeError("handler broke")

    with pytest.raises(TypeError, match="handler broke"):
        Plan(2, [(fail, [0], [1])], [0], [1], error_handlers=[broken]).run([1])


def test_error_handlers_are_validated() -> None:
    with pytest.raises(KernelError, match="error_handlers"):
        Plan(2, [(abs, [0], [1])], [0], [1], error_handlers=[])
    with pytest.raises(KernelError, match="error_handlers"):
        Plan(2, [(abs, [0], [1])], [0], [1], error_handlers=[42])
