"""resolve-slots: every namu.Slot becomes a call of the task bound to it in its partition;
the task joins the task table and the artifact; unbound and bad bindings are errors."""

from __future__ import annotations

import json
import os

import onnx
import onnx_ir as ir
import pytest

import namu
from namu.errors import CompileError, TaskDefinitionError, TypeCheckError, UnboundSlotError
from namu.ir.metadata import DIGEST_KEY, SPAN_KEY, SYMBOL_KEY, TASKS_KEY
from namu.ir.opsets import NAMU_DOMAIN, PARTITION_DOMAIN
from namu.passes import CompileConfig, PassContext, run_passes
from tests.cli.test_cli import assert_error, namu_cli
from tests.conftest import run_both
from tests.passes.conftest import canonical, lowered, parse

llm = namu.slot("llm", returns=str)
judge = namu.slot("judge")


@namu.task
def ask_small(prompt: str) -> str:
    return f"small:{prompt}"


@namu.task(retries=2)
def ask_big(prompt: str) -> str:
    return f"big:{prompt}"


@namu.task(placement="gpu")
def ask_gpu(prompt: str) -> str:
    return f"gpu:{prompt}"


@namu.task
def count(prompt: str, answer: str) -> int:
    return len(prompt) + len(answer)


@namu.task
def returns_int(prompt: str) -> int:
    return len(prompt)


@namu.task
def two_args(a: str, b: str) -> str:
    return a + b


@namu.task(placement="gpu")
def encode(text: str) -> str:
    return text.upper()


FLAKY_CALLS: list[str] = []


@namu.task(retries=2)
def flaky_ask(prompt: str) -> str:
    """Fails on its first two calls for each prompt, as an overloaded LLM endpoint would."""
    FLAKY_CALLS.append(prompt)
    if FLAKY_CALLS.count(prompt) <= 2:
        raise ConnectionError("try again")
    return f"flaky:{prompt}"


@namu.task
def ask_count(n: int) -> str:
    return "x" * n


@namu.workflow
def answer(question: str) -> str:
    return llm(question)


@namu.workflow
def answer_twice(question: str) -> int:
    first = llm(question)
    second = llm(prompt=first)
    return count(first, second)


@namu.workflow
def answer_on_both(question: str) -> tuple[str, str]:
    local_answer = llm(question)
    remote_answer = ask_gpu(llm(encode(question)))
    return local_answer, remote_answer


@namu.workflow
def calls_judge(question: str) -> str:
    return judge(question)


@namu.workflow
def small_and_slot(question: str) -> str:
    return ask_small(llm(question))


def all_nodes(graph) -> list:
    """Every node of ``graph``, gate bodies included."""
    return list(ir.traversal.RecursiveGraphIterator(graph))


def slot_nodes(model) -> list:
    graphs = [model.graph, *(f.graph for f in model.functions.values())]
    return [n for g in graphs for n in all_nodes(g) if n.domain == NAMU_DOMAIN and n.op_type == "Slot"]


def task_calls(graph, key: str) -> list:
    return [n for n in all_nodes(graph) if n.op_type == "Task" and n.attributes["task"].as_string() == key]


def test_frontend_lowers_slot_calls() -> None:
    art = namu.compile(answer_twice, passes=["verify-structure"])
    slots = [n for n in art.model.graph if n.op_type == "Slot"]
    assert [n.attributes["slot"].as_string() for n in slots] == ["llm", "llm"]
    assert "kwnames" not in slots[0].attributes
    assert list(slots[1].attributes["kwnames"].as_strings()) == ["prompt"]
    assert all(n.metadata_props["namu.span"].startswith(os.path.abspath(__file__)) for n in slots)


def test_calling_a_slot_outside_a_workflow_is_an_error() -> None:
    with pytest.raises(UnboundSlotError, match="slot 'llm' can only be called inside a @namu.workflow"):
        llm("hi")
    with pytest.raises(TaskDefinitionError, match="invalid slot name 'a/b'"):
        namu.slot("a/b")


