"""``namu``'s commands are loaded lazily: ``namu --help`` lists them from
``namu.cli.COMMANDS`` (name, module and one-line help) without importing their modules,
so that table must say what the commands themselves say. Run in process through
``namu.cli.run``."""

from __future__ import annotations

import click
import pytest

from namu.cli import COMMANDS, cli, run


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_table_names_each_command_and_its_help(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert isinstance(command, click.Command)
    assert command.name == name
    assert command.short_help == COMMANDS[name].short_help


def test_help_lists_every_command_with_its_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    listed = out.split("Commands:\n", 1)[1].splitlines()
    assert [line.split(None, 1) for line in listed] == [[name, COMMANDS[name].short_help] for name in sorted(COMMANDS)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compil"], "error: No such command 'compil'. Did you mean 'compile'?"),
        (["rn", "x.py"], "error: No such command 'rn'. (Did you mean one of: 'run', 'runs'?)"),
        (["xyz"], "error: No such command 'xyz'."),
        (["--bogus"], "error: No such option '--bogus'."),
    ],
)
def test_an_unknown_command_is_one_line_with_suggestions(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert run(args) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", message + "\n")
