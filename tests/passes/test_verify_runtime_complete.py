"""verify-runtime-complete: what the runtime cannot run is rejected at its line; the
passport names the passes of the compile and their options."""

from __future__ import annotations

import onnx_ir as ir
import pytest

import namu
from namu.ir import metadata
from namu.ir.metadata import SPAN_KEY
from namu.passes import CompileConfig, pipeline
from tests.passes.conftest import lowered, parse, run_pass

SPAN = "/src/wf.py:4:7"


def _at_span(model: ir.Model, index: int = 0) -> ir.Model:
    model.graph.node(index).metadata_props[SPAN_KEY] = SPAN
    return model


def test_accepts_what_the_runtime_runs() -> None:
    model = parse(
        """
        g (int64 x, bool c) => (int64 y) {
          = namu.Send <channel = "x@gpu", to = "gpu"> (x)
          r = namu.Recv <channel = "x@gpu", from = "local"> ()
          a = namu.Gate <body = ga (int64 r_g) => (int64 a_g) { a_g = namu.Task <task = "t", retries = 2> (r_g) }, retries = 2> (r)
          b = namu.If (c) <then_branch = th () => (int64 p) { p = Neg(a) }, else_branch = el () => (int64 q) { q = Identity(a) }>
          y = Div(b, x)
        }
        """,
        impure_tasks=("t",),
    )
    run_pass("verify-runtime-complete", model)


def test_an_unbound_slot_names_the_slot_and_line() -> None:
    model = _at_span(parse('g (string q) => (string a) { a = namu.Slot <slot = "llm"> (q) }'))
    with pytest.raises(namu.UnboundSlotError, match=rf"^{SPAN}: slot 'llm' is not bound"):
        run_pass("verify-runtime-complete", model)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("g (int64 x) => (int64 y) { y = Sqrt(x) }", "op ai.onnx::Sqrt is not supported by namu's runtime"),
        (
            'g (int64 x) => () { = namu.Send <channel = "c", to = "p"> (x) }',
            "channel 'c' has 1 Send and 0 Recv ops; it needs exactly one of each",
        ),
        (
            'g () => (int64 a, int64 b) { a = namu.Recv <channel = "c", from = "p"> ()  b = namu.Recv <channel = "c", from = "p"> () }',
            "channel 'c' has 0 Send and 2 Recv ops",
        ),
        (
            'g (int64 x) => (int64 y) { y = namu.Task <task = "t", retries = 2, timeout_s = 0.0> (x) }',
            "task 't' has retries=2, timeout_s=0.0, fallback='' but runs outside a namu.Gate",
        ),
        (
            'g (int64 x) => (int64 y) { y = namu.Gate <body = b (int64 i) => (int64 o) { m = Neg(i)  o = Neg(m) }> (x) }',
            "a gate's body must hold exactly one op, not 2",
        ),
        (
            'g (int64 x, int64 z) => (int64 y) { y = namu.Gate <body = b (int64 i, int64 j) => (int64 o) { o = Sub(j, i) }> (x, z) }',
            "the guarded Sub must read the body's inputs in order and write its outputs",
        ),
        (
            'g (int64 x) => (int64 y) { y = namu.Gate <body = b (int64 i) => (int64 o) { o = namu.Task <task = "t"> (i) }, fallback = "ghost"> (x) }',
            "fallback task 'ghost' is not in the task table",
        ),
        ("g () => (int64 y) { y = Constant <value_int = 3> () }", "the runtime reads constants from a `value` tensor attribute"),
        ('g (int64 x) => (int64 y) { y = namu.Task <task = "ghost"> (x) }', "task 'ghost' is not in the task table"),
    ],
)
def test_rejects_what_the_runtime_cannot_run_at_the_line(text: str, message: str) -> None:
    model = _at_span(parse(text, impure_tasks=("t",)), -1 if "Recv" in text and "Send" not in text else 0)
    with pytest.raises(namu.IRVerificationError) as info:
        run_pass("verify-runtime-complete", model)
    assert message in str(info.value)
    assert str(info.value).startswith(f"{SPAN}: ") or "channel" in message


def test_receives_need_gates_under_a_wire_timeout() -> None:
    text = """
    g (int64 x) => (int64 y) {
      = namu.Send <channel = "c", to = "p"> (x)
      y = namu.Recv <channel = "c", from = "p"> ()
    }
    """
    run_pass("verify-runtime-complete", parse(text))
    with pytest.raises(namu.IRVerificationError, match="a receive under wire_timeout_s must run in a namu.Gate"):
        run_pass("verify-runtime-complete", parse(text), wire_timeout_s=2.0)
    model = parse(text)
    run_pass("insert-resilience-gates", model, wire_timeout_s=2.0)
    run_pass("verify-runtime-complete", model, wire_timeout_s=2.0)


def test_every_lowered_workflow_shape_verifies() -> None:
    @namu.task(retries=1, timeout_s=5.0)
    def fetch(x: int) -> int:
        return x

    @namu.task
    async def later(x: int) -> int:
        return x

    @namu.workflow(inline=False)
    def sub(x: int) -> int:
        return fetch(x) + 1

    @namu.workflow
    def wf(n: int) -> int:
        total = 0
        for i in [fetch(n), n + 1]:
            total = total + later(i)
        ys = [sub(v) for v in [n, n]]
        return total + ys[0] if n > 0 else total

    model, _ = lowered(wf)
    passport = metadata.Passport.model_validate_json(model.metadata_props[metadata.PASSPORT_KEY])
    assert passport.passes == pipeline()
    assert passport.workflow == "wf" and passport.workflow_digest.startswith("sha256:")


def test_the_passport_names_the_passes_and_options_of_the_compile() -> None:
    @namu.task
    def inc(x: int) -> int:
        return x + 1

    @namu.workflow
    def wf(x: int) -> int:
        return inc(x)

    art = namu.compile(wf, disable=["assign-priorities"], config=CompileConfig(retries=2))
    assert art.passport.passes == pipeline(2, ["assign-priorities"])
    assert art.passport.options["retries"] == 2
    assert art.passport.options["disabled_passes"] == ["assign-priorities"]
    assert art.passport.workflow == "wf" and art.passport.workflow_digest.startswith("sha256:")
    # A custom pass list without the pass: the compiler stamps the passport itself.
    custom = namu.compile(wf, passes=["verify-structure", "inline-functions"])
    assert custom.passport.passes == ["verify-structure", "inline-functions"]
    assert custom.passport.workflow_digest == art.passport.workflow_digest


def test_hand_built_models_get_a_passport_from_their_signature() -> None:
    model = parse("g (int64 x) => (int64 y) { y = Neg(x) }")
    model.metadata_props[metadata.SIGNATURE_KEY] = metadata.dump(
        metadata.Signature(name="handmade", file="", params=[metadata.Parameter(name="x", type="int")])
    )
    assert run_pass("verify-runtime-complete", model).modified
    passport = metadata.Passport.model_validate_json(model.metadata_props[metadata.PASSPORT_KEY])
    assert (passport.workflow, passport.workflow_digest, passport.passes) == ("handmade", "", ["verify-runtime-complete"])
    assert not run_pass("verify-runtime-complete", model).modified
