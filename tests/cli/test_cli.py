"""The ``namu`` command line, run as a real subprocess in a temporary directory.

Every misuse must end with exactly one ``error: ...`` line on stderr and exit code 2
(1 when a task fails at run time), and never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import onnx
import onnx.helper
import pytest

import namu

REPO = Path(namu.__file__).resolve().parent.parent

BASIC = '''
import namu

@namu.task
def add(a: int, b: int) -> int:
    return a + b

@namu.task
def describe(value) -> str:
    return type(value).__name__ + ":" + repr(value)

@namu.task(on_error="skip")
def inverse(x: int) -> float:
    return 1 / x

@namu.task(retries=2)
def upto(n: int) -> list[int]:
    return list(range(n))

@namu.workflow
def calc(x: int = 1, n: int = 4) -> dict:
    y = add(x, 2)
    inv = [inverse(i) for i in upto(n)]
    if y > 10:
        size = "big"
    elif y > 2:
        size = "mid"
    else:
        size = "small"
    return {"y": y, "inv": inv, "size": size}

@namu.workflow
def echo(value) -> str:
    return describe(value)
'''

ENTRY = '''
import namu

@namu.task
def double(x: int) -> int:
    return 2 * x

@namu.workflow
def inner(x: int) -> int:
    return double(x)

@namu.workflow
def outer(n: int = 3) -> list[int]:
    return [inner(i) for i in [1, 2, n]]
'''

SINGLE = '''
import namu

@namu.task
def fail(x: int) -> int:
    if x < 0:
        raise ValueError("negative input\\nwith a second line")
    return x * 10

@namu.workflow
def only(x: int = 1) -> int:
    return fail(x)
'''

BAD_SYNTAX = '''
import namu

@namu.task
def f(x: int) -> int:
    return x

@namu.workflow
def broken(x: int) -> int:
    y = f(x)
    return lambda: y
'''


def namu_cli(*args: str, cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run ``python -m namu.cli ARGS`` in ``cwd`` (stdout/stderr captured, not a TTY)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.pop("NAMU_TRACEBACK", None)
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "namu.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_error(proc: subprocess.CompletedProcess[str], code: int = 2, *needles: str) -> str:
    """Exactly one ``error:`` line on stderr, no traceback, the given exit code."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def basic(tmp_path: Path) -> Path:
    return write(tmp_path, "namu_cli_basic.py", BASIC)


