"""``albra run --account NAME``: the trading loop for one account (systemd unit ``albra@NAME``).

Exit codes: 0 stopped cleanly (signal, replay exhausted, --until/--max-candles), 2 configuration error,
3 exchange unreachable at start-up.
"""

from __future__ import annotations

from typing import Optional

import typer

from albra.commands import EXIT_UNREACHABLE, EXIT_USAGE
from albra.commands._common import ConfigOption, JsonOption, emit_json, disk_full_note, fail, load, open_store


def run(
    account: str = typer.Option(..., "--account", "-a", help="Account to trade (one process per account)."),
    until: Optional[str] = typer.Option(None, "--until", help="Stop at this exchange time (YYYY-MM-DD, ISO, ms)."),
    max_candles: Optional[int] = typer.Option(None, "--max-candles", min=1,
                                              help="Paper replay: stop after this many candles."),
    json_out: bool = JsonOption,
    config: Optional[str] = ConfigOption,
) -> None:
    """Run the trading loop of ACCOUNT until SIGTERM/SIGINT (paper replay: until the data ends)."""
    import asyncio
    import sqlite3

    from albra.config import ConfigError
    from albra.timefmt import parse_time

    settings = load(config)
    try:
        settings.account(account)
        settings.require_secrets(account)  # refuse a keyless live start before anything is written
    except ConfigError as e:
        fail(str(e))
    try:
        until_ms = parse_time(until) if until else None
    except ValueError as e:
        fail(str(e))
    # Open the store here so a corrupt, newer-schema, unreachable or full store is a clear exit 2, not a traceback.
    store = open_store(settings)
    from albra.engine.runner import Runner, RunnerError, WriterBusy
    from albra.exchange.errors import ExchangeError
    from albra.log import setup_logging

    try:
        setup_logging(settings, f"run-{account}")
    except Exception as e:  # logging must not be the reason a runner cannot start; say why
        typer.echo(f"warning: file logging unavailable: {e}", err=True)
    try:
        runner = Runner(settings, account, store=store, max_candles=max_candles, until_ms=until_ms,
                        announce=lambda msg: typer.echo(msg, err=True))
        summary = asyncio.run(runner.run())
    except WriterBusy as e:  # not a usage error: the account is being written by another process (exit 1)
        fail(str(e), 1)
    except RunnerError as e:
        fail(str(e), EXIT_USAGE)
    except ConfigError as e:
        fail(str(e), EXIT_USAGE)
    except ExchangeError as e:
        fail(f"exchange error: {e}", EXIT_UNREACHABLE)
    except sqlite3.OperationalError as e:  # e.g. the disk holding the store filled up mid-run
        fail(f"the store {settings.db_path} cannot be written: {e}; the runner stopped"
             f"{disk_full_note(settings.paths.state_dir)}", EXIT_USAGE)
    except OSError as e:  # pid file or another state file under the state dir (disk full, permissions)
        fail(f"cannot write under {settings.paths.state_dir}: {e}; the runner stopped"
             f"{disk_full_note(settings.paths.state_dir)}", EXIT_USAGE)
    if json_out:
        emit_json(summary.as_dict())
        return
    from rich.console import Console

    s = summary.as_dict()
    Console(highlight=False).print(
        f"[bold]albra run {account}[/] stopped ({s['stopped_by']}): {s['candles']} candles, {s['evaluations']} "
        f"evaluations, {s['trades']} closed trades ({s['wins']} won), PnL {float(summary.pnl):.2f} USDT, equity "
        f"{s['equity'] or '-'} USDT, open legs {s['open_legs']}, refusals {s['refusals']}")
    for sym, src in s["funding"].items():
        Console(highlight=False).print(f"funding {sym}: {src}")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