def test_a_bound_slot_becomes_a_task_call_and_runs() -> None:
    art = namu.compile(answer_twice, slots={"llm": ask_big})
    assert not slot_nodes(art.model)
    calls = task_calls(art.model.graph, "ask_big")  # in gates: retries=2
    assert len(calls) == 2
    assert calls[0].attributes["retries"].as_int() == 2  # expand-defaults' attributes, from the task
    assert calls[0].attributes["placement"].as_string() == "local"
    table = json.loads(art.model.metadata_props[TASKS_KEY])["tasks"]
    entry = next(t for t in table if t["key"] == "ask_big")
    assert entry["digest"] == ask_big.digest and entry["options"] == {"retries": 2}
    assert entry["qualname"] == "ask_big" and entry["file"] == os.path.abspath(__file__)
    assert "ask_big" in art.bindings
    assert run_both(art, "why").value == len("big:why") + len("big:big:why")


def test_a_bound_task_with_retries_runs_in_a_gate_and_retries() -> None:
    art = namu.compile(answer, slots={"llm": flaky_ask})
    gates = [n for n in art.model.graph if n.op_type == "Gate" and n.domain == NAMU_DOMAIN]
    assert len(gates) == 1 and gates[0].attributes["retries"].as_int() == 2  # insert-resilience-gates saw it
    (call,) = task_calls(art.model.graph, "flaky_ask")
    assert call.attributes["retries"].as_int() == 2
    for executor in ("kernel", "reference"):
        FLAKY_CALLS.clear()
        assert art.run(executor, executor=executor).value == f"flaky:{executor}"
        assert FLAKY_CALLS == [executor] * 3  # two failures, two retries


def test_the_new_call_is_bound_as_resolve_symbols_binds_calls() -> None:
    art = namu.compile(answer, slots={"llm": ask_small})
    (call,) = task_calls(art.model.graph, "ask_small")
    assert call.metadata_props[SYMBOL_KEY] == f"{__name__}.ask_small"
    assert call.metadata_props[DIGEST_KEY] == ask_small.digest


def test_arguments_the_bound_task_does_not_accept_fail_at_the_slot_call() -> None:
    with pytest.raises(TypeCheckError) as caught:
        namu.compile(answer, slots={"llm": ask_count})
    assert caught.value.reason == "task 'ask_count' parameter 'n' expects int, got str"
    assert caught.value.span.startswith(f"{os.path.abspath(__file__)}:")
    assert "return llm(question)" in str(caught.value)  # the slot call's line
    model, tasks = lowered(answer, upto="resolve-slots")
    slot = next(n for n in model.graph if n.op_type == "Slot")
    config = CompileConfig(slots={"llm": ask_count})
    context = PassContext(config=config, tasks=tasks, pipeline=("infer-types", "resolve-slots"))
    with pytest.raises(TypeCheckError) as again:
        run_passes(model, ["resolve-slots"], context=context)
    assert again.value.span == slot.metadata_props[SPAN_KEY]


def test_without_the_earlier_passes_the_call_is_bound_only() -> None:
    model, tasks = lowered(answer, upto="resolve-slots")
    context = PassContext(config=CompileConfig(slots={"llm": ask_count}), tasks=tasks, pipeline=("resolve-slots",))
    run_passes(model, ["resolve-slots"], context=context)  # no infer-types: no check
    (call,) = task_calls(model.graph, "ask_count")
    assert SYMBOL_KEY not in call.metadata_props and "retries" not in call.attributes


def test_the_compiled_slot_matches_plain_python() -> None:
    art = namu.compile(answer, slots={"llm": ask_small})
    assert run_both(art, "q").value == ask_small("q") == "small:q"


def test_a_task_already_in_the_table_is_reused() -> None:
    art = namu.compile(small_and_slot, slots={"llm": ask_small})
    keys = [t["key"] for t in json.loads(art.model.metadata_props[TASKS_KEY])["tasks"]]
    assert keys.count("ask_small") == 1 and len(task_calls(art.model.graph, "ask_small")) == 2
    assert run_both(art, "q").value == "small:small:q"


def test_bindings_per_partition_win_over_plain_ones() -> None:
    art = namu.compile(answer_on_both, slots={"llm": ask_small, "gpu/llm": ask_big})
    partitions = {f.name: f for f in art.model.functions.values() if f.domain == PARTITION_DOMAIN}
    called = {
        place: sorted(n.attributes["task"].as_string() for n in all_nodes(f.graph) if n.op_type == "Task")
        for place, f in partitions.items()
    }
    assert called == {"local": ["ask_small"], "gpu": ["ask_big", "ask_gpu", "encode"]}
    (gpu_call,) = task_calls(partitions["gpu"].graph, "ask_big")
    assert gpu_call.attributes["placement"].as_string() == "gpu"
    onnx.checker.check_model(art.to_proto(), full_check=True)
    assert run_both(art, "q").value == ("small:q", "gpu:big:Q")


