"""The op registry: every op is defined once, and both executors run what it defines.

Each value op runs on both executors from a one-node graph and must give Python's
value; every op with bodies, calls or wires names the tests that run it through real
workflows. A new op without an example here fails :func:`test_every_op_is_exercised`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx_ir as ir
import pytest

from namu.errors import IRVerificationError, TaskError
from namu.ir.opsets import NAMU_DOMAIN, ONNX_DOMAIN, PARTITION_DOMAIN, WORKFLOW_DOMAIN
from namu.ops import ANY_OP, definition, lookup, op, registered
from namu.ops.registry import _REGISTRY
from namu.passes.effects import CANNOT_RAISE, CONTROL_FLOW, FRESH_MUTABLE, PURE_BUILTINS
from namu.runtime.executors import KernelExecutor, ReferenceExecutor

S, I, STRS, T = ir.AttrString, ir.AttrInt64, ir.AttrStrings, ir.AttrTensor


def _scalar(value: Any) -> ir.TensorProtocol:
    if isinstance(value, str):
        return ir.StringTensor(np.array([value.encode()], dtype=object).reshape(()), shape=ir.Shape([]))
    return ir.Tensor(np.array(value))


#: (domain, op_type, attributes, inputs, Python's value of the op on them)
def _task_failure(exc: Exception) -> TaskError:
    """``exc`` as a run reports a task raising it."""
    failure = TaskError("task 't' failed", task="t")
    failure.__cause__ = exc
    return failure


EXAMPLES: list[tuple[str, str, list[ir.Attr], list[Any], Any]] = [
    (ONNX_DOMAIN, "Constant", [T("value", _scalar(7))], [], 7),
    (NAMU_DOMAIN, "None", [], [], None),
    (ONNX_DOMAIN, "Add", [], [2, 3], 5),
    (ONNX_DOMAIN, "Sub", [], [2, 3], -1),
    (ONNX_DOMAIN, "Mul", [], [2**70, 3], 3 * 2**70),
    (ONNX_DOMAIN, "Neg", [], [2.5], -2.5),
    (ONNX_DOMAIN, "Div", [], [-7, 2], -3),
    (ONNX_DOMAIN, "Pow", [], [2, 10], 1024),
    (ONNX_DOMAIN, "Mod", [], [-7, 3], 2),
    (ONNX_DOMAIN, "Cast", [I("to", ir.DataType.DOUBLE.value)], [3], 3.0),
    (ONNX_DOMAIN, "Equal", [], [1, 1.0], True),
    (ONNX_DOMAIN, "Less", [], [1, 2], True),
    (ONNX_DOMAIN, "LessOrEqual", [], [2, 2], True),
    (ONNX_DOMAIN, "Greater", [], [1, 2], False),
    (ONNX_DOMAIN, "GreaterOrEqual", [], [1, 2], False),
    (ONNX_DOMAIN, "Not", [], [False], True),
    (ONNX_DOMAIN, "And", [], [True, False], False),
    (ONNX_DOMAIN, "Or", [], [False, True], True),
    (ONNX_DOMAIN, "Identity", [], ["x"], "x"),
    (ONNX_DOMAIN, "StringConcat", [], ["na", "mu"], "namu"),
    (ONNX_DOMAIN, "SequenceConstruct", [], [1, 2], [1, 2]),
    (ONNX_DOMAIN, "SequenceEmpty", [], [], []),
    (ONNX_DOMAIN, "SequenceLength", [], [[1, 2, 3]], 3),
    (ONNX_DOMAIN, "SequenceAt", [], [[1, 2, 3], -1], 3),
    (NAMU_DOMAIN, "Arith", [S("op", "truediv")], [1, 4], 0.25),
    (NAMU_DOMAIN, "Compare", [S("op", "ne")], [1, 1.5], True),
    (NAMU_DOMAIN, "Truth", [], [[]], False),
    (NAMU_DOMAIN, "IsNone", [], [None], True),
    (NAMU_DOMAIN, "Contains", [], [[1, 2], 2], True),
    (NAMU_DOMAIN, "Identity", [], [(1,)], (1,)),
    (NAMU_DOMAIN, "Format", [S("template", "{}-{}")], [1, "a"], "1-a"),
    (NAMU_DOMAIN, "GetAttr", [S("name", "real")], [3 + 4j], 3.0),
    (NAMU_DOMAIN, "List", [], [1, "a"], [1, "a"]),
    (NAMU_DOMAIN, "Tuple", [], [1, "a"], (1, "a")),
    (NAMU_DOMAIN, "Dict", [STRS("keys", ["a", "b"])], [1, 2], {"a": 1, "b": 2}),
    (NAMU_DOMAIN, "Len", [], ["abc"], 3),
    (NAMU_DOMAIN, "ToList", [], [{"a": 1}], ["a"]),
    (NAMU_DOMAIN, "GetItem", [], [{"a": 1}, "a"], 1),
    (NAMU_DOMAIN, "Unpack", [], [[1, 2]], (1, 2)),
    (NAMU_DOMAIN, "Arith", [S("op", "mod")], ["%s-%d", ("a", 3)], "a-3"),
    (NAMU_DOMAIN, "Compare", [S("op", "eq")], [1, "1"], False),
    (NAMU_DOMAIN, "Slice", [], ["namu", None, None, -1], "uman"),
    (NAMU_DOMAIN, "Set", [], [1, 2, 1], {1, 2}),
    (NAMU_DOMAIN, "Builtin", [S("name", "sorted"), STRS("kwnames", ["reverse"])], [[2, 3, 1], True], [3, 2, 1]),
    (NAMU_DOMAIN, "IsInstance", [STRS("types", ["int", "str"])], ["a"], True),
    (NAMU_DOMAIN, "CallMethod", [S("name", "split"), STRS("kwnames", ["sep"])], ["a,b", ","], ["a", "b"]),
    (NAMU_DOMAIN, "Mutated", [S("name", "pop")], [[1, 2, 3]], ([1, 2], 3)),
    (NAMU_DOMAIN, "ExceptionMatches", [STRS("types", ["builtins:LookupError"])], [_task_failure(KeyError("k"))], True),
]
#: ops with bodies, task calls or wires: the tests running them in real workflows
STRUCTURAL: dict[tuple[str, str], str] = {
    (ONNX_DOMAIN, "If"): "tests/frontend/test_control_flow.py",
    (NAMU_DOMAIN, "If"): "tests/frontend/test_control_flow.py",
    (ONNX_DOMAIN, "Loop"): "tests/frontend/test_control_flow.py",
    (NAMU_DOMAIN, "Loop"): "tests/frontend/test_control_flow.py",
    (NAMU_DOMAIN, "Map"): "tests/frontend/test_control_flow.py",
    (NAMU_DOMAIN, "Task"): "tests/runtime/test_tasks.py",
    (NAMU_DOMAIN, "Gate"): "tests/runtime/test_gates.py",
    (NAMU_DOMAIN, "Fused"): "tests/passes/test_fuse_tasks.py",
    (NAMU_DOMAIN, "Send"): "tests/runtime/test_partitions.py",
    (NAMU_DOMAIN, "Recv"): "tests/runtime/test_partitions.py",
    (NAMU_DOMAIN, "Scatter"): "tests/federated/test_partition.py",
    (NAMU_DOMAIN, "Gather"): "tests/federated/test_partition.py",
    (NAMU_DOMAIN, "Handle"): "tests/federated/test_partition.py",
    (NAMU_DOMAIN, "Slot"): "tests/passes/test_resolve_slots.py",
    **dict.fromkeys([(NAMU_DOMAIN, op) for op in ("Try", "Caught", "Raise")], "tests/frontend/test_try_except.py"),
    (WORKFLOW_DOMAIN, ANY_OP): "tests/passes/test_inline_functions.py",
    (NAMU_DOMAIN, "CallFunction"): "tests/frontend/test_recursion.py",
    (PARTITION_DOMAIN, ANY_OP): "tests/runtime/test_partitions.py",
    **dict.fromkeys(
        [(NAMU_DOMAIN, f"Agent{step}") for step in ("Start", "Observe", "Pending", "Route", "UnknownTool", "Record", "Going", "Finish")],
        "tests/agents/test_agent_runs.py",
    ),
}
EXECUTORS = [ReferenceExecutor, KernelExecutor]


def _run(executor: type, domain: str, op_type: str, attributes: list[ir.Attr], args: list[Any]) -> Any:
    inputs = [ir.Value(name=f"x{i}") for i in range(len(args))]
    n_outputs = len(args[0]) if op_type == "Unpack" else 2 if op_type == "Mutated" else 1
    node = ir.Node(domain, op_type, inputs, attributes=attributes, num_outputs=n_outputs)
    graph = ir.Graph(inputs, list(node.outputs), nodes=[node], opset_imports={"": 21, "namu": 1})
    outputs = executor({}).prepare(graph)(list(args))
    return tuple(outputs) if n_outputs > 1 else outputs[0]


def test_every_op_is_exercised() -> None:
    covered = {(d, o) for d, o, *_ in EXAMPLES} | set(STRUCTURAL)
    defined = {d.key for d in registered()}
    assert defined == covered, f"ops without an example here: {defined - covered}; examples of no op: {covered - defined}"


@pytest.mark.parametrize("executor", EXECUTORS, ids=lambda e: e.name)
@pytest.mark.parametrize(("domain", "op_type", "attributes", "args", "expected"), EXAMPLES, ids=lambda x: x if isinstance(x, str) else "")
def test_both_executors_compute_pythons_value(
    executor: type, domain: str, op_type: str, attributes: list[ir.Attr], args: list[Any], expected: Any
) -> None:
    result = _run(executor, domain, op_type, attributes, args)
    assert result == expected and type(result) is type(expected)


def test_every_op_has_a_type_rule_and_a_builder() -> None:
    for d in registered():
        assert callable(d.types) and callable(d.build), d.key
        assert d.summary, d.key


@pytest.mark.parametrize("executor", EXECUTORS, ids=lambda e: e.name)
def test_builtin_errors_keep_pythons_type_and_name_the_line(executor: type) -> None:
    with pytest.raises(ZeroDivisionError) as caught:
        _run(executor, NAMU_DOMAIN, "Arith", [S("op", "floordiv")], [1, 0])
    assert any("while evaluating Arith" in note for note in caught.value.__notes__)


def test_an_unknown_op_is_a_located_error() -> None:
    node = ir.Node("com.example", "Frobnicate", [], num_outputs=1)
    node.metadata_props["namu.span"] = "wf.py:3:4"
    assert lookup("com.example", "Frobnicate") is None
    with pytest.raises(IRVerificationError, match=r"wf.py:3:4: op com.example::Frobnicate is not supported"):
        definition(node)


def test_effect_classes_are_read_from_the_registry() -> None:
    assert (ONNX_DOMAIN, "Add") in CANNOT_RAISE and (NAMU_DOMAIN, "Arith") not in CANNOT_RAISE
    assert (NAMU_DOMAIN, "Arith") in PURE_BUILTINS and (NAMU_DOMAIN, "GetAttr") not in PURE_BUILTINS
    assert (NAMU_DOMAIN, "ToList") in FRESH_MUTABLE and (NAMU_DOMAIN, "ToList") not in PURE_BUILTINS
    assert CONTROL_FLOW == {(d, o) for d in (ONNX_DOMAIN, NAMU_DOMAIN) for o in ("If", "Loop")} | {(NAMU_DOMAIN, "Map"), (NAMU_DOMAIN, "Try")}


def test_a_new_op_is_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example of docs/architecture.md: register an op, and both executors, the type
    checker, the effect classes and fold-constants know it."""
    from namu.ir.types import ValueType
    from namu.ops import registry
    from namu.ops.spans import with_span

    monkeypatch.setattr(registry, "_REGISTRY", dict(_REGISTRY))
    monkeypatch.setattr(registry, "_generation", registry._generation)  # undo: the classes rebuild

    @op("com.example", "Hypot", "the length of the vector (a, b)", types=lambda _t, _n, _a: [ValueType.float()], pure=True, fold="evaluate")
    def hypot(node: ir.Node, _env: Any) -> Any:
        return with_span(math.hypot, node), None

    for executor in EXECUTORS:
        assert _run(executor, "com.example", "Hypot", [], [3, 4]) == 5.0
    assert ("com.example", "Hypot") in PURE_BUILTINS and ("com.example", "Hypot") not in FRESH_MUTABLE
    monkeypatch.undo()
    assert ("com.example", "Hypot") not in PURE_BUILTINS


def test_every_kernel_lowering_named_exists() -> None:
    from namu.runtime.executors import _LOWERINGS

    assert {d.kernel for d in registered() if d.kernel} == set(_LOWERINGS)


def test_an_awaited_op_is_awaited_by_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """An op waiting on the outside world (a wire, an LLM) gives an awaitable: the kernel
    awaits it on the run's event loop; the reference calls its Python meaning."""
    import asyncio

    from namu.ir.types import ValueType
    from namu.ops import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(_REGISTRY))
    monkeypatch.setattr(registry, "_generation", registry._generation)
    awaited: list[int] = []

    def later(_node: ir.Node, _env: Any) -> Any:
        async def call(x: int) -> int:
            await asyncio.sleep(0)
            awaited.append(x)
            return x + 1

        return call

    @op("com.example", "Later", "input 0 + 1, after a pause", types=lambda _t, _n, _a: [ValueType.int()], awaited=later)
    def now(node: ir.Node, _env: Any) -> Any:
        return (lambda x: x + 1), None

    assert _run(ReferenceExecutor, "com.example", "Later", [], [1]) == 2 and awaited == []
    assert _run(KernelExecutor, "com.example", "Later", [], [1]) == 2 and awaited == [1]
