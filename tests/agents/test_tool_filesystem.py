"""The ``filesystem`` tools: what they do under the root, and every way out of it refused."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from namu.errors import ToolError
from namu.runtime.atomic_write import TEMP_SUFFIX
from namu.runtime.tools.base import Tool, tool_kit_class, tool_options_class

SECRET = "the secret outside the root"


def make_tree(base: Path) -> Path:
    """``base/root`` (the sandbox) beside ``base/outside``, with every kind of symlink
    out of the root; returns the root."""
    outside = base / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_text(SECRET)
    (outside / "dir" / "secret.txt").write_text(SECRET)
    root = base / "root"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\nhello world\n")
    (root / "sub" / "b.txt").write_text("beta\nHELLO again\n")
    (root / "sub" / "deeper" / "c.txt").write_text("gamma hello\n")
    (root / "blob.bin").write_bytes(b"\x00\x01hello\x02")
    (root / "out_dir").symlink_to("../outside")
    (root / "out_abs").symlink_to(outside / "dir")
    (root / "out_file").symlink_to("../outside/secret.txt")
    (root / "dangling_out").symlink_to("../outside/created-through-a-link.txt")
    (root / "sub" / "up").symlink_to("../../outside/dir")
    (root / "loop").symlink_to("loop")
    (root / "in_link").symlink_to("a.txt")
    (root / "in_dir_link").symlink_to("sub")
    return root


def snapshot(directory: Path) -> dict[str, bytes | None]:
    """Every file (with its content) and directory (None) under ``directory``."""
    return {str(p.relative_to(directory)): p.read_bytes() if p.is_file() else None for p in directory.rglob("*")}


def kit_tools(root: Path, **options: Any) -> dict[str, Tool]:
    kit = tool_kit_class("filesystem")(tool_options_class("filesystem")(root=root.name, **options), str(root.parent))
    return {tool.name: tool for tool in asyncio.run(kit.tools())}


def call(tool: Tool, **arguments: Any) -> str:
    return asyncio.run(tool.call(arguments))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


@pytest.fixture
def tools(root: Path) -> dict[str, Tool]:
    return kit_tools(root)


def test_tools_and_schemas(tools: dict[str, Tool], root: Path) -> None:
    assert list(tools) == ["read_file", "list_directory", "search_files", "write_file"]
    assert tools["read_file"].input_schema["required"] == ["path"]
    assert tools["write_file"].input_schema["required"] == ["path", "content"]
    assert tools["search_files"].input_schema["properties"]["regex"]["type"] == "boolean"
    assert str(root) not in " ".join(t.description for t in tools.values())
    named = kit_tools(root, prefix="docs_", timeout_s=3)
    assert list(named) == ["docs_read_file", "docs_list_directory", "docs_search_files", "docs_write_file"]
    assert {t.timeout_s for t in named.values()} == {3}


def test_read(tools: dict[str, Tool]) -> None:
    assert call(tools["read_file"], path="a.txt") == "alpha\nhello world\n"
    assert call(tools["read_file"], path="./sub/b.txt") == "beta\nHELLO again\n"
    assert call(tools["read_file"], path="in_link") == "alpha\nhello world\n"  # a link inside the root
    assert call(tools["read_file"], path="in_dir_link/b.txt") == "beta\nHELLO again\n"
    assert call(tools["read_file"], path="a.txt", offset=6) == "hello world\n"
    with pytest.raises(ToolError, match="cannot read missing.txt: no such file"):
        call(tools["read_file"], path="missing.txt")
    with pytest.raises(ToolError, match="sub is a directory; use list_directory"):
        call(tools["read_file"], path="sub")
    with pytest.raises(ToolError, match="blob.bin is a binary file"):
        call(tools["read_file"], path="blob.bin")
    with pytest.raises(ToolError, match="offset 99 is past the end of a.txt"):
        call(tools["read_file"], path="a.txt", offset=99)
    with pytest.raises(ToolError, match="offset: Input should be greater than or equal to 0"):
        call(tools["read_file"], path="a.txt", offset=-1)


def test_read_in_parts_up_to_the_limit(root: Path) -> None:
    text = "é" * 10 + "\n" + "ab" * 20  # 2-byte characters cut at the limit are held back
    (root / "long.txt").write_text(text)
    tools = kit_tools(root, max_read_bytes=7)
    parts, offset = [], 0
    while True:
        answer = call(tools["read_file"], path="long.txt", offset=offset)
        body, _, note = answer.partition("\n[truncated: ")
        parts.append(body)
        if not note:
            break
        assert note.startswith(f"bytes {offset}-")
        assert len(body.encode()) <= 7
        offset = int(note.split("offset=")[1].rstrip("]"))
    assert "".join(parts) == text


def test_list(tools: dict[str, Tool], root: Path) -> None:
    listing = call(tools["list_directory"]).splitlines()
    assert "a.txt  (18 bytes)" in listing
    assert "sub/" in listing
    assert "in_dir_link/" in listing
    assert "out_dir  (symlink leading outside the root)" in listing
    assert "out_file  (symlink leading outside the root)" in listing
    assert listing == sorted(listing)
    assert call(tools["list_directory"], path="sub/deeper") == "c.txt  (12 bytes)"
    (root / "empty").mkdir()
    assert call(tools["list_directory"], path="empty") == "empty is empty"
    limited = kit_tools(root, max_results=2)
    assert call(limited["list_directory"]).splitlines()[2].endswith("more entries not shown]")
    with pytest.raises(ToolError, match="cannot list a.txt: Not a directory"):
        call(tools["list_directory"], path="a.txt")


def test_search(tools: dict[str, Tool], root: Path) -> None:
    assert call(tools["search_files"], pattern="hello").splitlines() == [
        "a.txt:2: hello world",
        "in_link:2: hello world",
        "sub/deeper/c.txt:1: gamma hello",
        "[2 files skipped: binary, unreadable or larger than 1048576 bytes]",  # blob.bin, loop
    ]
    assert call(tools["search_files"], pattern="hello", path="sub", ignore_case=True).splitlines() == [
        "sub/b.txt:2: HELLO again",
        "sub/deeper/c.txt:1: gamma hello",
    ]
    assert call(tools["search_files"], pattern=r"^\w+a$", path="sub", regex=True) == "sub/b.txt:1: beta"
    assert call(tools["search_files"], pattern="a.t", path="a.txt") == "no matches"  # a substring, not a regex
    assert call(tools["search_files"], pattern="zzz").startswith("no matches\n[2 files skipped")
    with pytest.raises(ToolError, match="invalid regular expression"):
        call(tools["search_files"], pattern="(", regex=True)
    with pytest.raises(ToolError, match="cannot search nowhere: no such file"):
        call(tools["search_files"], pattern="x", path="nowhere")
    (root / "many.txt").write_text("hit\n" * 50)
    limited = kit_tools(root, max_results=3)
    lines = call(limited["search_files"], pattern="hit").splitlines()
    assert lines == [*(f"many.txt:{n}: hit" for n in (1, 2, 3)), "[more than 3 matching lines; narrow the search]"]


def test_search_skips_files_over_the_read_limit(root: Path) -> None:
    (root / "big.txt").write_text("hello " * 100)
    tools = kit_tools(root, max_read_bytes=100)
    answer = call(tools["search_files"], pattern="hello")
    assert "big.txt" not in answer
    assert "a.txt:2: hello world" in answer


def test_write(tools: dict[str, Tool], root: Path) -> None:
    assert call(tools["write_file"], path="new/dir/n.txt", content="ñew") == "wrote 4 bytes to new/dir/n.txt"
    assert (root / "new" / "dir" / "n.txt").read_text() == "ñew"
    call(tools["write_file"], path="in_link", content="through a link inside")  # follows it, keeps the link
    assert (root / "in_link").is_symlink()
    assert (root / "a.txt").read_text() == "through a link inside"
    with pytest.raises(ToolError, match="sub is a directory"):
        call(tools["write_file"], path="sub", content="x")
    with pytest.raises(ToolError, match="is a directory"):
        call(tools["write_file"], path=".", content="x")
    with pytest.raises(ToolError, match="cannot write a.txt/x: Not a directory"):
        call(tools["write_file"], path="a.txt/x", content="x")


def test_write_size_limit(root: Path) -> None:
    tools = kit_tools(root, max_write_bytes=4)
    call(tools["write_file"], path="ok.txt", content="1234")
    with pytest.raises(ToolError, match="the content is 5 bytes; the limit is 4"):
        call(tools["write_file"], path="big.txt", content="12345")
    with pytest.raises(ToolError, match="the content is 6 bytes"):
        call(tools["write_file"], path="big.txt", content="ééé")
    assert not (root / "big.txt").exists()


def test_write_is_atomic(root: Path) -> None:
    """A reader sees the old file or the new one, never a mix or a partial file; an open
    reader keeps the old content; the mode is kept; no temporary file is left."""
    tools = kit_tools(root)
    target = root / "atomic.txt"
    contents = ["A" * 200_000, "B" * 300_000]
    target.write_text(contents[0])
    target.chmod(0o640)
    held = target.open()
    seen: set[str] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.add(target.read_text())

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(30):
            call(tools["write_file"], path="atomic.txt", content=contents[(i + 1) % 2])
    finally:
        stop.set()
        thread.join()
    assert seen <= set(contents)
    assert held.read() == contents[0]  # replaced by a rename, not rewritten in place
    held.close()
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in root.iterdir() if p.name.endswith(TEMP_SUFFIX)] == []


def test_read_only_offers_no_write(root: Path) -> None:
    before = snapshot(root)
    tools = kit_tools(root, read_only=True)
    assert list(tools) == ["read_file", "list_directory", "search_files"]
    assert call(tools["read_file"], path="a.txt") == "alpha\nhello world\n"
    assert snapshot(root) == before


def test_special_files_are_refused_without_blocking(root: Path, tools: dict[str, Tool]) -> None:
    os.mkfifo(root / "fifo")
    with pytest.raises(ToolError, match="fifo is not a regular file"):
        call(tools["read_file"], path="fifo")
    with pytest.raises(ToolError, match="fifo is not a regular file"):
        call(tools["write_file"], path="fifo", content="x")
    assert "fifo  (not a regular file)" in call(tools["list_directory"]).splitlines()
    assert "[3 files skipped" in call(tools["search_files"], pattern="hello")  # blob.bin, loop and the FIFO


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    for root in ("file", "missing"):
        kit = tool_kit_class("filesystem")(tool_options_class("filesystem")(root=root), str(tmp_path))
        with pytest.raises(ToolError, match=f"the filesystem root '{root}' is not a directory"):
            asyncio.run(kit.tools())


def test_options_are_strict() -> None:
    options = tool_options_class("filesystem")
    with pytest.raises(ValidationError, match="root"):
        options()
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        options(root=".", readonly=True)
    with pytest.raises(ValidationError, match="prefix"):
        options(root=".", prefix="bad prefix")
    with pytest.raises(ValidationError, match="max_read_bytes"):
        options(root=".", max_read_bytes=0)
    assert options.model_json_schema()["properties"]["read_only"]["description"]


# -- escapes -----------------------------------------------------------------------------------

ESCAPES = [
    ("../outside/secret.txt", "has a '..' part"),
    ("sub/../../outside/secret.txt", "has a '..' part"),
    ("..", "has a '..' part"),
    ("sub/..", "has a '..' part"),
    ("/etc/passwd", "is an absolute path"),
    ("//etc/passwd", "is an absolute path"),
    ("out_dir/secret.txt", "leads outside the root"),
    ("out_dir", "leads outside the root"),
    ("out_abs/secret.txt", "leads outside the root"),
    ("out_file", "leads outside the root"),
    ("dangling_out", "leads outside the root"),
    ("sub/up/secret.txt", "leads outside the root"),
    ("out_dir/new/file.txt", "leads outside the root"),
    ("a.txt\x00/../../outside", "NUL byte"),
]


@pytest.mark.parametrize(("path", "message"), ESCAPES)
@pytest.mark.parametrize("operation", ["read_file", "list_directory", "search_files", "write_file"])
def test_escapes_are_refused(root: Path, tools: dict[str, Tool], operation: str, path: str, message: str) -> None:
    outside = root.parent / "outside"
    before = snapshot(outside)
    arguments = {"path": path, "content": "PWNED"} if operation == "write_file" else {"path": path}
    if operation == "search_files":
        arguments["pattern"] = "secret"
    with pytest.raises(ToolError, match=message) as info:
        call(tools[operation], **arguments)
    assert str(root.parent) not in str(info.value)  # the absolute root is never shown
    assert snapshot(outside) == before


def test_symlink_loop_is_refused(tools: dict[str, Tool]) -> None:
    for operation, arguments in [
        ("read_file", {"path": "loop"}),
        ("list_directory", {"path": "loop"}),
        ("write_file", {"path": "loop", "content": "x"}),
    ]:
        with pytest.raises(ToolError, match="loop"):
            call(tools[operation], **arguments)


_PARTS = st.sampled_from(
    ["..", ".", "", "sub", "a.txt", "out_dir", "out_abs", "out_file", "dangling_out", "up", "loop", "in_link",
     "in_dir_link", "secret.txt", "new", "x" * 300, "\x00", "~", "outside", "root", " ", "..."]
)
_PATHS = st.one_of(
    st.lists(_PARTS, min_size=1, max_size=6).map("/".join),
    st.lists(_PARTS, min_size=1, max_size=6).map(lambda parts: "/" + "/".join(parts)),
    st.text(max_size=40),
    st.text(alphabet="./\\x\x00~", max_size=30),
)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Tool]]:
    root = make_tree(tmp_path_factory.mktemp("fuzz"))
    return root, kit_tools(root)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=_PATHS)
def test_no_path_reaches_outside(sandbox: tuple[Path, dict[str, Tool]], path: str) -> None:
    """Whatever the path, nothing outside the root is read, listed, found or written:
    the answer is a refusal (ToolError) or about the inside."""
    root, tools = sandbox
    outside = root.parent / "outside"
    before = snapshot(outside)
    for operation, arguments in [
        ("read_file", {"path": path}),
        ("list_directory", {"path": path}),
        ("search_files", {"path": path, "pattern": "the secret"}),
        ("write_file", {"path": path, "content": "PWNED"}),
    ]:
        try:
            answer = call(tools[operation], **arguments)
        except ToolError as exc:
            assert str(root.parent) not in str(exc)
        else:
            assert SECRET not in answer
            assert f"secret.txt  ({len(SECRET)} bytes)" not in answer  # a listing of outside/
    assert snapshot(outside) == before
    assert sorted(os.listdir(root.parent)) == ["outside", "root"]
