"""Paths the ``namu`` command writes and reads: ``-o`` and IR dumps never replace a
device, FIFO or directory and write through symlinks; artifacts get the mode ``open()``
gives; ``--checkpoint`` refuses devices; unreadable or damaged artifacts are one
``error:`` line with exit code 2."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

import namu
from namu.cli import run
from namu.runtime.user_code import import_path
from tests.cli.test_cli import REPO, assert_error, namu_cli, write

CALC = '''
import namu

@namu.task
def add(a: int, b: int) -> int:
    return a + b

@namu.workflow
def calc(x: int = 1) -> int:
    return add(x, 1)
'''


@pytest.fixture
def calc_file(tmp_path: Path) -> Path:
    return write(tmp_path, "namu_out_calc.py", CALC)


@pytest.fixture(scope="module")
def calc_onnx(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of ``calc`` compiled (in this process, to keep the tests fast)."""
    source = write(tmp_path_factory.mktemp("calc_source"), "namu_out_calc.py", CALC)
    return namu.compile(import_path(source).calc).to_proto().SerializeToString()


def device_node(path: Path, minor: int) -> Path:
    """A private copy of a memory device (3: /dev/null, 7: /dev/full); skips unless root."""
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except PermissionError:
        pytest.skip("this container may not create device nodes")
    return path


# ---------------------------------------------------------------------- namu compile -o
def test_compile_to_a_fifo_fails_and_leaves_the_fifo(tmp_path: Path, calc_file: Path) -> None:
    os.mkfifo(tmp_path / "out.onnx")
    before = sorted(os.listdir(tmp_path))
    proc = namu_cli("compile", calc_file.name, "-o", "out.onnx", cwd=tmp_path)
    assert_error(proc, 2, "cannot write out.onnx: it is a FIFO (named pipe), not a regular file")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "out.onnx").st_mode)
    assert sorted(os.listdir(tmp_path)) == before


def test_compile_to_a_device_fails_and_leaves_the_device(tmp_path: Path, calc_file: Path) -> None:
    """As root, `namu compile wf.py -o /dev/null` used to turn /dev/null into a file."""
    null = device_node(tmp_path / "null", 3)
    proc = namu_cli("compile", calc_file.name, "-o", str(null), cwd=tmp_path)
    assert_error(proc, 2, f"cannot write {null}: it is a character device, not a regular file")
    assert stat.S_ISCHR(os.lstat(null).st_mode)


