"""fold-constants: ops and pure task calls over constants become constants; runs unchanged."""

from __future__ import annotations

import hashlib
import math
import textwrap
from typing import Any

import onnx
import onnx_ir as ir
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import namu
from namu.compiler import lower
from namu.ir import serde
from namu.ir.constants import constant_of, is_constant
from namu.ir.types import type_of
from namu.passes import pipeline
from namu.runtime.user_code import import_path
from tests.passes.conftest import canonical, lowered, parse, run_model, run_pass

EXECUTORS = ("kernel", "reference")

SCALE = 3
DEBUG = False
NAMES = ("a", "b")
LIMITS = {"lo": 1, "hi": 5}
CALLS: list[int] = []


@namu.task(pure=True)
def square(x: int) -> int:
    return x * x


@namu.task(pure=True)
def scaled(x: int, factor: int = 2) -> int:
    return x * factor


@namu.task(pure=True)
def upto(n: int) -> list[int]:
    return list(range(n))


@namu.task(pure=True)
def nothing(x: int) -> None:
    return None


@namu.task(pure=True)
def explode(x: int) -> int:
    raise ValueError(f"explode {x}")


@namu.task(pure=True)
def grow(xs: list[int]) -> int:
    xs.append(len(xs))  # mutates its argument: the fold must work on a copy
    return len(xs)


@namu.task(pure=True)
async def asquare(x: int) -> int:
    return x * x


@namu.task
def record(x: int) -> int:
    CALLS.append(x)
    return x


@namu.workflow
def arithmetic(x: int) -> int:
    a = SCALE * 4 - 2
    b = a // 3 + a % 3
    c = square(b) + scaled(2, factor=SCALE)
    hi: int = LIMITS["hi"]
    if a > 5 and not DEBUG:
        x = x + c
    return record(x) + hi + len(NAMES) + len("abc" + "de")


@namu.workflow
def div_by_zero(x: int) -> int:
    zero = SCALE - 3
    return x + SCALE // zero


@namu.workflow
def pure_raises(x: int) -> int:
    return x + explode(SCALE)


@namu.workflow
def containers(x: int) -> int:
    xs = upto(SCALE)
    total = 0
    for v in xs:
        total = total + v * x
    ys = [1, 2, 3]
    return total + len(ys) + ys[1]


@namu.workflow
def nested(x: int, flag: bool) -> int:
    k = SCALE + 1
    if flag:
        y = x + k * 2
    else:
        y = x - k
    return y


@namu.workflow
def not_folded(x: int) -> int:
    a = asquare(SCALE)
    return a + x


def outcome(model: ir.Model, tasks: dict[str, Any], *args: Any, executor: str) -> tuple[str, Any]:
    """What running ``model`` gives: ("value", v) or ("error", "Type: message")."""
    try:
        value = run_model(model, tasks, *args, executor=executor)
    except Exception as exc:  # noqa: BLE001 - the outcome is compared, not raised
        cause = exc.__cause__ if isinstance(exc, namu.TaskError) and exc.__cause__ is not None else exc
        return "error", f"{type(cause).__name__}: {cause}"
    return "value", (type(value), value)


def assert_same_behaviour(before: ir.Model, after: ir.Model, tasks: dict[str, Any], *args: Any) -> tuple[str, Any]:
    """``before`` and ``after`` run alike on both executors (the reference running
    ``before`` is the oracle); returns that outcome."""
    expected = outcome(before, tasks, *args, executor="reference")
    for executor in EXECUTORS:
        assert outcome(before, tasks, *args, executor=executor) == expected, f"before, {executor}"
        assert outcome(after, tasks, *args, executor=executor) == expected, f"after, {executor}"
    return expected


def assert_valid(model: ir.Model) -> None:
    onnx.checker.check_model(serde.to_proto(model), full_check=True)


def fold(workflow: namu.Workflow) -> tuple[ir.Model, ir.Model, dict[str, Any]]:
    """The workflow lowered up to fold-constants, and a copy after it."""
    before, tasks = lowered(workflow, upto="fold-constants")
    after, _ = lowered(workflow, upto="fold-constants")
    assert run_pass("fold-constants", after, tasks=tasks).modified
    return before, after, tasks


