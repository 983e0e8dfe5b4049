"""The pass registry, the canonical pipeline and its levels, and the pipeline driver."""

from __future__ import annotations

import re

import onnx_ir as ir
import pytest

import namu
from namu.passes import NamuPass, get, pipeline, register, registered, registry, run_passes
from tests.passes.conftest import parse

CANONICAL = [
    "verify-structure",
    "resolve-symbols",
    "inline-functions",
    "expand-defaults",
    "infer-types",
    "fold-constants",
    "eliminate-common-subexpressions",
    "eliminate-dead-code",
    "simplify-control-flow",
    "fuse-tasks",
    "infer-placement",
    "synthesize-wire-ops",
    "partition",
    "resolve-slots",
    "insert-resilience-gates",
    "plan-lifetimes",
    "assign-priorities",
    "verify-runtime-complete",
]
OPTIMIZATIONS = {
    "fold-constants": 1,
    "eliminate-common-subexpressions": 1,
    "eliminate-dead-code": 1,
    "simplify-control-flow": 2,
    "fuse-tasks": 2,
    "assign-priorities": 2,
}


def test_the_canonical_pipeline_has_the_eighteen_passes_in_order() -> None:
    assert pipeline() == CANONICAL
    assert pipeline(2) == namu.passes.default_pipeline()


def test_levels_keep_the_required_passes() -> None:
    assert pipeline(0) == [n for n in CANONICAL if n not in OPTIMIZATIONS]
    assert pipeline(1) == [n for n in CANONICAL if OPTIMIZATIONS.get(n, 0) <= 1]
    for name, level in OPTIMIZATIONS.items():
        assert get(name).level == level and not get(name).required


def test_disabling_passes() -> None:
    assert "fuse-tasks" not in pipeline(2, ["fuse-tasks"])
    with pytest.raises(ValueError, match="pass 'partition' is required"):
        pipeline(2, ["partition"])
    with pytest.raises(KeyError, match="unknown pass 'nope'"):
        pipeline(2, ["nope"])
    with pytest.raises(ValueError, match="opt_level must be 0, 1 or 2"):
        pipeline(3)


def test_registered_passes_follow_the_conventions() -> None:
    for info in registered():
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", info.name)
        assert info.cls.__name__.endswith("Pass")
        assert issubclass(info.cls, NamuPass)
        assert info.summary and "\n" not in info.summary
        assert info.cls.__doc__


def test_unknown_pass_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="registered passes: .*verify-structure"):
        get("no-such-pass")


def test_duplicate_registration_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register("verify-structure", "again")(type("AgainPass", (ir.passes.InPlacePass,), {}))


def test_pipeline_names_the_failing_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # undone after the test

    class ExplodePass(ir.passes.InPlacePass):
        def call(self, model: ir.Model) -> ir.passes.PassResult:
            raise RuntimeError("kaboom")

    register("explode-for-test", "always fails")(ExplodePass)
    model = parse("g (int64 x) => (int64 y) { y = Neg(x) }")
    with pytest.raises(namu.PassError, match="pass 'explode-for-test' failed: RuntimeError: kaboom"):
        run_passes(model, ["verify-structure", "explode-for-test"])


def test_pipeline_records_what_each_pass_did() -> None:
    model = parse("g (int64 x) => (int64 y) { dead = Add(x, x)  dead2 = Mul(dead, x)  y = Neg(x) }")
    _, records = run_passes(model, ["verify-structure", "eliminate-dead-code"])
    assert [(r.name, r.modified, r.changes) for r in records] == [
        ("verify-structure", False, 0),
        ("eliminate-dead-code", True, 2),
    ]
    assert all(r.seconds >= 0 for r in records)


@namu.task
def _double(x: int) -> int:
    return 2 * x


@namu.workflow
def _twice(x: int) -> int:
    return _double(_double(x))


def test_a_user_pass_runs_where_it_is_inserted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # undone after the test
    seen: list[tuple[int, list[str]]] = []

    @register("count-task-calls", "counts task calls (a user's pass)")
    class CountTaskCallsPass(NamuPass):
        def call(self, model: ir.Model) -> ir.passes.PassResult:
            calls = [n for n in model.graph if n.op_type == "Task"]
            seen.append((len(calls), list(self.context.pipeline)))
            return self.result(model)

    passes = pipeline()
    passes.insert(passes.index("fuse-tasks"), "count-task-calls")
    art = namu.compile(_twice, passes=passes)
    assert art(3) == 12
    assert seen == [(2, passes)]  # before fuse-tasks: both calls are still there
    assert art.passport.passes == passes
    assert [r.name for r in art.pass_records] == passes
