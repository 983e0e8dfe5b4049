"""``namu run`` inputs: text and JSON converted to the annotation, ``-i NAME=@FILE``,
``--inputs FILE|-``, and one-line errors (exit 2) for every way they can be wrong.

Most tests call the CLI in process (``namu.cli.run``); the big-input ones run the real
command, since the limit they lift is the operating system's (ARG_MAX).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import namu
from namu.cli import run

REPO = Path(namu.__file__).resolve().parent.parent

WORKFLOW = '''
import namu

@namu.task
def kind(x) -> str:
    return type(x).__name__ + ":" + repr(x)

@namu.workflow
def show(a: float = 1.0, flag: bool = False, n: int = 0, xs: tuple[int, ...] = (1,),
         pair: tuple[int, str] = (0, ""), name: str = "", anything=None):
    return {"a": kind(a), "flag": kind(flag), "n": kind(n), "xs": kind(xs), "pair": kind(pair),
            "name": kind(name), "anything": kind(anything)}

@namu.workflow
def floats(ys: list[float], flag: bool = False):
    return {"ys": kind(ys), "flag": kind(flag)}

@namu.workflow
def total(ys: list[int]) -> int:
    return len(ys)
'''


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """``cli(*args, stdin=None, wf="show") -> (exit code, stdout, stderr)`` in ``tmp_path``."""
    (tmp_path / "namu_cli_inputs_wf.py").write_text(textwrap.dedent(WORKFLOW))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))

    def call(*args: str, stdin: str | None = None, wf: str = "show") -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = run(["run", f"namu_cli_inputs_wf.py:{wf}", "--json", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def value(result: tuple[int, str, str]) -> dict[str, str]:
    code, out, err = result
    assert code == 0, err
    return json.loads(out)["value"]


def error(result: tuple[int, str, str], *needles: str) -> str:
    """The one ``error:`` line (exit 2) holding every needle."""
    code, out, err = result
    assert code == 2, (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ---------------------------------------------------------------------- text -> annotation
@pytest.mark.parametrize(
    ("option", "key", "expected"),
    [
        ("a=3", "a", "float:3.0"),  # a number for a float parameter is a float
        ("a=2.5", "a", "float:2.5"),
        ("flag=true", "flag", "bool:True"),
        ("n=4", "n", "int:4"),
        ("xs=[1,2]", "xs", "tuple:(1, 2)"),  # a JSON array for a tuple parameter is a tuple
        ('pair=[3,"x"]', "pair", "tuple:(3, 'x')"),
        ("name=Ada Lovelace", "name", "str:'Ada Lovelace'"),
        ("name=3", "name", "str:'3'"),  # a str parameter takes the text itself
        ('name="quoted"', "name", "str:'quoted'"),  # ... or the JSON string
        ("anything=[1]", "anything", "list:[1]"),  # unannotated: JSON, else the text
        ("anything=hello", "anything", "str:'hello'"),
    ],
)
def test_text_is_converted_to_the_annotation(cli: Any, option: str, key: str, expected: str) -> None:
    assert value(cli("-i", option))[key] == expected


def test_numbers_in_a_list_of_floats_become_floats(cli: Any) -> None:
    assert value(cli("-i", "ys=[1, 2.5]", wf="floats"))["ys"] == "list:[1.0, 2.5]"


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        ("flag=1", "parameter `flag` expects bool, got 1 (int)"),
        ("flag=True", "parameter `flag` expects bool, got 'True' (str)"),
        ('n="3"', "parameter `n` expects int, got '3' (str)"),
        ("n=2.5", "parameter `n` expects int, got 2.5 (float)"),
        ("n=true", "parameter `n` expects int, got True (bool)"),
        ("xs=7", "parameter `xs` expects tuple, got 7 (int)"),
        ("pair=[1]", "parameter `pair` expects tuple[int, str], got [1] (list): 1 items, not 2"),
    ],
)
def test_text_that_does_not_fit_is_refused(cli: Any, option: str, needle: str) -> None:
    error(cli("-i", option), needle)


def test_a_list_item_that_does_not_fit_is_named(cli: Any) -> None:
    error(cli("-i", 'ys=[1, "a"]', wf="floats"), "parameter `ys` item 1 expects float, got 'a' (str)")


# ---------------------------------------------------------------------- @FILE and --inputs
def test_input_from_a_json_file(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "ys.json").write_text(json.dumps(list(range(5))))
    assert value(cli("-i", "ys=@ys.json", wf="floats"))["ys"] == "list:[0.0, 1.0, 2.0, 3.0, 4.0]"


def test_input_from_stdin(cli: Any) -> None:
    assert value(cli("-i", "pair=@-", stdin='[7, "seven"]\n'))["pair"] == "tuple:(7, 'seven')"


def test_inputs_file_and_overrides(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text(json.dumps({"a": 2, "n": 5, "name": "from file", "xs": [4]}))
    got = value(cli("--inputs", "in.json", "-i", "n=7"))
    assert (got["a"], got["n"], got["name"], got["xs"]) == ("float:2.0", "int:7", "str:'from file'", "tuple:(4,)")


def test_inputs_from_stdin(cli: Any) -> None:
    got = value(cli("--inputs", "-", stdin='{"flag": true, "ys": [1]}', wf="floats"))
    assert (got["flag"], got["ys"]) == ("bool:True", "list:[1.0]")


def test_a_file_value_is_typed_json(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text('{"name": 3}')
    error(cli("--inputs", "in.json"), "parameter `name` (from in.json) expects str, got 3 (int)")


@pytest.mark.parametrize(
    ("args", "files", "stdin", "needles"),
    [
        (["-i", "xs=@missing.json"], {}, None, ["no such file: missing.json"]),
        (["--inputs", "missing.json"], {}, None, ["no such file: missing.json"]),
        (["--inputs", "."], {}, None, ["not a file: ."]),
        (["--inputs", "bad.json"], {"bad.json": '{"a": 1,\n "n": }'}, None, ["--inputs bad.json: invalid JSON at line 2, column 7"]),
        (["-i", "xs=@bad.json"], {"bad.json": "[1, 2"}, None, ["input 'xs' from bad.json: invalid JSON at line 1, column 6"]),
        (["--inputs", "-"], {}, "", ["--inputs stdin: invalid JSON at line 1, column 1"]),
        (["--inputs", "bin.json"], {"bin.json": b"\xff\xfe{}"}, None, ["cannot read bin.json: not UTF-8 text"]),
        (["--inputs", "list.json"], {"list.json": "[1]"}, None, ["expected a JSON object mapping input names to values, got an array"]),
        (["--inputs", "in.json"], {"in.json": '{"zz": 1}'}, None, ["unknown input 'zz' (in --inputs in.json)", "it takes: a: float"]),
        (["--inputs", "-", "-i", "xs=@-"], {}, "{}", ["standard input can be read once"]),
    ],
)
def test_input_source_errors_are_one_line(cli: Any, tmp_path: Path, args: list[str], files: dict, stdin: str | None, needles: list[str]) -> None:
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    error(cli(*args, stdin=stdin), *needles)


def test_closed_stdin_is_an_error(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", None)
    error(cli("--inputs", "-"), "cannot read standard input: it is closed")


# ---------------------------------------------------------------------- beyond ARG_MAX
def _namu(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "namu.cli", *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=120
    )


def test_an_input_too_long_for_a_command_line(tmp_path: Path) -> None:
    """300 KB of JSON: more than one argument may hold (128 KB), fine from a file or stdin."""
    (tmp_path / "namu_cli_inputs_big.py").write_text(textwrap.dedent(WORKFLOW))
    ys = json.dumps(list(range(50_000)))
    assert len(ys) > 256 * 1024
    (tmp_path / "ys.json").write_text(ys)
    from_file = _namu(["run", "namu_cli_inputs_big.py:total", "-i", "ys=@ys.json"], tmp_path)
    assert (from_file.returncode, from_file.stdout.strip()) == (0, "50000"), from_file.stderr
    from_stdin = _namu(["run", "namu_cli_inputs_big.py:total", "--inputs", "-"], tmp_path, stdin=json.dumps({"ys": list(range(50_000))}))
    assert (from_stdin.returncode, from_stdin.stdout.strip()) == (0, "50000"), from_stdin.stderr


def test_a_signature_is_listed_as_python_writes_it() -> None:
    """``/`` after positional-only parameters, ``*`` before keyword-only ones, ``*args`` and
    ``**kwargs`` by name (what `namu inspect` and input errors show)."""
    from namu.cli.inputs import format_params
    from namu.ir.metadata import Parameter

    def p(name: str, kind: str, **kw: object) -> Parameter:
        return Parameter(name=name, type="int", kind=kind, **kw)  # type: ignore[arg-type]

    assert format_params([p("a", "positional_only"), p("b", "positional_or_keyword", has_default=True, default=1),
                          p("c", "keyword_only")]) == "a: int, /, b: int = 1, *, c: int"
    assert format_params([p("first", "positional_or_keyword"), p("rest", "var_positional"), p("scale", "keyword_only"),
                          p("named", "var_keyword")]) == "first: int, *rest, scale: int, **named"
    assert format_params([p("a", "positional_only")]) == "a: int, /"
