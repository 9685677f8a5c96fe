"""The ``albra`` command: one Typer app; each operator command lives in its own module in ``commands/``.

Only typer/rich and the small command modules are imported here. Anything heavy (ccxt, pandas, ta,
telegram, pydantic-settings) is imported inside the function that needs it, so ``albra --help``
stays fast (a test pins this).
"""

from __future__ import annotations

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


def main() -> None:
    """Console-script entry point."""
    app()
