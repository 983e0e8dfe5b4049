"""``namu compile``'s optimizer options: --print-passes, -O, --disable-pass, --dump-after,
--timings and --slot. Run in process through ``namu.cli.run`` (the same entry point as
the console script) to keep the suite fast; tests/cli/test_cli.py covers the subprocess."""

from __future__ import annotations

import textwrap
from pathlib import Path

import onnx
import pytest

import namu
from namu.cli import run
from namu.passes import pipeline

SOURCE = '''
import namu

llm = namu.slot("llm")

@namu.task
def inc(x: int) -> int:
    return x + 1

@namu.task
def shout(text: str) -> str:
    return text.upper()

@namu.workflow
def calc(x: int = 1) -> int:
    y = inc(x)
    unused = 2 + 3
    return inc(y)

@namu.workflow
def talk(text: str) -> str:
    return llm(text)
'''


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "opts_wf.py").write_text(textwrap.dedent(SOURCE))
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_print_passes_lists_the_pipeline_of_each_level(capsys) -> None:
    for level in (0, 1, 2):
        code, out, err = cli(capsys, "compile", "--print-passes", f"-O{level}")
        assert code == 0 and err == ""
        names = [line.split()[1] for line in out.splitlines()[1:]]
        assert names == pipeline(level)
        assert out.splitlines()[0] == f"pipeline at -O{level} ({len(names)} passes):"
    code, out, _ = cli(capsys, "compile", "--print-passes", "--disable-pass", "fuse-tasks")
    assert "fuse-tasks" not in out and "verify-runtime-complete" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--disable-pass", "partition"], "error: pass 'partition' is required (it verifies or lowers the IR) and cannot be disabled"),
        (["--disable-pass", "nope"], "error: unknown pass 'nope'; registered passes: "),
        (["--dump-after", "nope", "opts_wf.py:calc"], "error: unknown pass 'nope'"),
        (["-O0", "--dump-after", "fuse-tasks", "opts_wf.py:calc"], "error: --dump-after fuse-tasks: the pass does not run at -O0"),
        (["-O3", "opts_wf.py:calc"], "error: Invalid value for '-O' / '--opt-level'"),
        ([], "error: missing FILE.py[:WORKFLOW] (or use --print-passes)"),
        (["opts_wf.py:talk"], "error: "),
        (["--slot", "llm", "opts_wf.py:talk"], "error: --slot expects NAME=TASK or NAME=FILE.py:TASK, got 'llm'"),
        (["--slot", "llm=nothing", "opts_wf.py:talk"], "error: --slot llm: 'nothing' is not a @namu.task (or, for a role slot, a class) in the workflow's module"),
    ],
)
def test_misuse_is_one_line_and_exit_2(workdir: Path, capsys, args: list[str], message: str) -> None:
    code, out, err = cli(capsys, "compile", *args)
    assert code == 2
    assert err.startswith(message) and err.count("\n") == 1, err
    assert not list(workdir.glob("*.onnx"))


def test_unbound_slot_names_the_slot_and_line(workdir: Path, capsys) -> None:
    code, _, err = cli(capsys, "compile", "opts_wf.py:talk")
    assert code == 2
    line = textwrap.dedent(SOURCE).splitlines().index("    return llm(text)") + 1
    assert err.startswith(f"error: {workdir / 'opts_wf.py'}:{line}:12: slot 'llm' has no implementation")


def test_slot_binding_compiles_and_runs(workdir: Path, capsys) -> None:
    code, out, err = cli(capsys, "compile", "opts_wf.py:talk", "--slot", "llm=shout")
    assert (code, err) == (0, "")
    assert namu.load(workdir / "talk.onnx")("hi") == "HI"


def test_opt_levels_change_the_artifact(workdir: Path, capsys) -> None:
    sizes = {}
    for level in ("0", "2"):
        code, out, _ = cli(capsys, "compile", "opts_wf.py:calc", "-O", level, "-o", f"calc{level}.onnx")
        assert code == 0
        art = namu.load(workdir / f"calc{level}.onnx")
        assert art.passport.passes == pipeline(int(level))
        assert art.passport.options["opt_level"] == int(level)
        assert art(1) == 3
        sizes[level] = int(out.split(": ")[1].split(" ops")[0])
    assert sizes["2"] < sizes["0"]  # the dead `2 + 3` and its constants are gone at -O2


def test_timings_print_one_row_per_pass(workdir: Path, capsys) -> None:
    code, out, _ = cli(capsys, "compile", "opts_wf.py:calc", "--timings", "-O1")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split() == ["pass", "time", "ms", "runs", "changes"]
    names = [row.split()[0] for row in rows[1 : 1 + len(pipeline(1))]]
    assert names == pipeline(1)
    dce = next(row for row in rows if row.startswith("eliminate-dead-code"))
    assert int(dce.split()[-1]) > 0  # it removed the unused addition
    assert int(dce.split()[-2]) >= 1  # the clean-up group ran it once, or again after a change
    assert rows[1 + len(pipeline(1))].startswith("total")


def test_dump_after_writes_onnx_text_per_pass(workdir: Path, capsys) -> None:
    code, out, _ = cli(capsys, "compile", "opts_wf.py:calc", "--dump-after", "fold-constants", "--dump-after", "eliminate-dead-code")
    assert code == 0
    dumps = sorted(p.name for p in (workdir / "calc.ir").iterdir())
    position = {name: i + 1 for i, name in enumerate(pipeline())}
    assert dumps == [
        f"{position['fold-constants']:02d}-fold-constants.onnxtxt",
        f"{position['eliminate-dead-code']:02d}-eliminate-dead-code.onnxtxt",
    ]
    folded, cleaned = (onnx.parser.parse_model((workdir / "calc.ir" / name).read_text()) for name in dumps)
    # fold-constants turned `2 + 3` into a constant; dead-code elimination dropped it
    assert [n.op_type for n in folded.graph.node].count("Add") == 0
    assert len(cleaned.graph.node) < len(folded.graph.node)


def test_dump_after_all_into_a_chosen_directory(workdir: Path, capsys) -> None:
    code, out, _ = cli(capsys, "compile", "opts_wf.py:calc", "-O0", "--dump-after", "all", "--dump-dir", "ir")
    assert code == 0 and "IR dumps -> " in out
    assert len(list((workdir / "ir").glob("*.onnxtxt"))) == len(pipeline(0))
