"""The pipeline driver: the clean-up group repeats until nothing changes, errors name
their pass, ``after_pass`` sees each pass's result, and the passport records the
capabilities the passes provide."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx_ir as ir
import pytest

import namu
from namu.errors import CompileError, TypeCheckError
from namu.ir.metadata import CAPABILITY_GATED, CAPABILITY_VERIFIED, Passport, dump
from namu.passes import NamuPass, register, registry, run_passes
from namu.passes.pipeline import MAX_ROUNDS
from namu.runtime.executors import ReferenceExecutor
from tests.passes.conftest import listing, parse

CLEANUP = ["fold-constants", "eliminate-common-subexpressions", "eliminate-dead-code", "simplify-control-flow"]

# The loop runs zero times: simplifying it leaves `w = Add(two, two)`, which folding then
# turns into a constant, and dead-code elimination sweeps the constants left unread.
EXPOSED = """
g (int64 x) => (int64 y) {
  zero = Constant <value = int64 {0}> ()
  c = Constant <value = bool {1}> ()
  two = Constant <value = int64 {2}> ()
  z = Loop (zero, c, two) <
    body = loop (int64 i, bool ci, int64 a) => (bool co, int64 a2) { co = Identity(ci)  a2 = Add(a, x) }
  >
  w = Add(z, two)
  y = Add(w, x)
}"""


@pytest.fixture
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by the test are undone after it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_the_cleanup_group_repeats_until_nothing_changes() -> None:
    model = parse(EXPOSED)
    _, records = run_passes(model, CLEANUP)
    assert listing(model.graph) == ["w = Constant()", "y = Add(w,x)"]
    # one record per pass, its runs merged: simplify changed the model in round 1, so
    # round 2 ran every other pass; fold's change there made simplify run again, the
    # sweep's did not (it only removes unread nodes), and no pass reran for its own change
    assert [(r.name, r.runs) for r in records] == [
        ("fold-constants", 2),
        ("eliminate-common-subexpressions", 2),
        ("eliminate-dead-code", 2),
        ("simplify-control-flow", 2),
    ]
    assert [r.name for r in records if r.modified] == ["fold-constants", "eliminate-dead-code", "simplify-control-flow"]


def test_passes_run_one_at_a_time_do_not_repeat() -> None:
    model = parse(EXPOSED)
    records = [run_passes(model, [name])[1][0] for name in CLEANUP]
    assert [r.runs for r in records] == [1, 1, 1, 1]
    # what simplifying the loop exposed stays: nothing ran after simplify-control-flow
    assert listing(model.graph) == ["zero = Constant()", "c = Constant()", "two = Constant()", "w = Add(two,two)", "y = Add(w,x)"]


def test_after_pass_sees_first_runs_and_later_changes() -> None:
    seen: list[tuple[str, int]] = []
    run_passes(parse(EXPOSED), ["verify-structure", *CLEANUP], after_pass=lambda name, i, _: seen.append((name, i)))
    first = [("verify-structure", 0), *((name, i) for i, name in enumerate(CLEANUP, 1))]
    # in the second round, fold and the sweep changed the model
    assert seen == [*first, ("fold-constants", 1), ("eliminate-dead-code", 3)]


def test_a_group_that_keeps_changing_stops_after_max_rounds(own_registry: None, caplog: pytest.LogCaptureFixture) -> None:
    class FlipPass(NamuPass):
        """Always changes the model."""

        def call(self, model: ir.Model) -> ir.passes.PassResult:
            model.metadata_props["flip"] = "1" if model.metadata_props.get("flip") != "1" else "0"
            self.changed()
            return self.result(model)

    register("zz-flip", "always changes the model", group="churn")(FlipPass)
    register("zz-flop", "always changes the model", group="churn")(type("FlopPass", (FlipPass,), {}))
    with caplog.at_level(logging.INFO, logger="namu.passes.pipeline"):
        _, records = run_passes(parse("g (int64 x) => (int64 y) { y = Neg(x) }"), ["zz-flip", "zz-flop"])
    assert [r.runs for r in records] == [MAX_ROUNDS, MAX_ROUNDS]
    assert f"group 'churn' still changed the model after {MAX_ROUNDS} rounds" in caplog.text


def test_errors_raised_in_a_pass_name_it_and_keep_their_message() -> None:
    model = parse('g (int64 x) => (int64 y) { y = namu.Task <task = "ghost"> (x) }')
    with pytest.raises(CompileError) as caught:
        run_passes(model, ["verify-structure", "resolve-symbols"])
    assert str(caught.value) == "task 'ghost' is not in the task table"
    assert caught.value.pass_name == "resolve-symbols"
    assert caught.value.__notes__ == ["in compiler pass 'resolve-symbols'"]


@namu.task
def _inc(x: int) -> int:
    return x + 1


@namu.workflow
def _mistyped(x: str) -> int:
    return _inc(x)


@namu.task(retries=2)
def _fetch(x: int) -> int:
    return x


@namu.workflow
def _fetching(x: int) -> int:
    return _fetch(x)


def test_compile_errors_name_the_pass() -> None:
    with pytest.raises(TypeCheckError, match="task '_inc' parameter 'x' expects int, got str") as caught:
        namu.compile(_mistyped)
    assert caught.value.pass_name == "infer-types"


def test_the_passport_records_what_the_passes_provide(tmp_path: Path) -> None:
    art = namu.compile(_fetching)
    assert art.passport.capabilities == [CAPABILITY_GATED, CAPABILITY_VERIFIED]
    assert art.passport.provides(CAPABILITY_GATED) and art.passport.provides(CAPABILITY_VERIFIED)
    art.save(tmp_path / "fetching.onnx")
    assert namu.load(tmp_path / "fetching.onnx").passport.capabilities == [CAPABILITY_GATED, CAPABILITY_VERIFIED]
    # a custom pass list without them: the compiler completes the passport, with none
    custom = namu.compile(_fetching, passes=["verify-structure", "inline-functions"])
    assert custom.passport.passes == ["verify-structure", "inline-functions"]
    assert custom.passport.capabilities == []
    assert not custom.passport.provides(CAPABILITY_GATED)


def test_older_passports_read_the_capabilities_from_their_passes() -> None:
    old = Passport(namu_version="0.1.0", workflow="w", workflow_digest="", passes=["insert-resilience-gates"], onnx_opset=21)
    assert old.capabilities is None and "capabilities" not in dump(old)
    assert old.provides(CAPABILITY_GATED) and not old.provides(CAPABILITY_VERIFIED)
    assert ReferenceExecutor({}, passport=old).gated
    new = old.model_copy(update={"capabilities": []})  # capabilities say it: passes are not read
    assert not new.provides(CAPABILITY_GATED)
    assert not ReferenceExecutor({}, passport=new).gated
