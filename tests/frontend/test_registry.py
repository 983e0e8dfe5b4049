"""The frontend registry: sources found by object type and by file suffix, a new frontend
as one registration (the ``.chain`` example of docs/architecture.md), artifacts told apart
from sources in one call."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import namu
from namu.errors import SourceError, TaskDefinitionError, WorkflowSyntaxError
from namu.frontend import registry
from namu.frontend.registry import (
    FrontendEntry,
    frontend_for,
    frontends,
    load_source,
    register_frontend,
    source_kind,
    split_target,
    unregister_frontend,
)
from namu.ir.metadata import SPAN_KEY
from tests.conftest import run_both
from tests.frontend import chain_frontend
from tests.frontend.chain_frontend import Chain

PIPELINE = """\
# double, then add one
tests.frontend.chain_frontend:double

tests.frontend.chain_frontend:increment
"""


@pytest.fixture
def chain() -> Iterator[FrontendEntry]:
    """The ``.chain`` frontend, registered for the test only."""
    entry = register_frontend("chain", "tests.frontend.chain_frontend:FRONTEND", suffixes=[".chain"], types=[Chain])
    yield entry
    unregister_frontend("chain")


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.chain"
    path.write_text(PIPELINE)
    return path


def test_a_chain_file_compiles_and_runs(chain: FrontendEntry, pipeline: Path) -> None:
    art = namu.compile(pipeline)
    assert run_both(art, x=5).value == 11
    assert namu.compile(str(pipeline), opt_level=0)(x=0) == 1
    assert art.signature.name == "pipeline" and [p.name for p in art.signature.params] == ["x"]


def test_the_cli_lookup_tells_a_source_from_an_artifact(chain: FrontendEntry, pipeline: Path, tmp_path: Path) -> None:
    """What the CLI calls: ``source_kind`` on the target, then ``load_source`` and
    ``namu.compile``, or ``namu.load`` for an artifact."""
    assert source_kind(pipeline) == "source"
    source = load_source(str(pipeline))
    assert isinstance(source, Chain) and frontend_for(source) is chain_frontend.FRONTEND
    saved = namu.compile(source).save(tmp_path / "pipeline.onnx")
    assert source_kind(saved) == "artifact"
    assert namu.load(saved)(x=2) == 5


def test_nodes_keep_the_line_they_came_from(chain: FrontendEntry, pipeline: Path) -> None:
    model = registry.lower(pipeline).model
    spans = [node.metadata_props[SPAN_KEY] for node in model.graph]
    assert spans == [f"{pipeline.resolve()}:2:1", f"{pipeline.resolve()}:4:1"]


def test_a_chain_error_points_at_its_line(chain: FrontendEntry, tmp_path: Path) -> None:
    path = tmp_path / "broken.chain"
    path.write_text("tests.frontend.chain_frontend:double\ntests.frontend.chain_frontend:Chain\n")
    with pytest.raises(WorkflowSyntaxError) as info:
        namu.compile(path)
    assert (info.value.lineno, info.value.source_line) == (2, "tests.frontend.chain_frontend:Chain")
    assert "is not a @namu.task" in info.value.reason


def test_a_python_file_compiles_by_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "namu_registry_flows.py"
    path.write_text(
        textwrap.dedent(
            """
            import namu

            @namu.task
            def inc(a: int) -> int:
                return a + 1

            @namu.workflow
            def once(a: int) -> int:
                return inc(a)

            @namu.workflow
            def twice(a: int) -> int:
                return inc(inc(a))
            """
        )
    )
    monkeypatch.delitem(sys.modules, "namu_registry_flows", raising=False)
    assert namu.compile(f"{path}:twice")(a=1) == 3
    assert load_source(f"{path}:once").name == "once"
    with pytest.raises(SourceError, match="several workflows \\(once, twice\\)"):
        namu.compile(path)
    with pytest.raises(SourceError, match="no workflow named 'thrice'.*available: once, twice"):
        load_source(f"{path}:thrice")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("data.txt", "expected a workflow file \\(FILE.py\\[:WORKFLOW\\], FILE.yaml, FILE.yml\\) or an artifact"),
        ("missing.py", "no such file: missing.py"),
        ("flow.py:not-a-name", "invalid workflow name 'not-a-name'"),
    ],
)
def test_targets_no_frontend_can_open(target: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.txt").write_text("hello")
    with pytest.raises(SourceError, match=message):
        source_kind(target)
        load_source(target)


def test_an_artifact_is_not_a_source(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="compiled artifact .*namu.load"):
        load_source(tmp_path / "flow.onnx")


def test_compile_lists_what_it_accepts() -> None:
    with pytest.raises(TaskDefinitionError, match="namu.frontend.workflow.Workflow \\(python frontend\\).*FILE.py"):
        namu.compile(42)


def test_a_claimed_suffix_or_type_cannot_be_registered_twice(chain: FrontendEntry) -> None:
    for suffixes, types in (([".CHAIN"], []), ([], ["tests.frontend.chain_frontend.Chain"]), ([".onnx"], []), (["chain2"], [])):
        with pytest.raises(ValueError):
            register_frontend("other", chain_frontend.FRONTEND, suffixes=suffixes, types=types)
    with pytest.raises(ValueError, match="already registered"):
        register_frontend("chain", chain_frontend.FRONTEND)
    assert [entry.name for entry in frontends()] == ["python", "agent", "chain"]


def test_every_registered_frontend_is_reachable(chain: FrontendEntry) -> None:
    """Each entry's frontend imports and lowers and loads; each of its classes exists and
    dispatches to it; each of its suffixes is a source and splits ``FILE.ext:NAME`` when
    its files hold several sources."""
    for entry in frontends():
        frontend = entry.frontend()
        assert callable(frontend.lower) and callable(frontend.load)
        for type_name in entry.types:
            module, _, qualname = type_name.rpartition(".")
            cls = getattr(importlib.import_module(module), qualname)
            assert frontend_for(cls.__new__(cls)) is frontend
        for suffix in entry.suffixes:
            assert source_kind(f"flow{suffix}") == "source"
            named = (Path(f"flow{suffix}"), "main") if entry.named else (Path(f"flow{suffix}:main"), None)
            assert split_target(f"flow{suffix}:main") == named


def test_import_namu_does_not_import_a_frontend() -> None:
    code = "import sys, namu; print(sorted(m for m in sys.modules if m == 'namu.frontend.python'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
