"""Every file namu writes: never over a device or FIFO, through symlinks, with the mode
``open()`` would give, atomically and durably, and nothing left behind by a killed write.

Covers artifacts (``Artifact.save``), checkpoints and the result cache; IR dumps and the
CLI are in ``tests/cli/test_output_paths.py``.
"""

from __future__ import annotations

import fcntl
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import onnx
import pytest

import namu
from namu.runtime import atomic_write
from namu.runtime.cache import CACHE_FILE_NAME

REPO = Path(namu.__file__).resolve().parent.parent


@namu.task
def add(a: int, b: int) -> int:
    return a + b


@namu.workflow
def calc(x: int = 1) -> int:
    return add(x, 1)


@pytest.fixture(scope="module")
def artifact() -> namu.Artifact:
    return namu.compile(calc)


def device_node(path: Path, minor: int) -> Path:
    """A private copy of a memory device (3: /dev/null, 7: /dev/full); skips unless root."""
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except PermissionError:
        pytest.skip("this container may not create device nodes")
    return path


def kind(path: Path) -> str:
    mode = os.lstat(path).st_mode
    for test, name in ((stat.S_ISLNK, "symlink"), (stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "char device"), (stat.S_ISDIR, "directory")):
        if test(mode):
            return name
    return "file" if stat.S_ISREG(mode) else "other"


# ---------------------------------------------------------------------- what is at the path
def test_save_refuses_a_fifo_and_leaves_it_alone(tmp_path: Path, artifact: namu.Artifact) -> None:
    fifo = tmp_path / "out.onnx"
    os.mkfifo(fifo)
    with pytest.raises(namu.OutputPathError, match="is a FIFO") as info:
        artifact.save(fifo)
    assert info.value.path == str(fifo) and "\n" not in str(info.value)
    assert kind(fifo) == "fifo"
    assert os.listdir(tmp_path) == ["out.onnx"]


def test_save_refuses_a_device_node_and_leaves_it_alone(tmp_path: Path, artifact: namu.Artifact) -> None:
    null = device_node(tmp_path / "null", 3)  # what `namu compile wf.py -o /dev/null` did to /dev/null
    with pytest.raises(namu.OutputPathError, match="is a character device, not a regular file"):
        artifact.save(null)
    assert kind(null) == "char device"


def test_save_refuses_a_directory_and_a_symlink_to_a_fifo(tmp_path: Path, artifact: namu.Artifact) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(namu.OutputPathError, match="is a directory"):
        artifact.save(tmp_path / "dir")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link.onnx").symlink_to("fifo")
    with pytest.raises(namu.OutputPathError, match=r"fifo is a FIFO"):
        artifact.save(tmp_path / "link.onnx")
    assert kind(tmp_path / "link.onnx") == "symlink" and kind(tmp_path / "fifo") == "fifo"


def test_save_writes_through_a_symlink_to_its_target(tmp_path: Path, artifact: namu.Artifact) -> None:
    real = tmp_path / "real.onnx"
    real.write_text("old content")
    link = tmp_path / "link.onnx"
    link.symlink_to("real.onnx")
    assert artifact.save(link) == link
    assert kind(link) == "symlink" and os.readlink(link) == "real.onnx"
    assert onnx.load(real).graph.name == "calc"
    assert namu.load(link)(x=4) == 5
    dangling = tmp_path / "dangling.onnx"
    dangling.symlink_to("made/by/save.onnx")  # a dangling link creates its target, as open() does
    artifact.save(dangling)
    assert kind(dangling) == "symlink" and onnx.load(tmp_path / "made/by/save.onnx").graph.name == "calc"


# ---------------------------------------------------------------------- permissions
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002, 0o000], ids=lambda umask: f"umask-{umask:03o}")
def test_a_new_artifact_gets_the_mode_open_gives(tmp_path: Path, artifact: namu.Artifact, umask: int) -> None:
    old = os.umask(umask)
    try:
        artifact.save(tmp_path / "new.onnx")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.onnx").st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(os.stat(tmp_path / "new.onnx").st_mode) == stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)


