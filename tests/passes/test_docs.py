"""docs/passes.md is generated from the registry, and every pass's example is true."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from namu.passes import NamuPass, registered
from namu.passes.docs import render
from tests.passes.conftest import canonical, parse, run_pass

DOCS = Path(__file__).resolve().parents[2] / "docs" / "passes.md"
EXAMPLES = [p for p in registered() if issubclass(p.cls, NamuPass) and p.cls.EXAMPLE is not None]


def test_docs_are_generated_from_the_registry() -> None:
    assert DOCS.read_text() == render(), "docs/passes.md is stale: run `python -m namu.passes.docs > docs/passes.md`"


def test_every_pipeline_pass_has_an_example() -> None:
    missing = [p.name for p in registered() if p.in_pipeline and p not in EXAMPLES]
    assert not missing, f"passes without an EXAMPLE: {missing}"


@pytest.mark.parametrize("info", EXAMPLES, ids=lambda p: p.name)
def test_example_holds(info) -> None:
    example = info.cls.EXAMPLE
    model = parse(textwrap.dedent(example.before), example.pure_tasks, example.impure_tasks)
    if example.error:
        with pytest.raises(Exception) as caught:
            run_pass(info.name, model, **example.config)
        assert example.error in f"{type(caught.value).__name__}: {caught.value}"
        return
    run_pass(info.name, model, **example.config)
    expected = parse(textwrap.dedent(example.after or example.before), example.pure_tasks, example.impure_tasks)
    assert canonical(model.graph) == canonical(expected.graph)
    by_output = {node.outputs[0].name: node for node in model.graph if node.outputs}
    for name, props in example.metadata.items():
        assert {key: by_output[name].metadata_props.get(key) for key in props} == dict(props), name
