"""Each pass's stated guarantees, checked by its ``ensures(model)`` when the compile asks
for it (``CompileConfig(check_guarantees=True)``): on every pass's example, and on every
sample workflow of the test suite and of ``examples/`` at every level."""

from __future__ import annotations

import importlib
import pkgutil
import textwrap
from pathlib import Path

import onnx_ir as ir
import pytest

import namu
from namu.errors import NamuError, PassError
from namu.passes import CompileConfig, NamuPass, register, registered, registry, run_passes
from namu.passes.eliminate_dead_code import EliminateDeadCodePass
from namu.runtime.user_code import import_path
from tests.passes.conftest import parse, run_pass

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = [p for p in registered() if issubclass(p.cls, NamuPass) and p.cls.EXAMPLE is not None and not p.cls.EXAMPLE.error]


def _sample_workflows() -> list[namu.Workflow]:
    """The module-level workflows of wf_samples, of the frontend and pass tests, and of examples/."""
    modules = [import_path(path) for path in sorted(EXAMPLES_DIR.glob("*.py"))]
    for package in ("tests.frontend", "tests.passes"):
        for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
            if (info.name.startswith("test_") or info.name == "wf_samples") and info.name != "test_guarantees":
                modules.append(importlib.import_module(f"{package}.{info.name}"))
    found = {id(v): v for module in modules for v in vars(module).values() if isinstance(v, namu.Workflow)}
    return list(found.values())


SAMPLES = _sample_workflows()


def _proto(art: namu.Artifact) -> bytes:
    return ir.serde.serialize_model(art.model).SerializeToString()


@pytest.mark.parametrize("info", EXAMPLES, ids=lambda p: p.name)
def test_every_example_keeps_its_guarantees(info) -> None:
    example = info.cls.EXAMPLE
    model = parse(textwrap.dedent(example.before), example.pure_tasks, example.impure_tasks)
    run_pass(info.name, model, check_guarantees=True, **example.config)


def test_the_samples_cover_the_examples_and_wf_samples() -> None:
    names = {wf.name for wf in SAMPLES}
    assert {"collatz", "int_arith", "precedence"} <= names
    assert len(SAMPLES) > 50


@pytest.mark.parametrize("level", [0, 1, 2])
def test_every_sample_workflow_compiles_with_its_guarantees_checked(level: int) -> None:
    for wf in SAMPLES:
        try:
            plain = _proto(namu.compile(wf, opt_level=level))
        except NamuError as exc:  # a sample that is meant to be rejected: rejected the same way
            with pytest.raises(type(exc)):
                namu.compile(wf, config=CompileConfig(opt_level=level, check_guarantees=True))
            continue
        checked = namu.compile(wf, config=CompileConfig(opt_level=level, check_guarantees=True))
        assert _proto(checked) == plain, wf.name  # checking changes nothing


def test_a_broken_guarantee_names_the_pass_and_the_guarantee(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # undone after the test

    @register("lazy-dead-code", "claims dead-code elimination's guarantee, removes nothing")
    class LazyDeadCodePass(EliminateDeadCodePass):
        def call(self, model: ir.Model) -> ir.passes.PassResult:
            return self.result(model)

    text = "g (int64 x) => (int64 y) { dead = Add(x, x)  y = Neg(x) }"
    run_passes(parse(text), ["lazy-dead-code"])  # not checked by default
    config = CompileConfig(check_guarantees=True)
    with pytest.raises(PassError, match=r"pass 'lazy-dead-code' broke its guarantee: Add is unused .* \(the node of 'dead'\)") as caught:
        run_passes(parse(text), ["lazy-dead-code"], context=namu.passes.PassContext(config=config))
    assert caught.value.pass_name == "lazy-dead-code"
    assert "check_guarantees" not in namu.compile(SAMPLES[0], config=config).passport.options
