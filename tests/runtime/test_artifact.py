"""Saving, loading and resolving artifacts: staleness, missing code, corrupt files."""

from __future__ import annotations

import json
import linecache
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import onnx
import pytest

import namu
from namu.frontend.source import source_digest
from namu.runtime.user_code import import_path

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


# ---------------------------------------------------------------------- damaged artifacts
def _meta(proto: onnx.ModelProto, key: str) -> onnx.StringStringEntryProto:
    return next(p for p in proto.metadata_props if p.key == key)


def _edit_json(key: str, edit):  # noqa: ANN001, ANN202
    """A damage: ``edit(value)`` applied to the JSON stored under ``key``."""

    def damage(proto: onnx.ModelProto) -> None:
        entry = _meta(proto, key)
        value = json.loads(entry.value)
        edit(value)
        entry.value = json.dumps(value)

    return damage


def _set_json_text(key: str, text: str):  # noqa: ANN202
    def damage(proto: onnx.ModelProto) -> None:
        _meta(proto, key).value = text

    return damage


def _no_outputs(proto: onnx.ModelProto) -> None:
    del proto.graph.output[:]


def _ghost_input(proto: onnx.ModelProto) -> None:
    proto.graph.node[-1].input[0] = "ghost"


def _call_unknown_task(proto: onnx.ModelProto) -> None:
    def rename(graph: onnx.GraphProto) -> None:  # every task call, fused bodies included
        for node in graph.node:
            for attr in node.attribute:
                if attr.name == "task":
                    attr.s = b"nosuchtask"
                elif attr.type == onnx.AttributeProto.GRAPH:
                    rename(attr.g)

    rename(proto.graph)


