"""partition: one namu.partition function per placement, in global order; the main
graph launches the default one; a valid ONNX model that runs as before."""

from __future__ import annotations

import json
import textwrap

import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import namu
from namu.errors import IRVerificationError
from namu.ir.metadata import SIGNATURE_KEY, Parameter, Signature, dump
from namu.ir.opsets import PARTITION_DOMAIN
from namu.ir.serde import to_proto
from namu.passes.partition import PARTITIONS_KEY, PartitionPass
from tests.passes.conftest import canonical, lowered, parse, run_model, run_pass

EXECUTORS = ("kernel", "reference")


def partitioned(text: str, **task_options: dict):
    model = parse(text, task_options=task_options)
    for name in ("infer-placement", "synthesize-wire-ops", "partition"):
        run_pass(name, model)
    return model


def functions(model) -> dict[str, list[str]]:
    return {f.name: canonical(f.graph) for f in model.functions.values() if f.domain == PARTITION_DOMAIN}


def test_splits_by_placement_and_launches_the_default() -> None:
    model = partitioned(
        """
        g (int64 x) => (int64 y) {
          a = Neg(x)
          e = namu.Task <task = "embed"> (a)
          s = namu.Task <task = "score"> (a)
          y = namu.Task <task = "rank"> (e, s)
        }""",
        embed={"placement": "gpu"},
        score={"placement": "cpu_pool"},
        rank={},
    )
    assert json.loads(model.metadata_props[PARTITIONS_KEY]) == ["local", "cpu_pool", "gpu"]
    assert canonical(model.graph) == ["graph(x) -> (y)", "  y = namu.partition::local(x)"]
    assert list(functions(model)) == ["local", "cpu_pool", "gpu"]
    assert functions(model) == {
        "local": canonical(
            parse(
                """
                g (int64 x) => (int64 y) {
                  a = Neg(x)
                  = namu.Send <channel = "a@gpu", to = "gpu"> (a)
                  = namu.Send <channel = "a@cpu_pool", to = "cpu_pool"> (a)
                  e_local = namu.Recv <channel = "e@local", from = "gpu"> ()
                  s_local = namu.Recv <channel = "s@local", from = "cpu_pool"> ()
                  y = namu.Task <task = "rank"> (e_local, s_local)
                }"""
            ).graph
        ),
        "cpu_pool": canonical(
            parse(
                """
                g () => () {
                  a_cpu_pool = namu.Recv <channel = "a@cpu_pool", from = "local"> ()
                  s = namu.Task <task = "score"> (a_cpu_pool)
                  = namu.Send <channel = "s@local", to = "local"> (s)
                }"""
            ).graph
        ),
        "gpu": canonical(
            parse(
                """
                g () => () {
                  a_gpu = namu.Recv <channel = "a@gpu", from = "local"> ()
                  e = namu.Task <task = "embed"> (a_gpu)
                  = namu.Send <channel = "e@local", to = "local"> (e)
                }"""
            ).graph
        ),
    }
    assert model.opset_imports[PARTITION_DOMAIN] == 1


def test_partitions_keep_the_global_order() -> None:
    text = """
        g (int64 x) => (int64 y) {
          a = namu.Task <task = "embed"> (x)
          b = namu.Task <task = "rank"> (a)
          c = namu.Task <task = "embed"> (b)
          d = namu.Task <task = "rank"> (c)
          y = namu.Task <task = "embed"> (d)
        }"""
    opts = {"embed": {"placement": "gpu"}, "rank": {}}
    model = parse(text, task_options=opts)
    run_pass("infer-placement", model)
    run_pass("synthesize-wire-ops", model)
    order = {id(n): i for i, n in enumerate(model.graph)}
    run_pass("partition", model)
    for function in model.functions.values():
        positions = [order[id(n)] for n in function.graph]
        assert positions == sorted(positions)


