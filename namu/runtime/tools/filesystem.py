"""The ``filesystem`` tools: read, list, search and write files under one root directory.

Tools (each name preceded by the entry's ``prefix``, so two entries can be used
together: ``prefix: docs_`` gives ``docs_read_file`` ...):

* ``read_file`` ``{path, offset?}``: a text file, at most ``max_read_bytes`` from
  ``offset``; a longer file ends with a note giving the offset to read on from.
* ``list_directory`` ``{path?}``: the entries of a directory (``name/`` for a directory,
  ``name  (N bytes)`` for a file), at most ``max_results``.
* ``search_files`` ``{pattern, path?, regex?, ignore_case?}``: the lines of the text files
  under ``path`` holding a substring (or matching a regular expression), as
  ``file:line: text``, at most ``max_results``.
* ``write_file`` ``{path, content}``: creates or replaces a file atomically (readers see
  the old file or the new one, never part of one), creating missing directories; not
  offered at all when ``read_only: true``.

The sandbox: a path is relative to the root; an absolute path, a ``..`` part and a NUL
byte are refused outright, and every path is resolved (symlinks followed, as the
operating system would) and refused unless the result is the root or inside it -- so a
symlink inside the root that leads out of it is refused for reading, writing (also as a
parent directory) and listing, and skipped by searches. Files are opened without
following a final symlink, so one swapped in after the check is refused too. Messages
name paths as the model gave them, never the root's absolute path.

In an agent file::

    tools:
      - filesystem: {root: ./data, read_only: true}
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel, Field

from namu.errors import ToolError
from namu.runtime.tools._typed import ToolInput, TypedTool
from namu.runtime.tools.base import Tool, ToolKit, ToolOptions

__all__ = ["FilesystemKit", "FilesystemOptions", "Sandbox"]

#: the bytes looked at to tell a binary file (one holding a NUL byte) from a text file
_SNIFF_BYTES = 8192
#: the longest line a search result shows, in characters
_MAX_LINE_CHARS = 300


class FilesystemOptions(ToolOptions):
    """Options of the ``filesystem`` tools."""

    root: str = Field(
        description="The directory the tools work in, relative to the agent file's directory (or absolute); "
        "it must exist."
    )
    read_only: bool = Field(False, description="Offer only read_file, list_directory and search_files (no write_file).")
    max_read_bytes: int = Field(
        1 << 20, gt=0, description="The most bytes read_file returns per call; search_files skips larger files."
    )
    max_write_bytes: int = Field(1 << 20, gt=0, description="The largest content write_file accepts, in bytes (UTF-8).")
    max_results: int = Field(
        200, gt=0, description="The most entries list_directory returns, and the most lines search_files returns."
    )
    prefix: str = Field(
        "",
        pattern=r"^[a-zA-Z0-9_-]{0,40}$",
        description="Put before every tool name (docs_ gives docs_read_file), to use several filesystem "
        "entries together.",
    )


class Sandbox:
    """The file operations of the tools, confined to ``root``.

    Args:
        root: an existing directory; symlinks in it are resolved once, here.
        options: the limits (``max_read_bytes``, ``max_write_bytes``, ``max_results``,
            ``timeout_s``, which also bounds a search).

    Every method takes a tool's validated input and returns the text for the model.

    Raises:
        ToolError: ``root`` is not a directory.
    """

    def __init__(self, root: str, options: FilesystemOptions) -> None:
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise ToolError(f"the filesystem root {options.root!r} is not a directory")
        self.options = options

    def resolve(self, path: str) -> str:
        """The absolute path ``path`` (relative to the root) leads to, symlinks followed.

        Raises:
            ToolError: ``path`` is absolute, has a ``..`` part or a NUL byte, or leads
                outside the root.
        """
        if "\0" in path:
            raise ToolError("the path contains a NUL byte")
        if os.path.isabs(path):
            raise ToolError(f"{path!r} is an absolute path; give a path relative to the root, such as 'notes.txt'")
        if ".." in path.split("/"):
            raise ToolError(f"{path!r} has a '..' part; paths may not leave the root")
        resolved = os.path.realpath(os.path.join(self.root, path))
        if not self._inside(resolved):
            raise ToolError(f"{path!r} leads outside the root (through a symlink)")
        return resolved

    def _inside(self, resolved: str) -> bool:
        return resolved == self.root or resolved.startswith(self.root.rstrip(os.sep) + os.sep)

    def read_file(self, arguments: ReadFileInput) -> str:
        path, offset, limit = arguments.path, arguments.offset, self.options.max_read_bytes
        with _reporting_os_errors("read", path):
            fd = _open_regular(self.resolve(path), path)
            with os.fdopen(fd, "rb") as file:
                size = os.fstat(fd).st_size
                if offset > size:
                    raise ToolError(f"offset {offset} is past the end of {path} ({size} bytes)")
                file.seek(offset)
                data = file.read(limit)
        if b"\0" in data[:_SNIFF_BYTES]:
            raise ToolError(f"{path} is a binary file; read_file reads text")
        end = offset + len(data)
        if end >= size:
            return data.decode("utf-8", errors="replace")
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = decoder.decode(data, final=False)  # holds back a character cut at the end
        end -= len(decoder.getstate()[0])
        return f"{text}\n[truncated: bytes {offset}-{end} of {size} shown; read on with offset={end}]"

    def list_directory(self, arguments: ListDirectoryInput) -> str:
        path = arguments.path
        with _reporting_os_errors("list", path):
            directory = self.resolve(path)
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
            lines = [self._describe(entry) for entry in entries[: self.options.max_results]]
        if not entries:
            return f"{path} is empty"
        if len(entries) > self.options.max_results:
            lines.append(f"[{len(entries) - self.options.max_results} more entries not shown]")
        return "\n".join(lines)

    def _describe(self, entry: os.DirEntry[str]) -> str:
        if entry.is_symlink() and not self._inside(os.path.realpath(entry.path)):
            return f"{entry.name}  (symlink leading outside the root)"
        try:
            if entry.is_dir():
                return f"{entry.name}/"
            if entry.is_file():
                return f"{entry.name}  ({entry.stat().st_size} bytes)"
        except OSError as exc:  # a symlink loop, a permission
            return f"{entry.name}  ({exc.strerror or 'unreadable'})"
        return f"{entry.name}  (not a regular file)"

    def search_files(self, arguments: SearchFilesInput) -> str:
        flags = re.IGNORECASE if arguments.ignore_case else 0
        source = arguments.pattern if arguments.regex else re.escape(arguments.pattern)
        try:
            pattern = re.compile(source, flags)
        except re.error as exc:
            raise ToolError(f"invalid regular expression {arguments.pattern!r}: {exc}") from None
        deadline = time.monotonic() + self.options.timeout_s
        found: list[str] = []
        skipped = 0
        with _reporting_os_errors("search", arguments.path):
            for file, resolved in self._files_under(self.resolve(arguments.path)):
                if time.monotonic() > deadline:
                    found.append(f"[stopped after {self.options.timeout_s:g} s; narrow the search]")
                    break
                text = self._text_of(resolved)
                if text is None:
                    skipped += 1
                    continue
                relative = os.path.relpath(file, self.root)
                for number, line in enumerate(text.splitlines(), 1):
                    if pattern.search(line):
                        found.append(f"{relative}:{number}: {line[:_MAX_LINE_CHARS]}")
                        if len(found) > self.options.max_results:
                            found[-1] = f"[more than {self.options.max_results} matching lines; narrow the search]"
                            return "\n".join(found)
        lines = found or ["no matches"]
        if skipped:
            limit = self.options.max_read_bytes
            lines.append(f"[{skipped} files skipped: binary, unreadable or larger than {limit} bytes]")
        return "\n".join(lines)

    def _files_under(self, start: str) -> Iterator[tuple[str, str]]:
        """``(path, resolved path)`` of the files at or under ``start``, in order;
        symlinked directories are not entered, and symlinks leading outside the root
        are left out."""
        if not os.path.isdir(start):
            if not os.path.lexists(start):
                raise FileNotFoundError(start)
            yield start, start
            return
        for directory, subdirectories, files in os.walk(start, followlinks=False):
            subdirectories.sort()
            for name in sorted(files):
                file = os.path.join(directory, name)
                resolved = os.path.realpath(file)
                if self._inside(resolved):
                    yield file, resolved

    def _text_of(self, resolved: str) -> str | None:
        """The text of the file at ``resolved`` for a search, or None to skip it (binary,
        not a regular file, larger than ``max_read_bytes``, unreadable)."""
        try:
            fd = _open_regular(resolved, resolved)
        except (OSError, ToolError):
            return None
        with os.fdopen(fd, "rb") as stream:
            if os.fstat(fd).st_size > self.options.max_read_bytes:
                return None
            data = stream.read(self.options.max_read_bytes)
        if b"\0" in data[:_SNIFF_BYTES]:
            return None
        return data.decode("utf-8", errors="replace")

    def write_file(self, arguments: WriteFileInput) -> str:
        from namu.runtime.atomic_write import write_atomic

        path = arguments.path
        data = arguments.content.encode()
        if len(data) > self.options.max_write_bytes:
            raise ToolError(f"the content is {len(data)} bytes; the limit is {self.options.max_write_bytes}")
        with _reporting_os_errors("write", path):
            target = self.resolve(path)
            try:
                mode = os.lstat(target).st_mode
            except FileNotFoundError:
                pass
            else:
                if not stat.S_ISREG(mode):
                    raise ToolError(f"{path} is {'a directory' if stat.S_ISDIR(mode) else 'not a regular file'}")
            write_atomic(target, data)
        return f"wrote {len(data)} bytes to {path}"


def _open_regular(resolved: str, path: str) -> int:
    """A read-only descriptor of the regular file ``resolved`` (never following a final
    symlink, never blocking on a FIFO).

    Raises:
        ToolError: it is a directory or not a regular file.
        OSError: it cannot be opened.
    """
    fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise ToolError(f"{path} is a directory; use list_directory")
        raise ToolError(f"{path} is not a regular file")
    return fd


@contextlib.contextmanager
def _reporting_os_errors(verb: str, path: str) -> Iterator[None]:
    """Turn an ``OSError`` into a :class:`ToolError` naming ``path`` as the model gave it
    (the error's own message would name the absolute path)."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, FileNotFoundError):
            reason = "no such file or directory"
        raise ToolError(f"cannot {verb} {path}: {reason}") from exc


class ReadFileInput(ToolInput):
    path: str = Field(description="The file, relative to the root (e.g. 'notes/todo.txt').")
    offset: int = Field(0, ge=0, description="The byte to start at (to read on after a truncated read).")


class ListDirectoryInput(ToolInput):
    path: str = Field(".", description="The directory, relative to the root ('.' is the root).")


class SearchFilesInput(ToolInput):
    pattern: str = Field(min_length=1, description="The text to find (a regular expression if regex is true).")
    path: str = Field(".", description="The directory (searched recursively) or file to search, relative to the root.")
    regex: bool = Field(False, description="Treat pattern as a Python regular expression.")
    ignore_case: bool = Field(False, description="Match regardless of case.")


class WriteFileInput(ToolInput):
    path: str = Field(description="The file, relative to the root; missing directories are created.")
    content: str = Field(description="The file's new content (text, written as UTF-8).")


class _SandboxTool(TypedTool):
    """One operation of a :class:`Sandbox`, run in a worker thread (file I/O blocks)."""

    def __init__(
        self,
        name: str,
        description: str,
        input_model: type[BaseModel],
        timeout_s: float,
        operation: Callable[[Any], str],
    ) -> None:
        super().__init__(name, description, input_model, timeout_s)
        self.operation = operation

    async def run(self, arguments: Any) -> str:
        return await asyncio.to_thread(self.operation, arguments)


class FilesystemKit(ToolKit):
    """Provides ``read_file``, ``list_directory``, ``search_files`` and (unless
    ``read_only``) ``write_file``, under ``root``."""

    options: FilesystemOptions

    async def tools(self) -> list[Tool]:
        """The tools, named with the entry's ``prefix``.

        Raises:
            ToolError: the root is not a directory.
        """
        options = self.options
        sandbox = Sandbox(os.path.join(self.base_dir, options.root), options)
        where = "Paths are relative to the tool's root directory; '..' and absolute paths are refused."
        table: list[tuple[str, str, type[BaseModel], Callable[[Any], str]]] = [
            (
                "read_file",
                (
                    f"Read a text file. {where} Returns at most {options.max_read_bytes} bytes; "
                    "a longer file ends with a note giving the offset to read on from."
                ),
                ReadFileInput,
                sandbox.read_file,
            ),
            (
                "list_directory",
                f"List a directory: 'name/' for a subdirectory, 'name  (N bytes)' for a file. {where}",
                ListDirectoryInput,
                sandbox.list_directory,
            ),
            (
                "search_files",
                (
                    "Find the lines of the text files under a directory that contain a text (or match a "
                    f"regular expression); answers 'file:line: text' lines. {where}"
                ),
                SearchFilesInput,
                sandbox.search_files,
            ),
        ]
        if not options.read_only:
            table.append(
                (
                    "write_file",
                    f"Create or replace a text file with the given content (missing directories are created). {where}",
                    WriteFileInput,
                    sandbox.write_file,
                )
            )
        return [
            _SandboxTool(options.prefix + name, description, model, options.timeout_s, operation)
            for name, description, model, operation in table
        ]