#: hand edits of a valid artifact (protobuf stays valid), and what the error says.
DAMAGES = {
    "signature is not JSON": (_set_json_text("namu.signature", '{"file": 3'), "namu.signature: Invalid JSON"),
    "signature field of the wrong type": (_edit_json("namu.signature", lambda s: s.update(params="x")), "namu.signature: params"),
    "task option of the wrong type": (
        _edit_json("namu.tasks", lambda t: t["tasks"][0].update(options={"retries": "many"})),
        "namu.tasks: tasks.0.options.retries",
    ),
    "graph without outputs": (_no_outputs, "the signature returns one value but the graph has 0 output(s)"),
    "dict signature over one output": (
        _edit_json("namu.signature", lambda s: s.update(returns="dict", return_keys=["a", "b"])),
        "the signature returns a dict of 2 key(s) but the graph has 1 output(s)",
    ),
    "more parameters than graph inputs": (
        _edit_json("namu.signature", lambda s: s["params"].append({"name": "y", "type": "int", "has_default": True, "default": 0})),
        "the signature has 2 parameter(s) but the graph takes 1 input(s)",
    ),
    "parameter name that is not an identifier": (
        _edit_json("namu.signature", lambda s: s["params"][0].update(name="x-y")),
        "parameter name 'x-y' is not a Python identifier",
    ),
    "a task the graph calls is not in the table": (_call_unknown_task, "the graph calls task 'nosuchtask', which is not in the task table"),
    "empty task table": (_edit_json("namu.tasks", lambda t: t.update(tasks=[])), "the graph calls task 'add', which is not in the task table"),
    "fallback not in the table": (
        _edit_json("namu.tasks", lambda t: t["tasks"][0].update(options={"fallback": "gone"})),
        "task 'add' falls back to 'gone', which is not in the task table",
    ),
    "a node reads an undefined value": (_ghost_input, "has a damaged graph: Input 'ghost'"),
    "compiled by a newer namu": (
        _edit_json("namu.passport", lambda p: p.update(namu_version="999.0.0", field_of_the_future=1)),
        f"compiled by namu 999.0.0, newer than this namu {namu.__version__}",
    ),
    "namu version that is not a version": (
        _edit_json("namu.passport", lambda p: p.update(namu_version="banana")),
        "namu_version 'banana' is not a version",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_artifacts_are_artifact_errors_at_load_time(tmp_path: Path, damage: str) -> None:
    """A hand-edited artifact is refused by namu.load with one line naming the damage,
    before any of its tasks is imported or anything runs."""
    module = import_path(_write_module(tmp_path, "art_damaged"))
    proto = namu.compile(module.compute).to_proto()
    edit, expected = DAMAGES[damage]
    edit(proto)
    path = tmp_path / "damaged.onnx"
    onnx.save(proto, path)
    with pytest.raises(namu.ArtifactError) as info:
        namu.load(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message, message
    assert expected in message


def test_an_older_namus_artifact_loads(tmp_path: Path) -> None:
    module = import_path(_write_module(tmp_path, "art_older"))
    proto = namu.compile(module.compute).to_proto()
    _edit_json("namu.passport", lambda p: p.update(namu_version="0.0.1"))(proto)
    onnx.save(proto, tmp_path / "older.onnx")
    assert namu.load(tmp_path / "older.onnx")(x=1) == 43


# ---------------------------------------------------------------------- a project that moved
PROJECT_TASKS = '''
import namu

@namu.task
def add(a: int, b: int) -> int:
    return a + b
'''

PROJECT_WORKFLOW = '''
import namu
from moved_tasks import add

@namu.workflow
def calc(x: int = 1) -> int:
    return add(x, 1)
'''


def _load_in_fresh_python(artifact: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``namu.load(artifact)(x=5)`` in a new interpreter whose path holds only namu."""
    repo = Path(namu.__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(repo)
    code = "import sys, namu\ntry:\n    print(namu.load(sys.argv[1])(x=5))\nexcept namu.NamuError as e:\n    print(type(e).__name__, e)"
    return subprocess.run([sys.executable, "-c", code, str(artifact)], cwd=cwd, env=env, capture_output=True, text=True, timeout=90)


def test_a_project_moved_with_its_artifact_finds_its_tasks_next_to_it(tmp_path: Path) -> None:
    """compile in old/proj (tasks in src/, artifact in build/), move the project: its
    tasks are found from where the artifact now is, without PYTHONPATH."""
    old = tmp_path / "old" / "proj"
    (old / "src").mkdir(parents=True)
    (old / "src" / "moved_tasks.py").write_text(textwrap.dedent(PROJECT_TASKS))
    (old / "src" / "moved_wf.py").write_text(textwrap.dedent(PROJECT_WORKFLOW))
    script = "import sys, namu\nfrom moved_wf import calc\nnamu.compile(calc).save(sys.argv[1])"
    subprocess.run([sys.executable, "-c", script, str(old / "build" / "calc.onnx")], cwd=old / "src", check=True, timeout=90,
                   env={**os.environ, "PYTHONPATH": str(Path(namu.__file__).resolve().parent.parent)})
    new = tmp_path / "new" / "proj"
    new.parent.mkdir()
    (tmp_path / "old" / "proj").rename(new)
    proc = _load_in_fresh_python(new / "build" / "calc.onnx", cwd=tmp_path)
    assert proc.stdout.strip() == "6", proc.stdout + proc.stderr
    # the digest check still holds for the copy found there
    tasks = new / "src" / "moved_tasks.py"
    tasks.write_text(tasks.read_text().replace("return a + b", "return a - b"))
    proc = _load_in_fresh_python(new / "build" / "calc.onnx", cwd=tmp_path)
    assert proc.stdout.startswith("StaleArtifactError task 'add' (moved_tasks) changed since"), proc.stdout + proc.stderr
    tasks.unlink()
    proc = _load_in_fresh_python(new / "build" / "calc.onnx", cwd=tmp_path)
    assert proc.stdout.startswith("TaskResolutionError cannot find task 'add'"), proc.stdout + proc.stderr
    assert "no moved_tasks.py next to" in proc.stdout