def test_config_and_cli_style_bindings_agree() -> None:
    via_config = namu.compile(answer, config=CompileConfig(slots={"llm": ask_small}))
    via_kwarg = namu.compile(answer, slots={"llm": ask_small})
    assert canonical(via_config.model.graph) == canonical(via_kwarg.model.graph)


def test_an_unbound_slot_names_the_slot_partition_and_line() -> None:
    with pytest.raises(UnboundSlotError) as caught:
        namu.compile(answer_on_both, slots={"local/llm": ask_small})
    message = str(caught.value)
    assert "slot 'llm' has no implementation in partition 'gpu'" in message
    assert "a key 'gpu/llm' binds it in this partition only" in message
    assert caught.value.span.startswith(os.path.abspath(__file__))
    assert "remote_answer = ask_gpu(llm(encode(question)))" in message


def test_bad_bindings_are_rejected() -> None:
    with pytest.raises(CompileError, match="slot 'llm' is bound to 'ask_small', which is not a @namu.task"):
        namu.compile(answer, slots={"llm": "ask_small"})
    with pytest.raises(CompileError, match="slot 'llm' is bound to task 'two_args', which cannot take this call: missing a required argument: 'b'"):
        namu.compile(answer, slots={"llm": two_args})
    with pytest.raises(TypeCheckError, match="slot 'llm' returns str, but the task bound to it, 'returns_int', returns int"):
        namu.compile(answer, slots={"llm": returns_int})
    with pytest.raises(CompileError, match="slot 'llm' runs in partition 'local', but the task bound to it, 'ask_gpu', is placed on 'gpu'"):
        namu.compile(answer, slots={"llm": ask_gpu})


def test_an_undeclared_return_type_accepts_any_task() -> None:
    art = namu.compile(calls_judge, slots={"judge": returns_int})
    assert run_both(art, "abc").value == 3


def test_the_pass_adds_its_task_to_the_live_tasks() -> None:
    model, tasks = lowered(answer, upto="resolve-slots")
    context = PassContext(config=CompileConfig(slots={"llm": ask_small}), tasks=tasks, pipeline=("resolve-slots",))
    run_passes(model, ["resolve-slots"], context=context)
    assert context.tasks["ask_small"] is ask_small
    node = next(iter(model.graph))
    assert node.op_type == "Task" and "retries" not in node.attributes  # no expand-defaults in this pipeline


def test_hand_written_slots_are_resolved() -> None:
    model = parse('g (string q) => (string a) { a = namu.Slot <slot = "llm", kwnames = ["prompt"]> (q) }')
    context = PassContext(config=CompileConfig(slots={"llm": ask_small}), pipeline=("resolve-slots",))
    run_passes(model, ["resolve-slots"], context=context)
    assert canonical(model.graph) == [
        "graph(q) -> (a)",
        "  a = namu::Task<kwnames=['prompt'], task='ask_small'>(q)",
    ]
    assert [t["key"] for t in json.loads(model.metadata_props[TASKS_KEY])["tasks"]] == ["ask_small"]


AGENT = '''
import namu

llm = namu.slot("llm", returns=str)

@namu.task
def ask(prompt: str) -> str:
    return "ask:" + prompt

@namu.workflow
def agent(question: str) -> str:
    return llm(question)
'''


def test_the_cli_binds_slots(tmp_path) -> None:
    (tmp_path / "namu_cli_agent.py").write_text(AGENT)
    unbound = namu_cli("compile", "namu_cli_agent.py", cwd=tmp_path)
    assert_error(unbound, 2, "slot 'llm' has no implementation in partition 'local'")
    bound = namu_cli("compile", "namu_cli_agent.py", "--slot", "llm=ask", cwd=tmp_path)
    assert bound.returncode == 0, bound.stderr
    ran = namu_cli("run", "agent.onnx", "-i", "question=hi", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "ask:hi" in ran.stdout
