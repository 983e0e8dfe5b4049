"""Saving, loading and resolving artifacts: staleness, missing code, corrupt files."""

from __future__ import annotations

import linecache
import sys
import textwrap
from pathlib import Path

import onnx
import pytest

import namu
from namu.frontend.source import source_digest
from namu.runtime.modules import import_path

MODULE = '''
import namu

@namu.task
def add(a: int, b: int) -> int:
    return a + b

@namu.task
def pair(x: int) -> tuple[int, str]:
    return x, str(x)

@namu.workflow
def compute(x: int = 1) -> int:
    y = add(x, 2)
    return add(y, 40)

@namu.workflow
def both(x: int):
    n, s = pair(x)
    return {"n": add(n, 1), "s": s}
'''


def _write_module(tmp_path: Path, name: str, source: str = MODULE) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def _forget(name: str, path: Path) -> None:
    """Make the next import re-read the file, as a fresh process would."""
    sys.modules.pop(name, None)
    linecache.checkcache(str(path))


def test_save_load_run_matches_direct_call(tmp_path: Path, executor: str) -> None:
    module = import_path(_write_module(tmp_path, "art_roundtrip"))
    direct = module.compute(x=5)
    out = namu.compile(module.compute).save(tmp_path / "compute.onnx")
    onnx.checker.check_model(onnx.load(out), full_check=True)
    loaded = namu.load(out)
    assert loaded.run(x=5, executor=executor).value == direct == 47
    assert loaded(x=1) == 43
    assert loaded() == 43  # the default of x travels in the signature


def test_dict_return_and_tuple_unpack_roundtrip(tmp_path: Path, executor: str) -> None:
    module = import_path(_write_module(tmp_path, "art_dict"))
    path = namu.compile(module.both).save(tmp_path / "both.onnx")
    assert namu.load(path).run(7, executor=executor).value == {"n": 8, "s": "7"}


def test_load_falls_back_to_file_when_module_is_not_importable(tmp_path: Path) -> None:
    path = _write_module(tmp_path, "art_fallback")
    module = import_path(path)
    out = namu.compile(module.compute).save(tmp_path / "c.onnx")
    _forget("art_fallback", path)
    sys.path.remove(str(tmp_path))  # the module name no longer resolves: only the file does
    try:
        assert namu.load(out)(x=2) == 44
    finally:
        sys.modules.pop("art_fallback", None)


def test_stale_task_is_detected_and_named(tmp_path: Path) -> None:
    path = _write_module(tmp_path, "art_stale")
    module = import_path(path)
    out = namu.compile(module.compute).save(tmp_path / "c.onnx")
    path.write_text(path.read_text().replace("return a + b", "return a + b + 1000"))
    _forget("art_stale", path)
    with pytest.raises(namu.StaleArtifactError) as info:
        namu.load(out)
    assert info.value.task == "add"
    assert "add" in str(info.value) and "strict=False" in str(info.value)
    _forget("art_stale", path)
    assert namu.load(out, strict=False)(x=1) == 2043  # runs the current code (add now adds 1000 more, twice)


def test_missing_module_and_task_are_named(tmp_path: Path) -> None:
    path = _write_module(tmp_path, "art_missing")
    module = import_path(path)
    out = namu.compile(module.compute).save(tmp_path / "c.onnx")
    path.write_text(path.read_text().replace("def add(", "def renamed_add("))
    _forget("art_missing", path)
    with pytest.raises(namu.TaskResolutionError, match="add"):
        namu.load(out)
    path.unlink()
    _forget("art_missing", path)
    with pytest.raises(namu.TaskResolutionError, match="no longer exists"):
        namu.load(out)


def test_tasks_defined_in_functions_cannot_be_loaded(tmp_path: Path) -> None:
    @namu.task
    def local(a: int) -> int:
        return a

    @namu.workflow
    def wf(a: int) -> int:
        return local(a)

    out = namu.compile(wf).save(tmp_path / "local.onnx")
    with pytest.raises(namu.TaskResolutionError, match="module level"):
        namu.load(out)


def test_corrupt_and_foreign_files_are_artifact_errors(tmp_path: Path) -> None:
    with pytest.raises(namu.ArtifactError, match="no such artifact"):
        namu.load(tmp_path / "nope.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00\x01not a protobuf at all\xff" * 10)
    with pytest.raises(namu.ArtifactError):
        namu.load(corrupt)
    foreign = tmp_path / "foreign.onnx"
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    onnx.save(onnx.helper.make_model(graph), foreign)
    with pytest.raises(namu.ArtifactError, match="not a namu artifact"):
        namu.load(foreign)


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    module = import_path(_write_module(tmp_path, "art_atomic"))
    art = namu.compile(module.compute)
    target = tmp_path / "out" / "compute.onnx"
    art.save(target)
    art.save(target)  # overwriting works
    assert sorted(p.name for p in target.parent.iterdir()) == ["compute.onnx"]


def test_passport_and_task_table(tmp_path: Path) -> None:
    path = _write_module(tmp_path, "art_passport")
    module = import_path(path)
    art = namu.compile(module.compute)
    assert art.passport.namu_version == namu.__version__
    assert art.passport.workflow == "compute"
    assert art.passport.passes == namu.passes.pipeline()
    assert art.passport.workflow_digest == source_digest(module.compute.fn)
    (entry,) = art.task_table.tasks
    assert (entry.key, entry.module, entry.qualname, entry.file) == ("add", "art_passport", "add", str(path))
    assert entry.digest == module.add.digest



SHADOWING = '''
import namu

@namu.task
def scale(workers: int, checkpoint: str) -> str:
    return checkpoint * workers

@namu.workflow
def shadow(workers: int, checkpoint: str = "ab") -> str:
    return scale(workers, checkpoint)
'''


def test_workflow_parameters_named_like_run_options_are_inputs(tmp_path: Path) -> None:
    """`workers` and `checkpoint` are run options of Artifact.run, and here also parameters
    of the workflow: a keyword naming a parameter is an input, as in a plain call."""
    path = tmp_path / "shadowing.py"
    path.write_text(SHADOWING)
    wf = import_path(path).shadow
    assert wf(workers=3) == "ababab"
    assert wf(workers=2, checkpoint="xy", task_mode="thread") == "xyxy"
    assert wf.run(workers=1, executor="reference").executor == "reference"
    # the shadowed options are set with with_options; other keywords stay inputs
    ckpt = tmp_path / "run.ckpt"
    art = wf.with_options(checkpoint=ckpt, workers=2, task_mode="thread")
    assert art(workers=2) == "abab"
    assert ckpt.exists()
    assert art.run(workers=2).resumed_calls == 1  # the checkpoint served the recorded call
    with pytest.raises(TypeError, match="unknown run option\\(s\\) 'worker'; run options are: executor"):
        wf.with_options(worker=2)
