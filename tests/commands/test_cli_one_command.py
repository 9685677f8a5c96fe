"""``albra NAME ...`` builds only the named command's parser, and behaves exactly as the whole app does."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from albra.cli import app, app_for


@pytest.mark.parametrize("args", [
    ["backtest", "--help"],                       # a command's help
    ["backtest", "--nope"],                       # a usage error inside a command
    ["backtest", "-s", "TFPE"],                   # a missing required option
    ["data", "--help"],                           # a command group
    ["data", "nope"],                             # an unknown subcommand of a group
    ["status", "--offline", "--nope"],
])
def test_one_command_app_answers_as_the_whole_app(args: list[str]) -> None:
    one = app_for(args)
    assert one is not app and len(one.registered_commands) + len(one.registered_groups) == 1
    whole, pruned = CliRunner().invoke(app, args), CliRunner().invoke(one, args)
    assert (pruned.exit_code, pruned.output) == (whole.exit_code, whole.output)


@pytest.mark.parametrize("args", [[], ["--help"], ["--version"], ["backtst"], ["--version", "status"]])
def test_anything_else_gets_the_whole_app(args: list[str]) -> None:
    assert app_for(args) is app