def ops(graph: ir.Graph) -> list[str]:
    return [f"{n.domain}::{n.op_type}" if n.domain else n.op_type for n in ir.traversal.RecursiveGraphIterator(graph)]


def value_of(value: ir.Value) -> Any:
    producer = value.producer()
    assert producer is not None
    const = constant_of(producer)
    assert is_constant(const), f"{value.name} is computed by {producer.op_type}, not a constant"
    return const


# ------------------------------------------------------------------ builtin ops
def test_folds_builtin_ops_with_the_runtime_meanings() -> None:
    model = parse(
        """
        g (int64 x) => (int64 add, int64 div, int64 mod, int64 pw, int64 neg, bool lt, bool ne,
                        bool both, double cast, string cat, bool cmp, bool truth, int64 n,
                        int64 item, int64 at, int64 count, int64 key, int64 u2, int64 nchars) {
          seven = Constant <value = int64 {7}> ()
          minus = Constant <value = int64 {-2}> ()
          half = Constant <value = double {0.5}> ()
          yes = Constant <value = bool {1}> ()
          s = Constant <value = string {"ab"}> ()
          add = Add(seven, minus)
          div = Div(seven, minus)
          mod = Mod <fmod = 0> (seven, minus)
          pw = Pow(minus, seven)
          neg = Neg(minus)
          lt = Less(minus, seven)
          eq = Equal(seven, minus)
          ne = Not(eq)
          both = And(yes, lt)
          cast = Cast <to = 11> (seven)
          cat = StringConcat(s, s)
          cmp = namu.Compare <op = "gt"> (seven, half)
          truth = namu.Truth(s)
          n = namu.Len(s)
          t = namu.Tuple(seven, minus)
          item = namu.GetItem(t, minus)
          seq = SequenceConstruct(seven, minus)
          at = SequenceAt(seq, minus)
          count = SequenceLength(seq)
          d = namu.Dict <keys = ["k"]> (seven)
          k = Constant <value = string {"k"}> ()
          key = namu.GetItem(d, k)
          u1, u2 = namu.Unpack(t)
          chars = namu.ToList(s)
          nchars = namu.Len(chars)
        }
        """
    )
    assert run_pass("fold-constants", model).modified
    got = {v.name: value_of(v) for v in model.graph.outputs}
    assert got == {
        "add": 5, "div": -3, "mod": -1, "pw": -128, "neg": 2, "lt": True, "ne": True, "both": True,
        "cast": 7.0, "cat": "abab", "cmp": True, "truth": True, "n": 2, "item": 7, "at": 7,
        "count": 2, "key": 7, "u2": -2, "nchars": 2,
    }
    assert type(got["cast"]) is float and type(got["both"]) is bool
    types = {v.name: str(type_of(v)) for v in model.graph.outputs}
    assert types["cast"] == "float" and types["cat"] == "str" and types["item"] == "int"
    # constructors of constants stay as they are
    assert [n.op_type for n in model.graph if n.op_type in ("Tuple", "SequenceConstruct", "Dict")] == [
        "Tuple", "SequenceConstruct", "Dict"
    ]
    assert_valid(model)


def test_folds_chains_and_keeps_names_spans_and_unused_inputs() -> None:
    model = parse(
        """
        g (int64 x) => (int64 y) {
          a = Constant <value = int64 {2}> ()
          b = Mul(a, a)
          c = Add(b, a)
          y = Add(c, x)
        }
        """
    )
    for node in model.graph:
        node.metadata_props["namu.span"] = f"wf.py:{node.outputs[0].name}"
    run_pass("fold-constants", model)
    expected = parse(
        """
        g (int64 x) => (int64 y) {
          a = Constant <value = int64 {2}> ()
          b = Constant <value = int64 {4}> ()
          c = Constant <value = int64 {6}> ()
          y = Add(c, x)
        }
        """
    )
    assert canonical(model.graph) == canonical(expected.graph)
    assert [n.metadata_props["namu.span"] for n in model.graph] == ["wf.py:a", "wf.py:b", "wf.py:c", "wf.py:y"]


