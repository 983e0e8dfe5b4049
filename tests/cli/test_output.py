"""Where ``namu`` writes: a closed or broken standard output or error, and results that
are hard to print (lone surrogates, reprs that raise, huge ints). Run as real
subprocesses started by bash, so the redirections are the user's own (``>&-``, ``2>&-``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import namu
from namu.cli.output import json_document, jsonable

REPO = Path(namu.__file__).resolve().parent.parent
#: 10 ** 5000 written out: longer than Python prints an int (sys.get_int_max_str_digits())
HUGE_DIGITS = "1" + "0" * 5000

WORKFLOWS = '''
import sys
from pathlib import Path

import namu

@namu.task
def add(a: int, b: int) -> int:
    Path("ran.txt").write_text("yes")
    return a + b

@namu.workflow
def calc(x: int = 1) -> int:
    return add(x, 1)

@namu.task
def noisy(n: int) -> int:
    print("debug: working", file=sys.stderr)
    return n + 1

@namu.workflow
def chatty(n: int = 1) -> int:
    return noisy(n)

@namu.task
def fail(n: int) -> int:
    raise ValueError("no")

@namu.workflow
def failing(n: int = 1) -> int:
    return fail(n)

@namu.task
def many(n: int) -> list[int]:
    return list(range(n))

@namu.workflow
def big(n: int = 200000) -> list[int]:
    return many(n)

class Broken:
    def __repr__(self) -> str:
        raise RuntimeError("no repr today")

class Odd:
    def __repr__(self) -> str:
        return "Odd(\\ud800)"

@namu.task
def text(kind: str) -> object:
    return {
        "surrogate": "file-\\ud800.txt",
        "fsdecoded": "file-\\udcff.txt",
        "unicode": "caf\\u00e9 \\u65e5\\u672c",
        "broken": Broken(),
        "odd": Odd(),
        "huge": 10 ** 5000,
        "nested": {"names": ["a-\\udcfe", Broken()], 7: Odd(), 10 ** 5000: "big key"},
    }[kind]

@namu.workflow
def show(kind: str = "surrogate") -> object:
    return text(kind)
'''


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("output")
    (path / "namu_out_wf.py").write_text(textwrap.dedent(WORKFLOWS))
    return path


def shell(command: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``command`` in bash, with ``namu`` meaning ``python -m namu.cli``; bytes out."""
    environ = {k: v for k, v in os.environ.items() if k != "NAMU_TRACEBACK"}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environ.get("PYTHONPATH", "")]))
    environ.update(env)
    script = f'namu() {{ "{sys.executable}" -m namu.cli "$@"; }}\n{command}'
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=environ, capture_output=True, timeout=90)


