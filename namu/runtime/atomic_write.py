"""Writing the files namu produces: atomically, durably, and never over a device.

Every file namu writes goes through here: artifacts (:meth:`namu.Artifact.save`) and IR
dumps (``namu compile --dump-after``) are written by :func:`write_atomic`; the SQLite
files of checkpoints and of the result cache, which SQLite writes itself, have their
paths checked by :func:`resolve_output` before SQLite opens them. The rules:

* **Symlinks are followed**: the file a link leads to is written and the link stays,
  as ``open(path, "w")`` does; a dangling link creates its target.
* **Only regular files are replaced**: an existing target that is a device
  (``/dev/null``), a FIFO, a socket or a directory is refused with
  :class:`~namu.errors.OutputPathError` and left as it is.
* **Readers never see a partial file**: the data goes to a file nobody else sees, is
  fsynced, then put in place in one step -- a new target is linked into place, an
  existing one is replaced by a rename -- and the directory is fsynced after, so a
  power failure leaves the old file or the new one.
* **An interrupted write leaves nothing behind**. On Linux the data goes to an unnamed
  file (``O_TMPFILE``), which vanishes with its process, and is linked into place
  through ``/proc/self/fd`` (``linkat``, which needs no privilege). Replacing an
  existing file, or a system without ``O_TMPFILE``, needs a named temporary file
  ``.NAME.XXXXXXXX.namu-tmp`` next to the target: its writer holds an ``flock`` on it,
  and the next write into the same directory removes every such file whose lock is
  free (its writer is gone).
* **Permissions are those of** ``open(path, "w")``: a new file gets
  ``0o666 & ~umask`` (and the directory's default ACL), an overwritten one keeps its
  mode (and its owner and group, where the writer may set them). A replaced file's
  other hard links keep the old content.

The check and the rename are two steps: a regular file swapped for a FIFO between them
is still replaced. POSIX only (namu's kernel targets Linux and macOS).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from namu.errors import OutputPathError

try:
    import fcntl
except ImportError:  # pragma: no cover - no advisory locks: temporary files are never swept
    fcntl = None  # type: ignore[assignment]

__all__ = ["TEMP_SUFFIX", "resolve_output", "write_atomic"]

#: suffix of the named temporary file of a write in progress (or of a killed one).
TEMP_SUFFIX = ".namu-tmp"
#: where an open file can be named to ``linkat`` (Linux procfs).
_PROC_FD = "/proc/self/fd"
#: ``open(O_TMPFILE)`` or linking it failed because the kernel, the filesystem or a
#: missing /proc does not support it: write through a named temporary file instead.
_NO_TMPFILE = frozenset({errno.EOPNOTSUPP, errno.ENOTSUP, errno.EISDIR, errno.EINVAL, errno.ENOENT, errno.EXDEV, errno.EPERM})
#: longest part of the target's name kept in a temporary file's name, in bytes.
_MAX_STEM_BYTES = 200

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symlink that does not resolve (a loop)"),
)


def resolve_output(path: str | os.PathLike[str], *, what: str = "") -> Path:
    """The file that writing ``path`` writes: ``path`` with its symlinks followed.

    Args:
        path: the path to write.
        what: what is written, for the message (``"checkpoint"``); "" for nothing.

    Returns:
        The absolute path of the file to write, which either does not exist yet or is a
        regular file.

    Raises:
        OutputPathError: the path (after symlinks) exists and is not a regular file.
    """
    given = Path(path)
    target = Path(os.path.realpath(given))
    try:
        mode = os.stat(target, follow_symlinks=False).st_mode
    except OSError:  # missing (to be created), or unreachable: the write itself reports it
        return target
    if stat.S_ISREG(mode):
        return target
    kind = next((text for test, text in _KINDS if test(mode)), "not a regular file")
    subject = "it" if target == Path(os.path.abspath(given)) else str(target)
    label = f"{what} {given}" if what else str(given)
    raise OutputPathError(f"cannot write {label}: {subject} is {kind}, not a regular file", path=str(given))


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, following the rules of this module.

    Missing parent directories are created.

    Args:
        path: the file to write.
        data: its new content.

    Returns:
        ``path``, as a ``Path``.

    Raises:
        OutputPathError: the path exists and is not a regular file (nothing is written).
        OSError: the file or its directory cannot be written.
    """
    given = Path(path)
    target = resolve_output(given)
    target.parent.mkdir(parents=True, exist_ok=True)
    dir_fd = _open_directory(target.parent)
    try:
        _sweep(dir_fd)
        existing = _existing(dir_fd, target.name, given)
        if not _write_unnamed(dir_fd, target.name, data, existing):
            _write_named(dir_fd, target.name, data, existing)
        _fsync_directory(dir_fd)
    finally:
        os.close(dir_fd)
    return given


def _open_directory(directory: Path) -> int:
    """A descriptor of ``directory`` to write in (and fsync, when it can be read)."""
    try:
        return os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except PermissionError:  # a write-only (-wx) directory: an O_PATH descriptor still serves
        if not hasattr(os, "O_PATH"):
            raise
        return os.open(directory, os.O_PATH | getattr(os, "O_DIRECTORY", 0))


