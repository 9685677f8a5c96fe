"""The ``albra`` command: one Typer app; each operator command lives in its own module in ``commands/``.

Only typer/rich and the small command modules are imported here. Anything heavy (ccxt, pandas, ta,
telegram, pydantic-settings) is imported inside the function that needs it, so ``albra --help``
stays fast (a test pins this).
"""

from __future__ import annotations

import copy
import sys

import typer

from albra.commands import register_all

app = typer.Typer(
    name="albra",
    help="Operator toolkit and trading runner for Binance USDⓈ-M futures.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
register_all(app)


def _version(value: bool) -> None:
    if value:
        from albra import __version__

        typer.echo(f"albra {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print albra's version and exit.")) -> None:
    """Operator toolkit and trading runner for Binance USDⓈ-M futures."""


def app_for(args: list[str]) -> typer.Typer:
    """The app that runs ``albra ARGS``: when the first argument names a command (or command group), a copy of
    the app holding only that one, else the whole app.

    Why: before parsing anything Typer builds the parser of every command (an ``inspect.signature`` and a Click
    parameter per option), ~50 ms of every ``albra`` process, a backtest's included. The named command parses,
    helps and fails exactly as in the whole app (same root options, same ``albra NAME`` usage line); anything
    else -- no argument, a root option, a misspelt command -- gets the whole app and its listing/suggestions."""
    if not args or args[0].startswith("-") or any(c.name is None for c in app.registered_commands):
        return app
    cmds = [c for c in app.registered_commands if c.name == args[0]]
    groups = [g for g in app.registered_groups if g.name == args[0]]
    if len(cmds) + len(groups) != 1:
        return app
    one = copy.copy(app)
    one.registered_commands, one.registered_groups = cmds, groups
    return one


def main() -> None:
    """Console-script entry point."""
    app_for(sys.argv[1:])()
