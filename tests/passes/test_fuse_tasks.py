"""fuse-tasks: linear chains of cheap local task calls become one ``namu.Fused`` node.

Structure (before/expected IR), what breaks a chain, chains in bodies and functions, and
behaviour: values, effect order and errors (the failing task's name and line) are the
same with and without the pass, on the kernel and on the reference interpreter.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import onnx_ir as ir
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import namu
from namu.errors import TaskError
from namu.ir import metadata
from namu.ir.opsets import NAMU_DOMAIN
from namu.passes import CompileConfig, PassContext
from namu.passes.fuse_tasks import FuseTasksPass
from tests.conftest import run_both
from tests.passes.conftest import canonical, listing, lowered, parse, run_model, run_pass

HERE = Path(__file__).resolve()
TASKS = ("a", "b", "c", "d")


def fuse(text: str, impure: tuple[str, ...] = TASKS, options: dict[str, dict[str, Any]] | None = None, **config: Any) -> ir.Model:
    """Parse ``text`` and run fuse-tasks on it."""
    model = parse(textwrap.dedent(text), impure_tasks=impure, task_options=options)
    run_pass("fuse-tasks", model, **config)
    return model


def expect(model: ir.Model, text: str) -> None:
    assert canonical(model.graph) == canonical(parse(textwrap.dedent(text), impure_tasks=TASKS).graph)


def fused_nodes(graph: ir.Graph) -> list[ir.Node]:
    return [n for n in ir.traversal.RecursiveGraphIterator(graph) if n.domain == NAMU_DOMAIN and n.op_type == "Fused"]


# ---------------------------------------------------------------------- structure
def test_a_chain_with_constants_and_a_builtin_op_between_tasks_becomes_one_node() -> None:
    model = fuse(
        """
        g (int64 x) => (int64 y) {
          a = namu.Task <task = "a"> (x)
          one = Constant <value = int64 {1}> ()
          b = Add(a, one)
          c = namu.Task <task = "b"> (b, one)
          y = namu.Task <task = "c"> (c)
        }"""
    )
    expect(
        model,
        """
        g (int64 x) => (int64 y) {
          one = Constant <value = int64 {1}> ()
          y = namu.Fused <body = fused (int64 x__in, int64 one__in) => (int64 y__out) {
            a = namu.Task <task = "a"> (x__in)
            b = Add(a, one__in)
            c = namu.Task <task = "b"> (b, one__in)
            y__out = namu.Task <task = "c"> (c)
          }> (x, one)
        }""",
    )
    (node,) = fused_nodes(model.graph)
    assert node.outputs[0].name == "y" and model.graph.outputs[0] is node.outputs[0]
    assert node.outputs[0].type == ir.TensorType(ir.DataType.INT64)


def test_builtin_ops_at_either_end_stay_outside_and_a_value_read_twice_still_links() -> None:
    model = fuse(
        """
        g (int64 x) => (int64 y) {
          n = Neg(x)
          a = namu.Task <task = "a"> (n)
          b = namu.Task <task = "b"> (a, a)
          y = Neg(b)
        }"""
    )
    assert listing(model.graph) == ["n = Neg(x)", "b = namu::Fused(n)", "y = Neg(b)"]
    assert listing(fused_nodes(model.graph)[0].attributes["body"].as_graph()) == [
        "a = namu::Task(n__in)",
        "b__out = namu::Task(a,a)",
    ]


@pytest.mark.parametrize(
    ("text", "options", "config", "expected"),
    [
        pytest.param(  # `a` has two readers: b and c. c -> y is a chain of its own.
            """g (int64 x) => (int64 y) {
                 a = namu.Task <task = "a"> (x)  b = namu.Task <task = "b"> (a)
                 c = namu.Task <task = "c"> (a)  y = namu.Task <task = "d"> (b, c) }""",
            {}, {}, ["a = namu::Task(x)", "b = namu::Task(a)", "y = namu::Fused(a,b)"], id="multi-use",
        ),
        pytest.param(
            """g (int64 x) => (int64 a, int64 y) { a = namu.Task <task = "a"> (x)  y = namu.Task <task = "b"> (a) }""",
            {}, {}, ["a = namu::Task(x)", "y = namu::Task(a)"], id="graph-output",
        ),
        pytest.param(  # an effect between two links would run before the first one
            """g (int64 x) => (int64 y) {
                 a = namu.Task <task = "a"> (x)  l = namu.Task <task = "d"> (x)  y = namu.Task <task = "b"> (a) }""",
            {}, {}, ["a = namu::Task(x)", "l = namu::Task(x)", "y = namu::Task(a)"], id="effect-between",
        ),
        pytest.param(  # so would an op that can raise
            """g (int64 x) => (int64 y) {
                 a = namu.Task <task = "a"> (x)  q = Div(x, x)  y = namu.Task <task = "b"> (a, q) }""",
            {}, {}, ["a = namu::Task(x)", "q = Div(x,x)", "y = namu::Task(a,q)"], id="raising-op-between",
        ),
        pytest.param(  # `a` is also read inside a branch
            """g (int64 x, bool p) => (int64 y, int64 z) {
                 a = namu.Task <task = "a"> (x)  y = namu.Task <task = "b"> (a)
                 z = If (p) <then_branch = t () => (int64 r) { r = Identity(a) },
                             else_branch = e () => (int64 s) { s = Identity(x) }> }""",
            {}, {}, ["a = namu::Task(x)", "y = namu::Task(a)", "z = If(p)"], id="read-in-subgraph",
        ),
        pytest.param(
            """g (int64 x) => (int64 y) {
                 a = namu.Task <task = "a"> (x)  b = namu.Task <task = "b", retries = 1> (a)  y = namu.Task <task = "c"> (b) }""",
            {}, {}, ["a = namu::Task(x)", "b = namu::Task(a)", "y = namu::Task(b)"], id="retries-attribute",
        ),
        pytest.param(  # the node's attributes (expand-defaults) win over the task's options
            """g (int64 x) => (int64 y) {
                 a = namu.Task <task = "a", retries = 0, timeout_s = 0.0, cache = 0, priority = 0, placement = "local"> (x)
                 y = namu.Task <task = "b"> (a) }""",
            {"a": {"retries": 2}}, {}, ["y = namu::Fused(x)"], id="attributes-win",
        ),
        pytest.param(
            """g (int64 x) => (int64 y) { a = namu.Task <task = "a"> (x)  y = namu.Task <task = "b"> (a) }""",
            {}, {"retries": 1}, ["a = namu::Task(x)", "y = namu::Task(a)"], id="config-retries",
        ),
        pytest.param(
            """g (int64 x) => (int64 y) { a = namu.Task <task = "a"> (x)  y = namu.Task <task = "b"> (a) }""",
            {}, {"timeout_s": 5.0}, ["a = namu::Task(x)", "y = namu::Task(a)"], id="config-timeout",
        ),
        pytest.param(
            """g (int64 x) => (int64 y) { a = namu.Task <task = "a"> (x)  y = namu.Task <task = "b"> (a) }""",
            {}, {"placement": "edge"}, ["y = namu::Fused(x)"], id="other-default-placement",
        ),
        pytest.param(
            """g (int64 x) => (int64 y) {
                 a = namu.Task <task = "a"> (x)  b = namu.Task <task = "b", placement = "gpu"> (a)  y = namu.Task <task = "c"> (b) }""",
            {}, {}, ["a = namu::Task(x)", "b = namu::Task(a)", "y = namu::Task(b)"], id="placement-attribute",
        ),
        *[
            pytest.param(
                """g (int64 x) => (int64 y) {
                     a = namu.Task <task = "a"> (x)  b = namu.Task <task = "b"> (a)  y = namu.Task <task = "c"> (b) }""",
                {"b": option}, {}, ["a = namu::Task(x)", "b = namu::Task(a)", "y = namu::Task(b)"], id=name,
            )
            for name, option in [
                ("retries", {"retries": 2}),
                ("timeout", {"timeout_s": 1.5}),
                ("cache", {"cache": True}),
                ("pure", {"pure": True}),
                ("on-error-skip", {"on_error": "skip"}),
                ("thread-mode", {"mode": "thread"}),
                ("placement", {"placement": "gpu"}),
                ("priority", {"priority": 3}),
                ("fallback", {"fallback": "d"}),
            ]
        ],
    ],
)
def test_what_breaks_a_chain(text: str, options: dict, config: dict, expected: list[str]) -> None:
    model = fuse(text, options=options, **config)
    assert listing(model.graph) == expected


def test_async_tasks_break_chains() -> None:
    model = parse(
        """g (int64 x) => (int64 y) {
             a = namu.Task <task = "a"> (x)  b = namu.Task <task = "b"> (a)  y = namu.Task <task = "c"> (b) }""",
        impure_tasks=TASKS,
    )
    table = json.loads(model.metadata_props[metadata.TASKS_KEY])
    for entry in table["tasks"]:
        entry["is_async"] = entry["key"] == "b"
    model.metadata_props[metadata.TASKS_KEY] = json.dumps(table)
    assert not FuseTasksPass()(model).modified
    assert listing(model.graph) == ["a = namu::Task(x)", "b = namu::Task(a)", "y = namu::Task(b)"]


def test_chains_in_map_and_loop_bodies_and_functions_are_fused() -> None:
    model = fuse(
        """
        g (seq(int64) xs, int64 n, bool go, int64 x) => (seq(int64) ys, int64 y) {
          ys = namu.Map <body = mb (int64 item) => (int64 r) {
            p = namu.Task <task = "a"> (item)
            r = namu.Task <task = "b"> (p)
          }> (xs)
          y = Loop (n, go, x) <body = lb (int64 i, bool c, int64 acc) => (bool c2, int64 acc2) {
            t = namu.Task <task = "a"> (acc)
            c2 = Identity(c)
            acc2 = namu.Task <task = "b"> (t, i)
          }>
        }
        <domain: "namu.workflow", opset_import: ["" : 21, "namu" : 1]>
        sub (v) => (w) { u = namu.Task <task = "c"> (v)  w = namu.Task <task = "d"> (u) }"""
    )
    expect(
        model,
        """
        g (seq(int64) xs, int64 n, bool go, int64 x) => (seq(int64) ys, int64 y) {
          ys = namu.Map <body = mb (int64 item) => (int64 r) {
            r = namu.Fused <body = fused (int64 item__in) => (int64 r__out) {
              p = namu.Task <task = "a"> (item__in)
              r__out = namu.Task <task = "b"> (p)
            }> (item)
          }> (xs)
          y = Loop (n, go, x) <body = lb (int64 i, bool c, int64 acc) => (bool c2, int64 acc2) {
            c2 = Identity(c)
            acc2 = namu.Fused <body = fused_1 (int64 acc__in, int64 i__in) => (int64 acc2__out) {
              t = namu.Task <task = "a"> (acc__in)
              acc2__out = namu.Task <task = "b"> (t, i__in)
            }> (acc, i)
          }>
        }""",
    )
    (function,) = model.functions.values()
    assert listing(function.graph) == ["w = namu::Fused(v)"]
    assert listing(fused_nodes(function.graph)[0].attributes["body"].as_graph()) == [
        "u = namu::Task(v__in)",
        "w__out = namu::Task(u)",
    ]


def test_fresh_names_avoid_names_in_use_and_the_pass_is_idempotent() -> None:
    model = fuse(
        """
        g (int64 x) => (int64 y, int64 x__in) {
          x__in = Neg(x)
          a = namu.Task <task = "a"> (x)
          y = namu.Task <task = "b"> (a)
        }"""
    )
    body = fused_nodes(model.graph)[0].attributes["body"].as_graph()
    assert [v.name for v in body.inputs] == ["x__in_1"]
    before = canonical(model.graph)
    run_pass("fuse-tasks", model)
    assert canonical(model.graph) == before  # a Fused body is never fused again


def test_spans_stay_on_the_inner_nodes_and_the_fused_node_gets_the_first() -> None:
    model, _ = lowered(chained, upto="fuse-tasks")
    spans = [n.metadata_props[metadata.SPAN_KEY] for n in model.graph if n.op_type == "Task"]
    run_pass("fuse-tasks", model)
    (node,) = fused_nodes(model.graph)
    inner = [n.metadata_props[metadata.SPAN_KEY] for n in node.attributes["body"].as_graph()]
    assert inner == spans
    assert node.metadata_props[metadata.SPAN_KEY] == spans[0]


def test_a_long_chain_is_one_node() -> None:
    n = 5_000
    lines = [f'v{i + 1} = namu.Task <task = "a"> (v{i})' for i in range(n)]
    model = parse(f"g (int64 v0) => (int64 v{n}) {{ {' '.join(lines)} }}", impure_tasks=("a",))
    pass_ = FuseTasksPass(PassContext(config=CompileConfig()))
    assert pass_(model).modified and pass_.changes == 1
    (node,) = fused_nodes(model.graph)
    assert len(node.attributes["body"].as_graph()) == n


# ---------------------------------------------------------------------- behaviour
LOG: list[str] = []


@namu.task
def inc(x: int) -> int:
    return x + 1


@namu.task
def double(x: int) -> int:
    return x * 2


@namu.task
def add(a: int, b: int) -> int:
    return a + b


@namu.task
def check(x: int) -> int:
    if x > 100:
        raise ValueError(f"{x} is too big")
    return x


@namu.task
def step(name: str, x: int) -> int:
    LOG.append(name)
    return x + 1


@namu.task
async def later(x: int) -> int:
    return x + 1


@namu.task(retries=1)
def stubborn(x: int) -> int:
    return x + 1


@namu.workflow
def chained(x: int) -> int:
    a = inc(x)
    b = check(a)
    c = double(b)
    return inc(c) + 1


@namu.workflow
def per_item(xs: list[int]) -> list[int]:
    return [double(check(inc(x))) for x in xs]


@namu.workflow
def looped(xs: list[int]) -> int:
    total = 0
    for x in xs:
        total = add(total, check(inc(x)))
    return total


@namu.workflow
def interleaved(x: int) -> int:
    a = step("a", x)
    step("between", x)
    b = step("b", a)
    return step("c", b)


@namu.workflow
def mixed(x: int) -> int:
    a = inc(x)
    b = later(a)
    c = double(b)
    d = stubborn(c)
    return check(inc(d))


@namu.workflow(inline=False)
def sub(x: int) -> int:
    return double(check(inc(x)))


@namu.workflow
def calls_sub(x: int) -> int:
    return sub(sub(x))


def both(wf: namu.Workflow) -> tuple[namu.Artifact, namu.Artifact]:
    fused = namu.compile(wf)
    plain = namu.compile(wf, disable=["fuse-tasks"])
    return fused, plain


def count_fused(art: namu.Artifact) -> int:
    graphs = [art.model.graph, *(f.graph for f in art.model.functions.values())]
    return sum(len(fused_nodes(g)) for g in graphs)


def line_of(text: str) -> int:
    return next(i for i, line in enumerate(HERE.read_text().splitlines(), 1) if line.strip() == text)


@pytest.mark.parametrize(
    ("wf", "args", "expected"),
    [
        (chained, (3,), 10),
        (per_item, ([1, 2, 3],), [4, 6, 8]),
        (looped, ([1, 2, 3],), 9),
        (mixed, (1,), 8),  # the async task and the one with retries stay out: only check(inc(d))
        (calls_sub, (2,), 14),  # inside the function
    ],
    ids=lambda v: getattr(v, "name", None) or str(v),
)
def test_fused_and_unfused_runs_agree(wf: namu.Workflow, args: tuple, expected: Any) -> None:
    fused, plain = both(wf)
    assert count_fused(fused) == 1 and count_fused(plain) == 0
    assert run_both(fused, *args).value == run_both(plain, *args).value == expected
    assert fused.run(*args, task_mode="thread").value == expected


def test_effects_keep_their_order() -> None:
    fused, plain = both(interleaved)
    assert count_fused(fused) == 1  # b -> c; `between` separates a from b
    for art in (fused, plain):
        for executor in ("kernel", "reference"):
            LOG.clear()
            assert art.run(1, executor=executor).value == 4
            assert LOG == ["a", "between", "b", "c"]


@pytest.mark.parametrize("executor", ["kernel", "reference"])
@pytest.mark.parametrize("task_mode", ["inline", "thread"])
@pytest.mark.parametrize(("wf", "arg"), [(chained, 500), (per_item, [1, 500]), (looped, [1, 500]), (calls_sub, 500)])
def test_an_error_in_a_middle_task_names_it_and_its_line(wf: namu.Workflow, arg: Any, executor: str, task_mode: str) -> None:
    lines = {chained: "b = check(a)", per_item: "return [double(check(inc(x))) for x in xs]",
             looped: "total = add(total, check(inc(x)))", calls_sub: "return double(check(inc(x)))"}
    fused, plain = both(wf)
    errors = []
    for art in (fused, plain):
        with pytest.raises(TaskError) as caught:
            art.run(arg, executor=executor, task_mode=task_mode)
        errors.append(caught.value)
    line = line_of(lines[wf])
    for error in errors:
        assert error.task == "check"
        assert error.span.startswith(f"{HERE}:{line}:")
        assert f"task 'check' failed at {HERE}:{line}:" in str(error)
        assert isinstance(error.__cause__, ValueError) and "is too big" in str(error.__cause__)
    assert str(errors[0]) == str(errors[1])


def test_a_saved_fused_artifact_loads_and_runs(tmp_path: Path) -> None:
    fused, _ = both(per_item)
    loaded = namu.load(fused.save(tmp_path / "per_item.onnx"))
    assert count_fused(loaded) == 1
    assert run_both(loaded, [1, 2]).value == [4, 6]


def test_observed_and_checkpointed_runs_see_every_call(tmp_path: Path) -> None:
    fused, plain = both(chained)

    class Count(namu.RunHooks):
        def __init__(self) -> None:
            self.done: list[str] = []

        def on_task_end(self, call: Any, source: str) -> None:
            self.done.append(call.task)

    seen = []
    for art in (fused, plain):
        hooks = Count()
        assert art.run(3, hooks=hooks).value == chained.fn(3)
        seen.append(hooks.done)
    assert seen[0] == seen[1] == ["inc", "check", "double", "inc"]
    first = fused.run(3, checkpoint=tmp_path / "run.db")
    again = fused.run(3, checkpoint=tmp_path / "run.db")
    assert first.value == again.value == chained.fn(3)
    assert again.resumed_calls == 4


# ---------------------------------------------------------------------- property
SIGNATURE = metadata.Signature(name="g", file="", params=[metadata.Parameter(name="x", type="int")])


@namu.task
def t_add(a: int, b: int) -> int:
    return a + b


@namu.task
def t_mix(a: int) -> int:
    return (a * 7 + 3) % 101


@st.composite
def programs(draw: st.DrawFn) -> tuple[str, dict[str, dict[str, Any]]]:
    """A random straight-line program over one int input: task calls with random options
    reading random earlier values, builtin ops and constants between them."""
    names = ["x"]
    lines = []
    for i in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["mix", "mix", "add", "neg", "const"]))
        pick = st.sampled_from(names[-3:])
        out = f"v{i}"
        if kind == "mix":
            lines.append(f'{out} = namu.Task <task = "{draw(st.sampled_from(["m0", "m1", "m2"]))}"> ({draw(pick)})')
        elif kind == "add":
            lines.append(f'{out} = namu.Task <task = "s0"> ({draw(pick)}, {draw(pick)})')
        elif kind == "neg":
            lines.append(f"{out} = Neg({draw(pick)})")
        else:
            lines.append(f"{out} = Constant <value = int64 {{{draw(st.integers(-3, 3))}}}> ()")
        names.append(out)
    outputs = sorted(set(draw(st.lists(st.sampled_from(names[1:]), min_size=1, max_size=3))))
    text = f"g (int64 x) => ({', '.join(f'int64 {o}' for o in outputs)}) {{ {' '.join(lines)} }}"
    options = {"m1": {"retries": 1}, "m2": {}, "m0": {}, "s0": {}}
    if draw(st.booleans()):
        options["m2"] = {"mode": "thread"}
    return text, options


@settings(max_examples=60, deadline=None)
@given(programs())
def test_random_programs_keep_their_values(program: tuple[str, dict[str, dict[str, Any]]]) -> None:
    text, options = program
    tasks = {"m0": t_mix, "m1": t_mix, "m2": t_mix, "s0": t_add}
    model = parse(text, task_options=options)
    model.metadata_props[metadata.SIGNATURE_KEY] = metadata.dump(SIGNATURE.model_copy(update={"returns": "tuple"}))
    expected = run_model(model, tasks, 5, executor="reference")
    run_pass("fuse-tasks", model)
    unfusible = {"m1"} | ({"m2"} if options["m2"] else set())
    for node in fused_nodes(model.graph):
        body = list(node.attributes["body"].as_graph())
        assert len(body) >= 2 and body[0].op_type == "Task" and body[-1].op_type == "Task"
        assert not any(n.attributes["task"].as_string() in unfusible for n in body if n.op_type == "Task")
    for executor in ("kernel", "reference"):
        assert run_model(model, tasks, 5, executor=executor) == expected