# ---------------------------------------------------------------------- help and version
def test_version(tmp_path: Path) -> None:
    proc = namu_cli("--version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"namu {namu.__version__}"


@pytest.mark.parametrize("command", [[], ["compile"], ["run"], ["inspect"]])
def test_help_explains_with_an_example(tmp_path: Path, command: list[str]) -> None:
    proc = namu_cli(*command, "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: namu" in proc.stdout
    assert "Example" in proc.stdout
    assert proc.stderr == ""


def test_no_arguments_prints_help(tmp_path: Path) -> None:
    proc = namu_cli(cwd=tmp_path)
    assert proc.returncode == 0
    assert "compile" in proc.stdout and "inspect" in proc.stdout and "run" in proc.stdout


# ---------------------------------------------------------------------- compile
def test_compile_default_output_is_workflow_name_in_cwd(tmp_path: Path) -> None:
    write(tmp_path, "namu_cli_single.py", SINGLE)
    proc = namu_cli("compile", "namu_cli_single.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "only.onnx"
    assert out.is_file()
    assert "compiled only:" in proc.stdout and "1 tasks" in proc.stdout and str(out) in proc.stdout
    assert proc.stderr == ""
    onnx.checker.check_model(onnx.load(out), full_check=True)


def test_compile_named_workflow_with_output(tmp_path: Path, basic: Path) -> None:
    proc = namu_cli("compile", f"{basic.name}:calc", "-o", "build/calc.onnx", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    artifact = tmp_path / "build" / "calc.onnx"
    assert artifact.is_file()
    assert "compiled calc:" in proc.stdout and "3 tasks" in proc.stdout
    # no temporary file left behind by the atomic save
    assert [p.name for p in artifact.parent.iterdir()] == ["calc.onnx"]


def test_compile_picks_the_only_entry_workflow(tmp_path: Path) -> None:
    write(tmp_path, "namu_cli_entry.py", ENTRY)
    proc = namu_cli("compile", "namu_cli_entry.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "outer.onnx").is_file()


def test_compile_failure_leaves_no_file(tmp_path: Path) -> None:
    write(tmp_path, "namu_cli_bad.py", BAD_SYNTAX)
    proc = namu_cli("compile", "namu_cli_bad.py", "-o", "broken.onnx", cwd=tmp_path)
    line = assert_error(proc, 2, "namu_cli_bad.py:11:12:", "lambda")
    assert line.startswith(f"error: {tmp_path / 'namu_cli_bad.py'}:11:12: ")
    assert not list(tmp_path.glob("*.onnx"))
    assert not list(tmp_path.glob(".*.tmp"))


def test_compile_failure_keeps_an_existing_output(tmp_path: Path) -> None:
    write(tmp_path, "namu_cli_bad2.py", BAD_SYNTAX)
    (tmp_path / "broken.onnx").write_bytes(b"old")
    proc = namu_cli("compile", "namu_cli_bad2.py", "-o", "broken.onnx", cwd=tmp_path)
    assert_error(proc, 2)
    assert (tmp_path / "broken.onnx").read_bytes() == b"old"


# ---------------------------------------------------------------------- run
@pytest.mark.parametrize("executor", ["kernel", "reference"])
def test_run_json(tmp_path: Path, basic: Path, executor: str) -> None:
    proc = namu_cli("run", f"{basic.name}:calc", "--input", "x=3", "--json", "--executor", executor, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one JSON document
    assert set(doc) == {"value", "skipped", "elapsed_s"}
    assert doc["value"] == {"y": 5, "inv": [1.0, 0.5, 1 / 3], "size": "mid"}
    assert doc["skipped"] == [
        {
            "task": "inverse",
            "span": f"{basic}:23:12",
            "index": 0,
            "error": "ZeroDivisionError: division by zero",
        }
    ]
    assert isinstance(doc["elapsed_s"], float) and doc["elapsed_s"] >= 0
    assert proc.stderr == ""  # no progress bar off a terminal, no summary with --json


def test_run_pretty_prints_value_and_skipped_summary(tmp_path: Path, basic: Path) -> None:
    proc = namu_cli("run", f"{basic.name}:calc", "-i", "n=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "'y': 3" in proc.stdout and "'size': 'mid'" in proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("skipped 1 item: 1 x inverse (ZeroDivisionError)")


def test_run_without_skips_is_quiet_on_stderr(tmp_path: Path) -> None:
    write(tmp_path, "namu_cli_single.py", SINGLE)
    proc = namu_cli("run", "namu_cli_single.py", "-i", "x=4", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "40"
    assert proc.stderr == ""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("3", "int:3"),
        ("2.5", "float:2.5"),
        ("true", "bool:True"),
        ("null", "NoneType:None"),
        ("[1,2]", "list:[1, 2]"),
        ('{"a":1}', "dict:{'a': 1}"),
        ('"3"', "str:'3'"),
        ("hello", "str:'hello'"),
        ("", "str:''"),
        ("a=b", "str:'a=b'"),
    ],
)
def test_run_input_values_are_json_else_strings(tmp_path: Path, basic: Path, raw: str, expected: str) -> None:
    proc = namu_cli("run", f"{basic.name}:echo", "--input", f"value={raw}", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["value"] == expected


def test_run_input_json_string_is_not_converted_to_an_int(tmp_path: Path, basic: Path) -> None:
    # x: int; "3" quoted is a JSON string: the CLI converts text to the annotation, not strings
    proc = namu_cli("run", f"{basic.name}:calc", "-i", 'x="3"', "-i", "n=1", "--json", cwd=tmp_path)
    assert_error(proc, 2, "parameter `x` expects int, got '3' (str)")


def test_run_artifact_matches_source_run(tmp_path: Path, basic: Path) -> None:
    assert namu_cli("compile", f"{basic.name}:calc", "-o", "calc.onnx", cwd=tmp_path).returncode == 0
    from_source = namu_cli("run", f"{basic.name}:calc", "-i", "x=9", "--json", cwd=tmp_path)
    from_artifact = namu_cli("run", "calc.onnx", "-i", "x=9", "--json", cwd=tmp_path)
    assert from_source.returncode == from_artifact.returncode == 0, from_artifact.stderr
    a, b = json.loads(from_source.stdout), json.loads(from_artifact.stdout)
    assert a["value"] == b["value"] == {"y": 11, "inv": [1.0, 0.5, 1 / 3], "size": "big"}
    assert a["skipped"] == b["skipped"]


def test_run_artifact_from_another_directory(tmp_path: Path, basic: Path) -> None:
    assert namu_cli("compile", f"{basic.name}:calc", "-o", "calc.onnx", cwd=tmp_path).returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = namu_cli("run", str(tmp_path / "calc.onnx"), "--json", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["value"]["y"] == 3


def test_run_task_failure_exits_1_with_one_line(tmp_path: Path) -> None:
    write(tmp_path, "namu_cli_single.py", SINGLE)
    proc = namu_cli("run", "namu_cli_single.py", "-i", "x=-1", cwd=tmp_path)
    line = assert_error(proc, 1, "task 'fail' failed at", "ValueError: negative input")
    assert f"{tmp_path / 'namu_cli_single.py'}:12:12" in line
    assert proc.stdout == ""


@pytest.mark.parametrize("executor", ["kernel", "reference"])
def test_run_error_in_workflow_body_exits_1_with_span(tmp_path: Path, executor: str) -> None:
    write(
        tmp_path,
        "namu_cli_divide.py",
        """
        import namu

        @namu.task
        def seven() -> int:
            return 7

        @namu.workflow
        def divide(d: int = 0) -> int:
            return seven() // d
        """,
    )
    proc = namu_cli("run", "namu_cli_divide.py", "--executor", executor, cwd=tmp_path)
    assert_error(proc, 1, "ZeroDivisionError", f"{tmp_path / 'namu_cli_divide.py'}:10:12")


def test_run_json_with_unserializable_value_uses_repr(tmp_path: Path) -> None:
    write(
        tmp_path,
        "namu_cli_repr.py",
        '''
        import namu

        class Point:
            def __repr__(self):
                return "Point()"

        @namu.task
        def make() -> object:
            return {"p": Point(), "t": (1, 2), "s": {3}, "nan": float("nan"), 4: "four"}

        @namu.workflow
        def objects():
            return make()
        ''',
    )
    proc = namu_cli("run", "namu_cli_repr.py", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["value"] == {"p": "Point()", "t": [1, 2], "s": "{3}", "nan": "nan", "4": "four"}


# ---------------------------------------------------------------------- inspect
def test_inspect_shows_passport_tasks_signature_and_listing(tmp_path: Path, basic: Path) -> None:
    assert namu_cli("compile", f"{basic.name}:calc", "-o", "calc.onnx", cwd=tmp_path).returncode == 0
    proc = namu_cli("inspect", "calc.onnx", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # passport
    assert "passport" in out and f"namu      {namu.__version__}" in out
    assert "verify-structure" in out and "sha256:" in out
    # signature
    assert "calc(x: int = 1, n: int = 4) -> {'y': int, 'inv': list[float], 'size': str}" in out
    # task table: key, module.qualname, file, short digest, non-default options
    rows = {
        line.split()[0]: line
        for line in out.splitlines()
        if len(line.split()) > 2 and line.split()[1].startswith("namu_cli_basic.")
    }
    assert set(rows) == {"add", "inverse", "upto"}
    assert "namu_cli_basic.inverse" in rows["inverse"] and "on_error='skip'" in rows["inverse"]
    assert "retries=2" in rows["upto"]
    assert rows["add"].rstrip().endswith("-")
    assert "namu_cli_basic.py" in rows["add"]
    # listing
    assert "graph calc(%x: int, %n: int):" in out
    assert "= namu.Task[task=add](%x, %const)" in out and "# namu_cli_basic.py:22:9" in out
    assert "= Constant(2)" in out and 'Constant("mid")' in out
    assert "namu.Map" in out and "    body(%i: int):" in out
    assert "then_branch():" in out and "else_branch():" in out


def test_inspect_imports_no_task_code(tmp_path: Path, basic: Path) -> None:
    assert namu_cli("compile", f"{basic.name}:calc", "-o", "calc.onnx", cwd=tmp_path).returncode == 0
    basic.write_text("raise SystemExit('task code must not be imported by inspect')\n")
    proc = namu_cli("inspect", "calc.onnx", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "namu.Task[task=add]" in proc.stdout


def test_inspect_tables_off_a_terminal_are_plain_and_unwrapped(tmp_path: Path, basic: Path) -> None:
    assert namu_cli("compile", f"{basic.name}:calc", "-o", "calc.onnx", cwd=tmp_path).returncode == 0
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="40")  # rich would wrap at 40 columns
    env.pop("FORCE_COLOR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "namu.cli", "inspect", "calc.onnx"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "\x1b" not in proc.stdout and all(line == line.rstrip() for line in lines)
    (passes,) = [line for line in lines if line.startswith("  passes    ")]
    assert passes.startswith("  passes    verify-structure -> ") and "verify-runtime-complete" in passes  # one line
    # the signature's table: each input with its type and default, each output with its type
    assert [line.split() for line in lines if line.split()[:1] in (["input"], ["output"])] == [
        ["input", "x", "int", "1"],
        ["input", "n", "int", "4"],
        ["output", "y", "int"],
        ["output", "inv", "list[float]"],
        ["output", "size", "str"],
    ]


def test_inspect_onnx_text(tmp_path: Path, basic: Path) -> None:
    assert namu_cli("compile", f"{basic.name}:calc", "-o", "calc.onnx", cwd=tmp_path).returncode == 0
    proc = namu_cli("inspect", "calc.onnx", "--onnx-text", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ir_version: 10" in proc.stdout and "namu.Task" in proc.stdout
    assert "passport\n" not in proc.stdout


# ---------------------------------------------------------------------- bad input
def test_missing_file(tmp_path: Path) -> None:
    for args in (["compile", "nope.py"], ["run", "nope.py"], ["run", "nope.onnx"], ["inspect", "nope.onnx"]):
        assert_error(namu_cli(*args, cwd=tmp_path), 2, "no such file: nope.")


def test_unknown_workflow_lists_available(tmp_path: Path, basic: Path) -> None:
    proc = namu_cli("run", f"{basic.name}:nope", cwd=tmp_path)
    assert_error(proc, 2, "no workflow named 'nope'", "available: calc, echo")


def test_several_workflows_none_named_lists_them(tmp_path: Path, basic: Path) -> None:
    proc = namu_cli("compile", basic.name, cwd=tmp_path)
    assert_error(proc, 2, "several workflows (calc, echo)", f"{basic.name}:WORKFLOW")
    assert not list(tmp_path.glob("*.onnx"))


def test_file_without_workflow(tmp_path: Path) -> None:
    write(tmp_path, "namu_cli_plain.py", "import namu\n\n@namu.task\ndef t(x):\n    return x\n")
    assert_error(namu_cli("run", "namu_cli_plain.py", cwd=tmp_path), 2, "defines no @namu.workflow")


def test_imported_workflows_do_not_count(tmp_path: Path, basic: Path) -> None:
    write(tmp_path, "namu_cli_importer.py", "from namu_cli_basic import calc, echo\n")
    assert_error(namu_cli("compile", "namu_cli_importer.py", cwd=tmp_path), 2, "defines no @namu.workflow")


def test_python_syntax_error_in_file(tmp_path: Path) -> None:
    write(tmp_path, "namu_cli_pyerr.py", "def broken(:\n    pass\n")
    assert_error(namu_cli("compile", "namu_cli_pyerr.py", cwd=tmp_path), 2, "namu_cli_pyerr.py:1:", "SyntaxError")


def test_module_raising_at_import(tmp_path: Path) -> None:
    write(tmp_path, "namu_cli_raises.py", "raise RuntimeError('no import for you\\nsecond line')\n")
    assert_error(
        namu_cli("run", "namu_cli_raises.py", cwd=tmp_path), 2, "raised RuntimeError: no import for you"
    )


def test_not_a_workflow_file(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("hello")
    assert_error(namu_cli("run", "data.txt", cwd=tmp_path), 2, "expected a workflow file")
    assert_error(namu_cli("compile", "data.txt", cwd=tmp_path), 2, "data.txt is not a workflow file; expected FILE.py[:WORKFLOW], FILE.yaml, FILE.yml")


def test_malformed_input(tmp_path: Path, basic: Path) -> None:
    assert_error(namu_cli("run", f"{basic.name}:calc", "--input", "x", cwd=tmp_path), 2, "NAME=VALUE", "'x'")
    assert_error(namu_cli("run", f"{basic.name}:calc", "--input", "=3", cwd=tmp_path), 2, "NAME=VALUE")


def test_unknown_input_name(tmp_path: Path, basic: Path) -> None:
    proc = namu_cli("run", f"{basic.name}:calc", "--input", "z=3", cwd=tmp_path)
    assert_error(proc, 2, "unknown input 'z'", "x: int = 1, n: int = 4")


def test_duplicate_input(tmp_path: Path, basic: Path) -> None:
    proc = namu_cli("run", f"{basic.name}:calc", "-i", "x=3", "-i", "x=4", cwd=tmp_path)
    assert_error(proc, 2, "given twice")


@pytest.mark.parametrize("value", ["abc", "[1]", "2.5"])
def test_input_of_wrong_type(tmp_path: Path, basic: Path, value: str) -> None:
    proc = namu_cli("run", f"{basic.name}:calc", "--input", f"x={value}", cwd=tmp_path)
    assert_error(proc, 2, "parameter `x` expects int")


def test_input_error_on_artifact(tmp_path: Path, basic: Path) -> None:
    assert namu_cli("compile", f"{basic.name}:calc", "-o", "calc.onnx", cwd=tmp_path).returncode == 0
    assert_error(namu_cli("run", "calc.onnx", "-i", "n=lots", cwd=tmp_path), 2, "parameter `n` expects int")


def test_corrupt_artifact(tmp_path: Path) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"\x00\xffnot a protobuf at all")
    for command in ("run", "inspect"):
        assert_error(namu_cli(command, "junk.onnx", cwd=tmp_path), 2, "junk.onnx", "not a valid ONNX file")


def test_onnx_model_not_built_by_namu(tmp_path: Path) -> None:
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(onnx.helper.make_model(graph), tmp_path / "foreign.onnx")
    for command in ("run", "inspect"):
        assert_error(namu_cli(command, "foreign.onnx", cwd=tmp_path), 2, "not a namu artifact")


def test_stale_artifact(tmp_path: Path, basic: Path) -> None:
    assert namu_cli("compile", f"{basic.name}:calc", "-o", "calc.onnx", cwd=tmp_path).returncode == 0
    basic.write_text(basic.read_text().replace("return a + b", "return a + b + 1"))
    proc = namu_cli("run", "calc.onnx", cwd=tmp_path)
    assert_error(proc, 2, "task 'add'", "changed since")


def test_click_usage_errors_are_one_line(tmp_path: Path, basic: Path) -> None:
    assert_error(namu_cli("run", basic.name, "--bogus", cwd=tmp_path), 2, "--bogus")
    assert_error(namu_cli("run", cwd=tmp_path), 2, "Missing argument")
    assert_error(namu_cli("frobnicate", cwd=tmp_path), 2, "frobnicate")
    assert_error(namu_cli("run", f"{basic.name}:calc", "--executor", "gpu", cwd=tmp_path), 2, "--executor", "gpu")
    assert_error(namu_cli("compile", f"{basic.name}:calc", "-o", cwd=tmp_path), 2, "-o")
    assert_error(namu_cli("compile", f"{basic.name}:", cwd=tmp_path), 2, "invalid workflow name")


# ---------------------------------------------------------------------- checkpoint and cache
COUNTED = '''
import namu

@namu.task(cache=True)
def square(marker: str, x: int) -> int:
    with open(marker, "a") as f:
        f.write(f"{x}\\n")
    return x * x

@namu.workflow
def squares(marker: str, xs: list[int]) -> list[int]:
    return [square(marker, x) for x in xs]
'''


def _executions(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def test_run_with_checkpoint_resumes(tmp_path: Path) -> None:
    write(tmp_path, "namu_cli_counted.py", COUNTED)
    args = ("run", "namu_cli_counted.py", "-i", "marker=marks.txt", "-i", "xs=[1,2,3,2]", "--checkpoint", "ck/run.db")
    first = namu_cli(*args, "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["value"] == [1, 4, 9, 4]
    assert json.loads(first.stdout)["resumed_calls"] == 0
    assert _executions(tmp_path / "marks.txt") == 3  # the repeated 2 is a cache hit
    assert (tmp_path / "ck" / "run.db").is_file()

    again = namu_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "[1, 4, 9, 4]"
    assert again.stderr.strip() == "resumed 4 task calls from ck/run.db"
    assert _executions(tmp_path / "marks.txt") == 3


def test_run_with_cache_dir_reuses_results_across_processes(tmp_path: Path) -> None:
    write(tmp_path, "namu_cli_counted.py", COUNTED)
    base = ("run", "namu_cli_counted.py", "-i", "marker=marks.txt", "--json", "--cache-dir", "cache")
    first = namu_cli(*base, "-i", "xs=[1,2]", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "resumed_calls" not in json.loads(first.stdout)
    second = namu_cli(*base, "-i", "xs=[2,1,5]", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["value"] == [4, 1, 25]
    assert (tmp_path / "marks.txt").read_text().split() == ["1", "2", "5"]
    env_run = subprocess.run(
        [sys.executable, "-m", "namu.cli", *base[:-2], "-i", "xs=[5]"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "NAMU_CACHE_DIR": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert env_run.returncode == 0, env_run.stderr
    assert (tmp_path / "marks.txt").read_text().split() == ["1", "2", "5"]


def test_unusable_checkpoint_or_cache_is_one_error_line(tmp_path: Path) -> None:
    write(tmp_path, "namu_cli_counted.py", COUNTED)
    (tmp_path / "junk.db").write_bytes(b"\x01 definitely not sqlite" * 64)
    (tmp_path / "plain_file").write_text("x")
    args = ("run", "namu_cli_counted.py", "-i", "marker=m.txt", "-i", "xs=[1]")
    assert_error(namu_cli(*args, "--checkpoint", "junk.db", cwd=tmp_path), 2, "cannot open checkpoint", "junk.db")
    assert_error(namu_cli(*args, "--checkpoint", ".", cwd=tmp_path), 2, "--checkpoint")
    assert_error(namu_cli(*args, "--cache-dir", "plain_file", cwd=tmp_path), 2, "plain_file")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "results.sqlite3").write_bytes(b"garbage" * 100)
    assert_error(namu_cli(*args, "--cache-dir", "cache", cwd=tmp_path), 2, "cannot open result cache", "results.sqlite3")


# ---------------------------------------------------------------------- run modes and Ctrl+C
def test_run_modes_give_the_same_result(basic: Path) -> None:
    results = set()
    for options in ([], ["--task-mode", "thread", "--workers", "2"], ["--max-concurrency", "1"]):
        proc = namu_cli("run", f"{basic.name}:calc", "-i", "n=6", "--json", *options, cwd=basic.parent)
        assert proc.returncode == 0, proc.stderr
        results.add(json.dumps(json.loads(proc.stdout)["value"], sort_keys=True))
    assert len(results) == 1


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        (["--max-concurrency", "0"], "--max-concurrency"),
        (["--workers", "0"], "--workers"),
        (["--task-mode", "fibers"], "--task-mode"),
    ],
)
def test_bad_run_options_are_one_line_errors(basic: Path, option: list[str], needle: str) -> None:
    assert_error(namu_cli("run", f"{basic.name}:calc", *option, cwd=basic.parent), 2, needle)


SLOW = """
import asyncio
import namu

@namu.task
def ids(n: int) -> list[int]:
    print("started", flush=True)
    return list(range(n))

@namu.task
async def nap(i: int) -> int:
    await asyncio.sleep(30)
    return i

@namu.workflow
def slow(n: int = 5) -> int:
    return len([nap(i) for i in ids(n)])
"""


def _interrupted_run(tmp_path: Path, name: str, source: str, pauses_s: Sequence[float]) -> tuple[int, str]:
    """``namu run`` a script whose first task prints "started"; after it did, send one
    SIGINT after each pause. Returns the exit code and stderr."""
    import signal
    import time

    script = write(tmp_path, name, source)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "namu.cli", "run", script.name],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    for pause_s in pauses_s:
        time.sleep(pause_s)
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_ctrl_c_reports_what_finished(tmp_path: Path) -> None:
    code, err = _interrupted_run(tmp_path, "namu_cli_slow.py", SLOW, [0.3])
    assert code == 130, err
    assert err == "error: run cancelled: 1 call finished, 5 cancelled\n"  # one line, no blank one before


HANG = """
import time
import namu

@namu.task(mode="thread")
def hang(x: int) -> int:
    print("started", flush=True)
    time.sleep(600)
    return x

@namu.workflow
def w(x: int = 1) -> int:
    return hang(x)
"""


def test_second_ctrl_c_exits_at_once_and_says_what_was_abandoned(tmp_path: Path) -> None:
    # The first SIGINT stops scheduling (the thread call cannot be stopped); the second
    # abandons it: namu exits now, not after the 600 s sleep.
    code, err = _interrupted_run(tmp_path, "namu_cli_hang.py", HANG, [0.3, 0.5])
    assert code == 130, err
    assert err.splitlines() == [
        "stopping: waiting for 1 running task call to return (Ctrl+C again to abandon it)",
        "error: run cancelled: 0 calls finished, 0 cancelled, 1 abandoned while still running in a worker thread",
    ]
