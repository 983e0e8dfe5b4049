"""The pass registry, the pipeline driver, and docs/passes.md kept in step with both."""

from __future__ import annotations

import re
from pathlib import Path

import onnx_ir as ir
import pytest

import namu
from namu.passes import default_pipeline, get, register, registered, registry, run_passes
from tests.passes.conftest import parse

DOCS = Path(__file__).resolve().parents[2] / "docs" / "passes.md"


def test_default_pipeline_order() -> None:
    assert default_pipeline() == ["verify-structure", "inline-functions", "eliminate-dead-code", "sort-topologically"]


def test_every_registered_pass_is_documented_in_pipeline_order() -> None:
    sections = re.findall(r"^## (\S+)$", DOCS.read_text(), flags=re.M)
    assert sections == [p.name for p in registered()]


def test_registered_passes_follow_the_conventions() -> None:
    for info in registered():
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", info.name)
        assert info.cls.__name__.endswith("Pass")
        assert issubclass(info.cls, ir.passes.PassBase)
        assert info.summary and "\n" not in info.summary


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
    model = parse("g (int64 x) => (int64 y) { dead = Add(x, x)  y = Neg(x) }")
    _, records = run_passes(model)
    assert [(r.name, r.modified) for r in records] == [
        ("verify-structure", False),
        ("inline-functions", False),
        ("eliminate-dead-code", True),
        ("sort-topologically", False),
    ]
