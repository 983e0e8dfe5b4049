"""The examples in ``examples/``: compiled, checked, run on both executors, saved and loaded.

``stdlib_stats`` over the whole standard library takes several seconds per run, so it
runs once in full (on the kernel); the executor and save/load comparisons use a small
package and a generated tree with files that do not parse.
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path
from typing import Any

import onnx
import pytest

import namu
from namu.runtime.user_code import import_path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STDLIB = sysconfig.get_paths()["stdlib"]


@pytest.fixture(scope="module")
def collatz() -> Any:
    return import_path(EXAMPLES / "collatz.py")


@pytest.fixture(scope="module")
def stdlib_stats() -> Any:
    return import_path(EXAMPLES / "stdlib_stats.py")


def run_both(art: namu.Artifact, **inputs: Any) -> namu.RunResult:
    """Run on the kernel and the reference interpreter; both must agree exactly."""
    kernel = art.run(executor="kernel", **inputs)
    reference = art.run(executor="reference", **inputs)
    assert kernel.value == reference.value
    assert type(kernel.value) is type(reference.value)
    assert kernel.skipped == reference.skipped
    return kernel


def same(a: Any, b: Any) -> None:
    """Equal values of equal types, recursively (1 == 1.0 == True is not enough)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("module", ["collatz", "stdlib_stats"])
def test_example_compiles_to_a_valid_onnx_model(module: str, request: pytest.FixtureRequest) -> None:
    mod = request.getfixturevalue(module)
    art = namu.compile(getattr(mod, module))
    onnx.checker.check_model(art.to_proto(), full_check=True)


# ---------------------------------------------------------------------- collatz
@pytest.mark.parametrize("limit", [0, 1, 2, 3, 27, 300])
def test_collatz_matches_plain_python(collatz: Any, limit: int) -> None:
    art = namu.compile(collatz.collatz)
    result = run_both(art, limit=limit)
    same(result.value, collatz.collatz.fn(limit))
    assert result.skipped == []


def test_collatz_known_answers(collatz: Any) -> None:
    art = namu.compile(collatz.collatz)
    assert art(limit=27) == {"n": 27, "steps": 111, "peak": 9232, "kind": "medium", "mean_steps": 387 / 27, "count": 27}
    big = art.run(limit=7000).value  # kernel only: the reference interpreter is slower
    same(big, collatz.collatz.fn(7000))
    assert (big["n"], big["steps"], big["kind"]) == (6171, 261, "long")
    assert art(limit=1)["kind"] == "trivial" and art(limit=2)["kind"] == "short"


def test_collatz_chain_subworkflow(collatz: Any) -> None:
    art = namu.compile(collatz.chain)
    for n in (1, 2, 6, 7, 27, 97):
        same(run_both(art, n=n).value, collatz.chain.fn(n))


def test_collatz_save_load(collatz: Any, tmp_path: Path) -> None:
    art = namu.compile(collatz.collatz)
    path = art.save(tmp_path / "collatz.onnx")
    loaded = namu.load(path)
    direct = collatz.collatz.run(limit=200)
    for executor in ("kernel", "reference"):
        same(loaded.run(limit=200, executor=executor).value, direct.value)


# ---------------------------------------------------------------------- stdlib_stats
def check_consistent(value: dict, result: namu.RunResult, top: int) -> None:
    totals = value["totals"]
    assert totals["parsed"] + totals["skipped"] == totals["files"]
    assert totals["skipped"] == len(result.skipped)
    assert all(item.task == "analyze" for item in result.skipped)
    assert [item.index for item in result.skipped] == sorted({item.index for item in result.skipped})
    assert 0.0 <= totals["docstring_coverage"] <= 1.0
    largest = value["largest"]
    assert len(largest) == min(top, totals["parsed"])
    assert [m["lines"] for m in largest] == sorted((m["lines"] for m in largest), reverse=True)
    assert sum(m["lines"] for m in largest) <= totals["lines"]
    counts = [m["importers"] for m in value["most_imported"]]
    assert counts == sorted(counts, reverse=True)
    assert all(0 < c <= totals["parsed"] for c in counts)


def test_stdlib_stats_package_on_both_executors(stdlib_stats: Any, tmp_path: Path) -> None:
    root = os.path.join(STDLIB, "json")
    art = namu.compile(stdlib_stats.stdlib_stats)
    result = run_both(art, root=root, top=3)
    value = result.value
    files = sorted(p for p in os.listdir(root) if p.endswith(".py"))
    assert value["totals"]["files"] == len(files) and value["totals"]["skipped"] == 0
    check_consistent(value, result, 3)
    assert {m["module"] for m in value["largest"]} <= {"json", *(f"json.{f[:-3]}" for f in files)}
    # the module docstring of json/__init__.py counts; json/decoder.py imports re
    assert any(m["module"] == "re" for m in value["most_imported"])
    # saved and loaded: the same result
    loaded = namu.load(art.save(tmp_path / "stdlib_stats.onnx"))
    assert loaded.run(root=root, top=3).value == value