def test_graph_outputs_keep_their_names() -> None:
    model = parse(
        """
        g (int64 x) => (int64 y, int64 z) {
          a = Constant <value = int64 {2}> ()
          y = Neg(a)
          z = Identity(y)
        }
        """
    )
    run_pass("fold-constants", model)
    assert [v.name for v in model.graph.outputs] == ["y", "z"]
    assert [value_of(v) for v in model.graph.outputs] == [-2, -2]
    assert [n.op_type for n in model.graph] == ["Constant", "Constant", "Constant"]


def test_raising_ops_stay_so_the_run_raises_where_python_does() -> None:
    text = """
        g (int64 x) => (int64 a, int64 b, int64 c, int64 d) {
          one = Constant <value = int64 {1}> ()
          zero = Constant <value = int64 {0}> ()
          minus = Constant <value = int64 {-1}> ()
          a = Mod <fmod = 0> (one, zero)
          b = Div(one, zero)
          c = Pow(one, minus)
          t = namu.Tuple(one)
          five = Constant <value = int64 {5}> ()
          d = namu.GetItem(t, five)
        }
        """
    model = parse(text)
    assert not run_pass("fold-constants", model).modified
    assert canonical(model.graph) == canonical(parse(text).graph)


@pytest.mark.parametrize("workflow", [div_by_zero, pure_raises], ids=lambda w: w.name)
def test_a_fold_that_raises_leaves_the_error_to_the_run(workflow: namu.Workflow) -> None:
    before, tasks = lowered(workflow, upto="fold-constants")
    after, _ = lowered(workflow, upto="fold-constants")
    run_pass("fold-constants", after, tasks=tasks)
    kind, error = assert_same_behaviour(before, after, tasks, 4)
    assert kind == "error"
    assert error.split(":")[0] == outcome_of_python(workflow, 4).split(":")[0]


def outcome_of_python(workflow: namu.Workflow, *args: Any) -> str:
    try:
        workflow.fn(*args)
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"
    raise AssertionError("the workflow did not raise")


def test_values_beyond_limits_are_not_folded() -> None:
    model = parse(
        """
        g (int64 x) => (string big, int64 huge, int64 wide, int64 small) {
          s = Constant <value = string {"0123456789"}> ()
          s2 = StringConcat(s, s)
          s4 = StringConcat(s2, s2)
          s8 = StringConcat(s4, s4)
          s16 = StringConcat(s8, s8)
          s32 = StringConcat(s16, s16)
          s64 = StringConcat(s32, s32)
          s128 = StringConcat(s64, s64)
          s256 = StringConcat(s128, s128)
          s512 = StringConcat(s256, s256)
          s1k = StringConcat(s512, s512)
          big = StringConcat(s1k, s1k)
          two = Constant <value = int64 {2}> ()
          e = Constant <value = int64 {1000000000}> ()
          huge = Pow(two, e)
          sixty_four = Constant <value = int64 {64}> ()
          wide = Pow(two, sixty_four)
          seven = Constant <value = int64 {7}> ()
          small = Mod <fmod = 0> (wide, seven)
        }
        """
    )
    run_pass("fold-constants", model)
    producers = {v.name: v.producer().op_type for v in model.graph.outputs}
    # 10,240 characters: too big; 2**1e9 is never computed; 2**64 does not fit in int64
    # (it stays computed at run time) but is known, so 2**64 % 7 folds.
    assert producers == {"big": "StringConcat", "huge": "Pow", "wide": "Pow", "small": "Constant"}
    assert value_of(model.graph.outputs[3]) == 2**64 % 7
    s512 = next(v for n in model.graph for v in n.outputs if v.name == "s512")
    assert len(value_of(s512)) == 5120


def test_folds_inside_subgraphs_with_constants_of_enclosing_scopes() -> None:
    model = parse(
        """
        g (bool c, int64 x) => (int64 y) {
          k = Constant <value = int64 {4}> ()
          y = If (c) <
            then_branch = t () => (int64 a) { two = Constant <value = int64 {2}> ()  a = Mul(k, two) },
            else_branch = e () => (int64 b) { b2 = Neg(k)  b = Add(b2, x) }
          >
        }
        """
    )
    assert run_pass("fold-constants", model).modified
    if_node = model.graph.node(1)
    then_branch = if_node.attributes["then_branch"].as_graph()
    else_branch = if_node.attributes["else_branch"].as_graph()
    assert value_of(then_branch.outputs[0]) == 8 and then_branch.outputs[0].name == "a"
    assert [n.op_type for n in else_branch] == ["Constant", "Add"]
    assert_valid(model)