def one_error_line(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text, text
    lines = text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    return lines[0]


# ---------------------------------------------------------------------- closed stdout / stderr
def test_run_with_stdout_closed_is_one_error_line_and_runs_nothing(workdir: Path) -> None:
    (workdir / "ran.txt").unlink(missing_ok=True)
    proc = shell('namu run namu_out_wf.py:calc >&-; echo "rc=$?" >&2', workdir)
    *error, rc = proc.stderr.decode().splitlines()
    assert rc == "rc=2"
    assert "standard output is closed" in one_error_line("\n".join(error).encode())
    assert not (workdir / "ran.txt").exists()  # the result could not be written: nothing ran


def test_compile_and_inspect_with_stdout_closed_are_one_error_line(workdir: Path) -> None:
    proc = shell('namu compile namu_out_wf.py:calc -o calc.onnx >&-; echo "rc=$?" >&2', workdir)
    *error, rc = proc.stderr.decode().splitlines()
    assert rc == "rc=2" and "standard output is closed" in one_error_line("\n".join(error).encode())
    assert not (workdir / "calc.onnx").exists()
    assert shell("namu compile namu_out_wf.py:calc -o calc.onnx", workdir).returncode == 0
    proc = shell('namu inspect calc.onnx >&-; echo "rc=$?" >&2', workdir)
    *error, rc = proc.stderr.decode().splitlines()
    assert rc == "rc=2" and "standard output is closed" in one_error_line("\n".join(error).encode())


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
@pytest.mark.parametrize("command", ["run namu_out_wf.py:calc", "run namu_out_wf.py:calc --json", "compile namu_out_wf.py:calc -o full.onnx"])
def test_a_full_stdout_is_one_error_line(workdir: Path, command: str) -> None:
    proc = shell(f"namu {command} > /dev/full", workdir)
    assert proc.returncode == 1
    assert one_error_line(proc.stderr) == "error: cannot write to standard output: No space left on device"


def test_stdout_open_read_only_is_refused_too(workdir: Path) -> None:
    proc = shell("namu run namu_out_wf.py:calc 1</dev/null", workdir)
    assert proc.returncode == 2
    assert "standard output is not open for writing" in one_error_line(proc.stderr)


def test_run_with_stderr_closed_keeps_stdout_clean(workdir: Path) -> None:
    # A task printing to stderr must not land in stdout (print(file=None) writes to stdout).
    proc = shell("namu run namu_out_wf.py:chatty --json 2>&-", workdir)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["value"] == 2
    failed = shell("namu run namu_out_wf.py:failing 2>&-", workdir)
    assert (failed.returncode, failed.stdout) == (1, b"")


@pytest.mark.parametrize("json_flag", ["--json", ""])
def test_a_reader_that_leaves_early_gets_no_error_line(workdir: Path, json_flag: str) -> None:
    # `true` exits without reading: namu's write meets a broken pipe (EPIPE) for sure.
    proc = shell(f"namu run namu_out_wf.py:big {json_flag} | true", workdir)
    assert proc.stderr == b""


# ---------------------------------------------------------------------- results that are hard to print
@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("surrogate", "file-\ud800.txt"),
        ("fsdecoded", "file-\udcff.txt"),  # os.fsdecode of a file name that is not UTF-8
        ("unicode", "café 日本"),
        ("broken", "<unrepresentable Broken object>"),
        ("odd", "Odd(\ud800)"),
        ("huge", HUGE_DIGITS),
        ("nested", {"names": ["a-\udcfe", "<unrepresentable Broken object>"], "7": "Odd(\ud800)", HUGE_DIGITS: "big key"}),
    ],
)
def test_json_output_is_always_strict_utf8_json(workdir: Path, kind: str, value: Any) -> None:
    proc = shell(f"namu run namu_out_wf.py:show -i kind={kind} --json", workdir, PYTHONIOENCODING="latin-1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    text = proc.stdout.decode("utf-8")  # strict: raises on bytes that are not UTF-8
    assert json.loads(text)["value"] == value
    if kind == "unicode":
        assert "café 日本" in text  # readable text stays as it is; only lone surrogates are escaped


@pytest.mark.parametrize("kind", ["surrogate", "fsdecoded", "unicode", "broken", "odd", "huge", "nested"])
def test_pretty_output_never_fails(workdir: Path, kind: str) -> None:
    proc = shell(f"namu run namu_out_wf.py:show -i kind={kind}", workdir)
    assert proc.returncode == 0, proc.stderr
    proc.stdout.decode("utf-8")
    if kind == "odd":
        assert proc.stdout.strip() == b"Odd(\\ud800)"


# Any text, lone surrogates included; but not a high surrogate right before a low one: JSON
# reads "\\ud83d\\ude00" as one character (U+1F600), so no JSON text keeps that pair apart.
_any_text = st.text(st.characters(exclude_categories=())).filter(lambda s: not re.search("[\ud800-\udbff][\udc00-\udfff]", s))


@given(
    st.recursive(
        _any_text | st.integers() | st.none(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_any_text, inner, max_size=3),
        max_leaves=10,
    )
)
@settings(max_examples=300, deadline=None)
def test_any_text_round_trips_through_thejson_document(value: Any) -> None:
    data = json_document({"value": jsonable(value)})
    assert json.loads(data.decode("utf-8")) == {"value": value}  # strict UTF-8, and the same text back