def test_a_single_placement_changes_nothing() -> None:
    text = "g (int64 x) => (int64 y) { a = Neg(x)  y = namu.Task <task = \"rank\"> (a) }"
    model = parse(text, impure_tasks=("rank",))
    run_pass("infer-placement", model)
    assert not run_pass("partition", model).modified
    assert canonical(model.graph) == canonical(parse(text).graph)
    assert not model.functions and PARTITIONS_KEY not in model.metadata_props


def test_a_crossing_without_wire_ops_is_rejected() -> None:
    model = parse(
        "g (int64 x) => (int64 y) { e = namu.Task <task = \"embed\"> (x)  y = Neg(e) }",
        task_options={"embed": {"placement": "gpu"}},
    )
    run_pass("infer-placement", model)
    with pytest.raises(IRVerificationError, match="Task at placement 'gpu' reads 'x', produced at 'local', without a namu.Recv"):
        run_pass("partition", model)


@namu.task(placement="gpu")
def embed(x: int) -> dict:
    return {"v": x * 10}


@namu.task
def rank(d: dict, k: int) -> int:
    return d["v"] + k


@namu.workflow
def opaque_crossing(x: int) -> int:
    return rank(embed(x), x)


def test_partitioned_artifact_passes_the_full_onnx_check() -> None:
    model, tasks = lowered(opaque_crossing)
    assert json.loads(model.metadata_props[PARTITIONS_KEY]) == ["local", "gpu"]
    onnx.checker.check_model(to_proto(model), full_check=True)
    for executor in EXECUTORS:
        assert run_model(model, tasks, 4, executor=executor) == 44


@namu.task
def inc(x: int) -> int:
    return x + 1


@namu.task
def add(a: int, b: int) -> int:
    return a + b


LIVE = {"inc": inc, "add": add}


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_random_partitioned_graphs_run_as_before(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 10))
    lines = []
    for i in range(n):
        pool = ["x", "y", *[f"v{j}" for j in range(i)]]
        a, b = data.draw(st.sampled_from(pool)), data.draw(st.sampled_from(pool))
        place = data.draw(st.sampled_from(["local", "gpu", "tpu"]))
        op = data.draw(st.sampled_from(["inc", "add", "Add", "Neg"]))
        if op == "inc":
            lines.append(f'v{i} = namu.Task <task = "inc", placement = "{place}"> ({a})')
        elif op == "add":
            lines.append(f'v{i} = namu.Task <task = "add", placement = "{place}"> ({a}, {b})')
        else:
            lines.append(f"v{i} = {op}({a}{', ' + b if op == 'Add' else ''})")
    outs = sorted(set(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3))))
    outputs_text = ", ".join(f"int64 v{i}" for i in outs)
    text = f"g (int64 x, int64 y) => ({outputs_text}) {{\n" + "\n".join(lines) + "\n}"
    x, y = data.draw(st.integers(-50, 50)), data.draw(st.integers(-50, 50))

    signature = dump(
        Signature(name="g", file="", params=[Parameter(name="x", type="int"), Parameter(name="y", type="int")], returns="tuple")
    )
    plain, model = parse(text, impure_tasks=("inc", "add")), parse(text, impure_tasks=("inc", "add"))
    plain.metadata_props[SIGNATURE_KEY] = model.metadata_props[SIGNATURE_KEY] = signature
    for name in ("infer-placement", "synthesize-wire-ops", "partition"):
        run_pass(name, model)
    onnx.checker.check_model(to_proto(model), full_check=True)
    expected = run_model(plain, LIVE, x, y, executor="reference")
    for executor in EXECUTORS:
        assert run_model(model, LIVE, x, y, executor=executor) == expected


def test_the_documented_example_holds_for_the_partitions_too() -> None:
    example = PartitionPass.EXAMPLE
    model = parse(textwrap.dedent(example.before), impure_tasks=example.impure_tasks)
    run_pass("partition", model)
    assert functions(model) == functions(parse(textwrap.dedent(example.after)))