def _existing(dir_fd: int, name: str, given: Path) -> os.stat_result | None:
    """The target's status, None when it does not exist; refuses a non-regular file."""
    try:
        status = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(status.st_mode):  # it changed since resolve_output looked
        resolve_output(given)  # raises, naming what it is now
        raise OutputPathError(f"cannot write {given}: it is not a regular file", path=str(given))
    return status


def _write_unnamed(dir_fd: int, name: str, data: bytes, existing: os.stat_result | None) -> bool:
    """Write through an unnamed ``O_TMPFILE`` file; False when the system cannot (then
    nothing was written)."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not os.path.isdir(_PROC_FD):
        return False
    try:
        fd = os.open(".", flag | os.O_WRONLY, 0o666, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in _NO_TMPFILE:
            return False
        raise
    try:
        _lock(fd)  # before it has a name: a sweep never takes a live writer's file
        _fill(fd, data, existing)
        source = f"{_PROC_FD}/{fd}"
        if existing is None:
            try:  # dst_dir_fd makes os.link call linkat(AT_SYMLINK_FOLLOW), as /proc needs
                os.link(source, name, dst_dir_fd=dir_fd)
                return True
            except FileExistsError:
                pass  # created meanwhile: replace it as an existing file
            except OSError as exc:
                if exc.errno in _NO_TMPFILE:
                    return False
                raise
        temp = _unique_temp(name, lambda candidate: os.link(source, candidate, dst_dir_fd=dir_fd))
        _replace(dir_fd, temp, name)
        return True
    finally:
        os.close(fd)


def _write_named(dir_fd: int, name: str, data: bytes, existing: os.stat_result | None) -> None:
    """Write through a named temporary file in the target's directory, then rename it."""
    fd = -1

    def create(candidate: str) -> None:
        nonlocal fd
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666, dir_fd=dir_fd)
        if not _lock(fd) or not _names(dir_fd, candidate, fd):  # a sweep took it first
            os.close(fd)
            raise FileExistsError(candidate)

    temp = _unique_temp(name, create)
    try:
        try:
            _fill(fd, data, existing)
        except BaseException:
            _unlink_quietly(dir_fd, temp)
            raise
        _replace(dir_fd, temp, name)
    finally:
        os.close(fd)


def _unique_temp(name: str, make: Callable[[str], None]) -> str:
    """A fresh temporary name next to ``name``, made to exist by ``make(candidate)``
    (which raises ``FileExistsError`` to ask for another name)."""
    encoded = name.encode(errors="surrogateescape")
    stem = encoded[:_MAX_STEM_BYTES].decode(errors="ignore") if len(encoded) > _MAX_STEM_BYTES else name
    for _ in range(100):
        candidate = f".{stem}.{os.urandom(4).hex()}{TEMP_SUFFIX}"
        try:
            make(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(errno.EEXIST, "no free temporary file name", name)


def _replace(dir_fd: int, temp: str, name: str) -> None:
    try:
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        _unlink_quietly(dir_fd, temp)
        raise


def _fill(fd: int, data: bytes, existing: os.stat_result | None) -> None:
    """Give the file the owner and mode of the file it replaces (as writing into that file
    would keep them; the owner only where permitted), write ``data`` and flush it to
    the disk."""
    if existing is not None:
        if (existing.st_uid, existing.st_gid) != (os.geteuid(), os.getegid()):
            try:
                os.fchown(fd, existing.st_uid, existing.st_gid)
            except OSError:  # only root may give a file away
                pass
        os.fchmod(fd, stat.S_IMODE(existing.st_mode))
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def _lock(fd: int) -> bool:
    """Take the writer's lock on a temporary file: False if another process holds it
    (a sweep about to remove the file); True when taken or when locks are unsupported."""
    if fcntl is None:  # pragma: no cover - see the import
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # no locks on this filesystem: a sweep cannot take it either
        return True
    return True


def _names(dir_fd: int, name: str, fd: int) -> bool:
    """``name`` in the directory is still the file open as ``fd``."""
    try:
        there = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    here = os.fstat(fd)
    return (there.st_dev, there.st_ino) == (here.st_dev, here.st_ino)


def _sweep(dir_fd: int) -> None:
    """Remove the temporary files of writers that are gone (their lock is free)."""
    if fcntl is None:  # pragma: no cover - see the import
        return
    try:
        names = os.listdir(dir_fd)
    except OSError:
        return
    for name in names:
        if name.startswith(".") and name.endswith(TEMP_SUFFIX):
            _remove_if_abandoned(dir_fd, name)


def _remove_if_abandoned(dir_fd: int, name: str) -> None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:  # gone, unreadable or a symlink: not ours to remove
        return
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its writer is still at work (or locks are unsupported here)
            return
        if _names(dir_fd, name, fd):
            _unlink_quietly(dir_fd, name)
    finally:
        os.close(fd)


def _unlink_quietly(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def _fsync_directory(dir_fd: int) -> None:
    """Make the new directory entry durable (some filesystems cannot sync a directory)."""
    try:
        os.fsync(dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EBADF):
            raise