def test_an_overwritten_artifact_keeps_its_mode(tmp_path: Path, artifact: namu.Artifact) -> None:
    target = tmp_path / "calc.onnx"
    artifact.save(target)
    target.chmod(0o640)
    artifact.save(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert namu.load(target)() == 2
    if os.geteuid() == 0:  # root rewriting a user's artifact leaves it the user's, as open() would
        os.chown(target, 65534, 65534)
        artifact.save(target)
        assert (target.stat().st_uid, target.stat().st_gid) == (65534, 65534)
        assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_writes_without_o_tmpfile_follow_the_same_rules(
    tmp_path: Path, artifact: namu.Artifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the kernel or filesystem has no O_TMPFILE, a named temporary file is used."""
    monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    old = os.umask(0o022)
    try:
        artifact.save(tmp_path / "a.onnx")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.onnx").stat().st_mode) == 0o644
    (tmp_path / "a.onnx").chmod(0o600)
    artifact.save(tmp_path / "a.onnx")
    assert stat.S_IMODE((tmp_path / "a.onnx").stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["a.onnx"]
    assert namu.load(tmp_path / "a.onnx")() == 2


# ---------------------------------------------------------------------- durability and crashes
def test_the_file_is_fsynced_before_it_is_put_in_place_and_the_directory_after(
    tmp_path: Path, artifact: namu.Artifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_link, real_replace = os.fsync, os.link, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def placed(name: str, real):  # noqa: ANN001, ANN202
        def call(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            events.append(name)
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", placed("in place", real_link))
    monkeypatch.setattr(os, "replace", placed("in place", real_replace))
    target = tmp_path / "calc.onnx"
    for _ in range(2):  # a new file, then replacing it
        events.clear()
        artifact.save(target)
        first_placed = events.index("in place")
        assert "fsync file" in events[:first_placed], events
        assert events[-1] == "fsync dir", events


KILLED_SAVE = """
import os, signal, sys
import namu
from namu.runtime import atomic_write

@namu.task
def add(a: int, b: int) -> int:
    return a + b

@namu.workflow
def calc(x: int = 1) -> int:
    return add(x, 1)

art = namu.compile(calc)

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

for name in sys.argv[2].split(","):  # the calls that put the file in place
    setattr(os, name, die)
art.save(sys.argv[1])
"""


def killed_save(tmp_path: Path, target: Path, at: str) -> None:
    """Save in a child process that is SIGKILLed when it calls one of ``at`` (os names)."""
    script = tmp_path / "killed_save.py"
    script.write_text(textwrap.dedent(KILLED_SAVE))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}
    proc = subprocess.run([sys.executable, str(script), str(target), at], env=env, capture_output=True, text=True, timeout=90)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


@pytest.mark.skipif(
    not hasattr(os, "O_TMPFILE") or not os.path.isdir("/proc/self/fd"), reason="needs Linux O_TMPFILE and /proc"
)
def test_a_save_killed_before_the_file_is_in_place_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    killed_save(tmp_path, out / "new.onnx", "link,replace,rename")
    assert os.listdir(out) == []


def test_a_replace_killed_before_the_rename_is_cleaned_up_by_the_next_write(tmp_path: Path, artifact: namu.Artifact) -> None:
    out = tmp_path / "o"
    out.mkdir()
    artifact.save(out / "old.onnx")
    killed_save(tmp_path, out / "old.onnx", "replace,rename")  # the new content was named, not yet renamed
    assert namu.load(out / "old.onnx")() == 2  # the old file is intact
    assert any(name.endswith(atomic_write.TEMP_SUFFIX) for name in os.listdir(out))
    artifact.save(out / "other.onnx")  # any later write into the directory sweeps
    assert sorted(os.listdir(out)) == ["old.onnx", "other.onnx"]


def test_a_live_writers_temporary_file_is_not_swept(tmp_path: Path, artifact: namu.Artifact) -> None:
    busy = tmp_path / f".calc.onnx.0123abcd{atomic_write.TEMP_SUFFIX}"
    with open(busy, "wb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a writer still at work holds it
        artifact.save(tmp_path / "calc.onnx")
        assert busy.exists()
    artifact.save(tmp_path / "calc.onnx")  # its writer is gone now
    assert os.listdir(tmp_path) == ["calc.onnx"]


# ---------------------------------------------------------------------- checkpoints and caches
def test_a_checkpoint_on_a_device_or_fifo_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link.ckpt").symlink_to("fifo")
    targets = [("fifo", "is a FIFO"), ("link.ckpt", "is a FIFO")]
    if os.geteuid() == 0:
        device_node(tmp_path / "full", 7)  # a private /dev/full: "disk I/O error" and a -journal file before
        targets.append(("full", "is a character device"))
    before = sorted(os.listdir(tmp_path))
    for name, reason in targets:
        with pytest.raises(namu.CheckpointError, match=reason) as info:
            calc.run(2, checkpoint=tmp_path / name)
        assert info.value.path == str(tmp_path / name) and "\n" not in str(info.value)
    assert sorted(os.listdir(tmp_path)) == before


def test_a_checkpoint_through_a_symlink_records_into_its_target(tmp_path: Path) -> None:
    (tmp_path / "link.ckpt").symlink_to("real.ckpt")
    assert calc.run(2, checkpoint=tmp_path / "link.ckpt").value == 3
    assert kind(tmp_path / "link.ckpt") == "symlink" and kind(tmp_path / "real.ckpt") == "file"
    assert calc.run(2, checkpoint=tmp_path / "link.ckpt").resumed_calls == 1


def test_a_cache_file_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / CACHE_FILE_NAME)
    with pytest.raises(namu.CacheError, match="is a FIFO"):
        calc.run(2, cache_dir=tmp_path)
    assert os.listdir(tmp_path) == [CACHE_FILE_NAME]