SOURCES = {
    "pkg/__init__.py": '"""A package."""\nimport os\n',
    "pkg/core.py": (
        '"""Core."""\nimport os.path\nimport sys, json as j\nfrom collections import abc\n'
        "from . import sibling\nfrom .sub import thing\n\n"
        'class A:\n    """Doc."""\n    def method(self):\n        pass\n\n'
        "    async def other(self):\n        '''Doc.'''\n\n"
        "def outer():\n    def inner():\n        import re\n    return inner\n"
    ),
    "pkg/sub/__init__.py": "",
    "pkg/sub/deep.py": "if True:\n    try:\n        import zlib\n    except ImportError:\n        zlib = None\n",
    "pkg/broken.py": "def (:\n",
    "scripts/bad_coding.py": "# -*- coding: no-such-codec -*-\nx = 1\n",
    "scripts/latin.py": "# -*- coding: latin-1 -*-\ns = '\xe9'\n",
    "scripts/escapes.py": "s = '\\d'\n",
    "notes.txt": "not python",
}


@pytest.fixture
def source_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for rel, text in SOURCES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        encoding = "latin-1" if "latin" in rel else "utf-8"
        path.write_bytes(text.encode(encoding))
    (root / "site-packages").mkdir()
    (root / "site-packages" / "ignored.py").write_text("import ignored\n")
    return root


def test_stdlib_stats_metrics_on_a_known_tree(stdlib_stats: Any, source_tree: Path) -> None:
    art = namu.compile(stdlib_stats.stdlib_stats)
    result = run_both(art, root=str(source_tree), top=2)
    paths = stdlib_stats.list_sources.fn(str(source_tree))
    names = [os.path.relpath(p, source_tree) for p in paths]
    assert names == sorted(names) and "site-packages/ignored.py" not in names and len(names) == 8
    skipped = {names[item.index] for item in result.skipped}
    assert skipped == {"pkg/broken.py", "scripts/bad_coding.py"}
    assert all(item.error.startswith("SyntaxError") for item in result.skipped)
    value = result.value
    check_consistent(value, result, 2)
    assert value["totals"] == {
        "files": 8,
        "parsed": 6,
        "skipped": 2,
        "lines": sum(len(SOURCES[n].splitlines()) for n in names if n not in skipped),
        "functions": 4,
        "classes": 1,
        "docstring_coverage": 0.25,  # (pkg 1/1 + pkg.core 3/6 + four undocumented) / 6
    }
    core = stdlib_stats.analyze.fn(str(source_tree / "pkg" / "core.py"))
    assert core["module"] == "pkg.core"
    assert core["imports"] == ["collections", "json", "os", "re", "sys"]
    assert (core["functions"], core["classes"], core["documented"], core["documentable"]) == (4, 1, 3, 6)
    assert stdlib_stats.analyze.fn(str(source_tree / "pkg" / "__init__.py"))["module"] == "pkg"
    assert stdlib_stats.analyze.fn(str(source_tree / "pkg" / "sub" / "deep.py"))["module"] == "pkg.sub.deep"
    assert stdlib_stats.analyze.fn(str(source_tree / "scripts" / "latin.py"))["module"] == "latin"
    assert value["largest"][0] == {"module": "pkg.core", "lines": len(SOURCES["pkg/core.py"].splitlines())}
    assert value["most_imported"] == [{"module": "os", "importers": 2}, {"module": "collections", "importers": 1}]


def test_stdlib_stats_full_standard_library(stdlib_stats: Any) -> None:
    """One full run over the running Python's standard library (kernel executor)."""
    result = stdlib_stats.stdlib_stats.run()
    value = result.value
    totals = value["totals"]
    assert totals["files"] > 500
    assert totals["files"] == len(stdlib_stats.list_sources.fn(""))
    assert totals["skipped"] > 0  # the stdlib ships files with bad syntax on purpose
    check_consistent(value, result, 10)
    assert totals["lines"] > 100_000 and totals["functions"] > 10_000 and totals["classes"] > 1_000
    assert {m["module"] for m in value["most_imported"][:5]} & {"os", "sys", "unittest"}
    assert all("site-packages" not in stdlib_stats.list_sources.fn("")[item.index] for item in result.skipped)