def test_compile_through_a_symlink_writes_its_target(tmp_path: Path, calc_file: Path) -> None:
    (tmp_path / "real.onnx").write_text("real")
    (tmp_path / "link.onnx").symlink_to("real.onnx")
    proc = namu_cli("compile", calc_file.name, "-o", "link.onnx", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert os.readlink(tmp_path / "link.onnx") == "real.onnx"
    assert onnx.load(tmp_path / "real.onnx").graph.name == "calc"
    proc = namu_cli("run", "link.onnx", "-i", "x=4", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "5", proc.stderr


def test_compiled_artifacts_are_readable_as_the_umask_allows(tmp_path: Path, calc_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    try:
        assert run(["compile", calc_file.name, "-o", "calc.onnx"]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "calc.onnx").stat().st_mode) == 0o644  # was 0600 whatever the umask


def test_an_ir_dump_over_a_fifo_fails_and_leaves_the_fifo(tmp_path: Path, calc_file: Path) -> None:
    (tmp_path / "dumps").mkdir()
    fifo = tmp_path / "dumps" / "01-verify-structure.onnxtxt"
    os.mkfifo(fifo)
    proc = namu_cli(
        "compile", calc_file.name, "--dump-after", "verify-structure", "--dump-dir", "dumps", "-o", "calc.onnx", cwd=tmp_path
    )
    assert_error(proc, 2, "01-verify-structure.onnxtxt: it is a FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(tmp_path / "dumps") == [fifo.name] and not (tmp_path / "calc.onnx").exists()


# ---------------------------------------------------------------------- namu run --checkpoint
def test_a_checkpoint_on_a_device_fails_without_leaving_a_journal(tmp_path: Path, calc_file: Path) -> None:
    """`--checkpoint /dev/full` said "disk I/O error" and left /dev/full-journal behind."""
    os.mkfifo(tmp_path / "fifo")
    targets = ["fifo"]
    if os.geteuid() == 0:
        targets.append(device_node(tmp_path / "full", 7).name)
    before = sorted(os.listdir(tmp_path))
    for name in targets:
        proc = namu_cli("run", calc_file.name, "--checkpoint", name, cwd=tmp_path)
        assert_error(proc, 2, f"cannot write checkpoint {name}: it is a ")
    assert sorted(os.listdir(tmp_path)) == before


# ---------------------------------------------------------------------- reading artifacts
#: runs ``python ARGS`` without the capabilities that let root read any file, so a
#: mode-000 file is unreadable for root too (exit 77: the container does not allow it).
WITHOUT_DAC_OVERRIDE = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, dropped from the bounding set
    if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
        sys.exit(77)
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


def as_a_user_who_cannot_read(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in ``cwd``, run so that mode-000 files cannot be read."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}
    env.pop("NAMU_TRACEBACK", None)
    prefix = ["-c", WITHOUT_DAC_OVERRIDE] if os.geteuid() == 0 else []
    proc = subprocess.run([sys.executable, *prefix, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=90)
    if proc.returncode == 77:
        pytest.skip("cannot drop root's file-reading capabilities here")
    return proc


def test_an_unreadable_artifact_is_one_error_line(tmp_path: Path, calc_onnx: bytes) -> None:
    (tmp_path / "calc.onnx").write_bytes(calc_onnx)
    (tmp_path / "calc.onnx").chmod(0)
    for command in ("run", "inspect"):
        proc = as_a_user_who_cannot_read("-m", "namu.cli", command, "calc.onnx", cwd=tmp_path)
        assert_error(proc, 2, "cannot read artifact calc.onnx: Permission denied")
    code = "import namu\ntry:\n    namu.load('calc.onnx')\nexcept namu.ArtifactError as e:\n    print('ArtifactError:', e)"
    proc = as_a_user_who_cannot_read("-c", code, cwd=tmp_path)
    assert proc.stdout.strip() == "ArtifactError: cannot read artifact calc.onnx: Permission denied", proc.stderr


def _damaged(tmp_path: Path, calc_onnx: bytes, key: str, **changes: object) -> str:
    proto = onnx.load_model_from_string(calc_onnx)
    entry = next(p for p in proto.metadata_props if p.key == key)
    entry.value = json.dumps({**json.loads(entry.value), **changes})
    onnx.save(proto, tmp_path / "damaged.onnx")
    return "damaged.onnx"


@pytest.mark.parametrize("command", ["run", "inspect"])
def test_a_signature_that_does_not_match_the_graph_is_one_error_line(tmp_path: Path, calc_onnx: bytes, command: str) -> None:
    name = _damaged(tmp_path, calc_onnx, "namu.signature", returns="dict", return_keys=["a", "b"])
    proc = namu_cli(command, name, cwd=tmp_path)
    assert_error(proc, 2, "damaged.onnx: damaged namu metadata: the signature returns a dict of 2 key(s) but the graph has 1 output(s)")
    assert proc.stdout == ""


@pytest.mark.parametrize("command", ["run", "inspect"])
def test_an_artifact_from_a_newer_namu_is_one_error_line(tmp_path: Path, calc_onnx: bytes, command: str) -> None:
    name = _damaged(tmp_path, calc_onnx, "namu.passport", namu_version="99.0")
    proc = namu_cli(command, name, cwd=tmp_path)
    assert_error(proc, 2, f"damaged.onnx: compiled by namu 99.0, newer than this namu {namu.__version__}")