# ------------------------------------------------------------------ pure tasks
def test_pure_task_calls_fold_with_the_live_functions() -> None:
    before, after, tasks = fold(arithmetic)
    task_calls = [n.attributes["task"].as_string() for n in ir.traversal.RecursiveGraphIterator(after.graph) if n.op_type == "Task"]
    assert task_calls == ["record"]  # square and scaled(2, factor=3) were folded; record has effects
    assert_same_behaviour(before, after, tasks, 5)
    assert run_model(after, tasks, 5) == arithmetic.fn(5) == 5 + 22 + 5 + 2 + 5
    assert_valid(after)


def test_pure_task_calls_stay_without_their_live_functions() -> None:
    model, _ = lowered(arithmetic, upto="fold-constants")
    run_pass("fold-constants", model)  # no task objects: a loaded artifact
    calls = sorted(n.attributes["task"].as_string() for n in ir.traversal.RecursiveGraphIterator(model.graph) if n.op_type == "Task")
    assert calls == ["record", "scaled", "square"]


def test_async_pure_tasks_are_not_run_at_compile_time() -> None:
    model, tasks = lowered(not_folded, upto="fold-constants")
    assert not run_pass("fold-constants", model, tasks=tasks).modified


def test_lists_fold_to_sequences_of_constants() -> None:
    before, after, tasks = fold(containers)
    # upto(3) became a SequenceConstruct of constants, so the loop's trip count is known
    assert "namu::Task" not in ops(after.graph)
    upto_value = next(n for n in after.graph if n.op_type == "SequenceConstruct").outputs[0]
    assert upto_value.name == "upto" and str(type_of(upto_value)) == "list[int]"
    assert [value_of(v) for v in upto_value.producer().inputs] == [0, 1, 2]
    loop = next(n for n in after.graph if n.op_type == "Loop")
    assert value_of(loop.inputs[0]) == 3
    assert_same_behaviour(before, after, tasks, 2)
    assert run_model(after, tasks, 2) == containers.fn(2) == (0 + 2 + 4) + 3 + 2


def test_a_pure_task_that_changes_its_argument_is_not_folded() -> None:
    model = parse(
        """
        g (int64 x) => (int64 n) {
          one = Constant <value = int64 {1}> ()
          xs = SequenceConstruct(one, one)
          n = namu.Task <task = "grow"> (xs)
        }
        """,
        pure_tasks=("grow",),
    )
    assert not run_pass("fold-constants", model, tasks={"grow": grow}).modified


def test_none_and_empty_lists_become_constants() -> None:
    model = parse(
        """
        g (int64 x) => (int64 n) {
          zero = Constant <value = int64 {0}> ()
          empty = namu.Task <task = "upto"> (zero)
          none = namu.Task <task = "nothing"> (zero)
          n = SequenceLength(empty)
        }
        """,
        pure_tasks=("upto", "nothing"),
    )
    empty = model.graph.node(1).outputs[0]
    empty.type = ir.SequenceType(ir.TensorType(ir.DataType.INT64))
    run_pass("fold-constants", model, tasks={"upto": upto, "nothing": nothing})
    assert [f"{n.domain}::{n.op_type}" for n in model.graph] == ["::Constant", "::SequenceEmpty", "namu::None", "::Constant"]
    assert [v.name for n in model.graph for v in n.outputs] == ["zero", "empty", "none", "n"]
    assert model.graph.node(1).attributes["dtype"].as_int() == ir.DataType.INT64


def test_folded_frontend_workflows_stay_valid_and_behave_the_same() -> None:
    for workflow, args in ((arithmetic, (3,)), (containers, (5,)), (nested, (2, True)), (nested, (2, False))):
        before, after, tasks = fold(workflow)
        assert_valid(after)
        assert_same_behaviour(before, after, tasks, *args)
        assert run_model(after, tasks, *args) == workflow.fn(*args)


