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
    import sys

    paper = settings.account(account).mode.value == "paper"
    bar = _ReplayBar() if paper and not json_out and sys.stderr.isatty() else None
    try:
        runner = Runner(settings, account, store=store, max_candles=max_candles, until_ms=until_ms,
                        announce=lambda msg: typer.echo(msg, err=True),
                        progress=bar.update if bar is not None else None)
        if bar is not None:
            with bar:
                summary = asyncio.run(runner.run())
        else:
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
    render_summary(account, summary.as_dict())


def render_summary(account: str, s: dict) -> None:
    """The end of a session, as a trading desk would want it: result, costs, drawdown, and each strategy's part."""
    from decimal import Decimal

    from rich.console import Console
    from rich.table import Table

    c = Console(highlight=False)
    dd = "-" if s.get("max_drawdown_pct") is None else f"{s['max_drawdown_pct']:.2f}%"
    c.print(
        f"[bold]albra run {account}[/] stopped ({s['stopped_by']}): {s['candles']} candles, {s['evaluations']} "
        f"evaluations, {s['trades']} closed trades ({s['wins']} won), PnL {Decimal(s['pnl']):.2f} USDT (after fees "
        f"{s['fees']} and funding {s['funding_paid']}), max drawdown {dd}, equity {s['equity'] or '-'} USDT, open legs "
        f"{s['open_legs']}, refusals {s['refusals']}")
    if s.get("by_strategy"):
        t = Table(title="By strategy", title_justify="left")
        for col in ("strategy", "trades", "won", "win rate", "net PnL", "fees", "funding"):
            t.add_column(col, justify="left" if col == "strategy" else "right")
        for name, b in s["by_strategy"].items():
            rate = f"{b['wins'] / b['trades'] * 100:.0f}%" if b["trades"] else "-"
            t.add_row(name, str(b["trades"]), str(b["wins"]), rate, b["pnl"], b["fees"], b["funding"])
        c.print(t)
    for sym, src in (s.get("funding") or {}).items():
        c.print(f"funding {sym}: {src}")


class _ReplayBar:
    """A Rich progress bar over a paper replay (exchange time covered), with log lines printed above it."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("replay"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                                 transient=True)
        self.task = self.progress.add_task("replay", total=1)
        self._swapped: list = []

    def update(self, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done, total=total)

    def __enter__(self) -> "_ReplayBar":
        import logging

        from albra.log import ConsoleFormatter

        console = self.progress.console
        fmt = ConsoleFormatter()

        class _Above(logging.Handler):  # log lines (alerts) scroll above the bar instead of tearing it
            def emit(self, record: logging.LogRecord) -> None:
                console.print(fmt.format(record), markup=False, highlight=False, soft_wrap=True)

        root = logging.getLogger()
        for h in list(root.handlers):
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                root.removeHandler(h)
                self._swapped.append(h)
        self._above = _Above()
        root.addHandler(self._above)
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import logging

        self.progress.stop()
        root = logging.getLogger()
        root.removeHandler(self._above)
        for h in self._swapped:
            root.addHandler(h)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