@pytest.mark.parametrize("workflow", [arithmetic, containers, nested, div_by_zero], ids=lambda w: w.name)
def test_full_pipeline_keeps_the_model_valid(workflow: namu.Workflow) -> None:
    model, _ = lowered(workflow)
    assert "fold-constants" in pipeline()
    assert_valid(model)


# ------------------------------------------------------------------ hypothesis
def _literal(value: Any) -> str:
    return f"({value!r})"


def _binary(ops: list[str], left: st.SearchStrategy[str], right: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(left, st.sampled_from(ops), right).map(lambda t: f"({t[0]} {t[1]} {t[2]})")


def _expressions() -> dict[str, st.SearchStrategy[str]]:
    """Typed random expressions over constants (so the frontend accepts every one)."""
    ints: st.SearchStrategy[str] = st.deferred(
        lambda: st.one_of(
            st.integers(-9, 9).map(_literal),
            st.just("(0)"),  # divisions by zero: Python raises, the fold must not
            _binary(["+", "-", "*", "//", "%"], ints, ints),
            st.tuples(ints, st.integers(0, 2)).map(lambda t: f"({t[0]} ** {t[1]})"),
            ints.map(lambda e: f"(-{e})"),
        )
    )
    floats: st.SearchStrategy[str] = st.deferred(
        lambda: st.one_of(
            st.floats(-9, 9, allow_nan=False).map(_literal),
            _binary(["+", "-", "*", "/"], floats, st.one_of(floats, ints)),
            _binary(["/"], ints, ints),
            st.tuples(floats, st.integers(0, 2)).map(lambda t: f"({t[0]} ** {t[1]})"),
        )
    )
    numbers = st.one_of(ints, floats)
    bools: st.SearchStrategy[str] = st.deferred(
        lambda: st.one_of(
            st.booleans().map(_literal),
            _binary(["==", "!=", "<", "<=", ">", ">="], numbers, numbers),
            bools.map(lambda e: f"(not {e})"),
            _binary(["and", "or"], bools, bools),
        )
    )
    return {"int": ints, "float": floats, "bool": bools}


_EXPRESSIONS = _expressions()


def _python(expression: str) -> tuple[str, Any]:
    try:
        value = eval(expression)  # noqa: S307 - our own generated arithmetic
    except Exception as exc:  # noqa: BLE001
        return "error", type(exc).__name__
    return "value", value


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["int", "float", "bool"]), data=st.data())
def test_folded_expressions_equal_python(tmp_path_factory: pytest.TempPathFactory, kind: str, data: st.DataObject) -> None:
    expression = data.draw(_EXPRESSIONS[kind], label="expression")
    source = textwrap.dedent(
        f"""
        import namu


        @namu.workflow
        def wf():
            return {expression}
        """
    )
    directory = tmp_path_factory.getbasetemp() / "fold_expressions"
    directory.mkdir(exist_ok=True)
    path = directory / f"expr_{hashlib.sha256(source.encode()).hexdigest()[:16]}.py"
    if not path.exists():
        path.write_text(source)
    workflow = import_path(path).wf
    expected = _python(expression)

    model = lower(workflow).model
    run_pass("fold-constants", model)
    output = model.graph.outputs[0]
    folded = is_constant(constant_of(output.producer())) if output.producer() is not None else False
    has_if = any(n.op_type == "If" for n in model.graph)
    event(f"{kind}: {expected[0]}, {'folded' if folded else 'kept'}{' (short-circuit If)' if has_if else ''}")
    if expected[0] == "error":
        assert not folded, f"{expression} raises {expected[1]} in Python but was folded"
        for executor in EXECUTORS:
            with pytest.raises(Exception) as caught:
                run_model(model, {}, executor=executor)
            assert type(caught.value).__name__ == expected[1]
        return
    value = expected[1]
    if not has_if and not (type(value) is int and not -(2**63) <= value < 2**63):
        assert folded, f"{expression} was not folded"
        assert _same(value_of(output), value), expression
    for executor in EXECUTORS:
        assert _same(run_model(model, {}, executor=executor), value), (executor, expression)


def test_folding_is_idempotent() -> None:
    _, after, tasks = fold(arithmetic)
    snapshot = canonical(after.graph)
    assert not run_pass("fold-constants", after, tasks=tasks).modified
    assert canonical(after.graph) == snapshot

