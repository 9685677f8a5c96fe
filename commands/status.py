"""``albra status``: what runs, positions per account and strategy, equity, drawdown, flags, incidents.

``--offline`` reads only the store (fast, no ccxt import) and is what works while the exchange is down. Without
it each account's exchange view is added (``albra.runbook.status_live``); exit 3 only when every exchange account
is unreachable; exit 2 when an account's API key variables are not set (named in the output).
"""

from __future__ import annotations

from typing import Any, Optional

import typer

from albra.commands._common import ConfigOption, JsonOption, emit_json, load, open_store


def render_offline(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    c = Console(highlight=False)
    ks = "[bold red]ON[/]" if data["kill_switch"] else "[green]off[/]"
    c.print(f"[bold]albra status[/] (store only) as of {data['as_of']} — kill switch {ks}")
    for k in data["kill_switches"]:
        c.print(f"[bold red]{escape(k['text'])}[/]", soft_wrap=True)
    if data["flags"]:
        t = Table(title="Flags", title_justify="left")
        for col in ("kind", "scope", "reason", "actor", "since"):
            t.add_column(col)
        for f in data["flags"]:
            t.add_row(f["kind"], f["scope"], f["reason"], f["actor"], f["since"])
        c.print(t)
    t = Table(title="Accounts", title_justify="left")
    for col in ("account", "mode", "runner", "equity", "drawdown", "daily loss", "legs", "blocked by"):
        t.add_column(col)
    for a in data["accounts"]:
        r = a["runner"]
        runner = f"[green]{escape(r['text'])}[/]" if r["alive"] else f"[bold red]{escape(r['text'])}[/]"
        dd = "-" if a["drawdown_pct"] is None else f"{a['drawdown_pct']:.2f}% (L{a['mdd_level']})"
        dl = "-" if a["daily_loss_pct"] is None else f"{a['daily_loss_pct']:.2f}%"
        t.add_row(a["account"], a["mode"], runner, a["equity"] or "-", dd, dl, str(len(a["legs"])),
                  ", ".join(a["entries_blocked_by"]) or "-")
    c.print(t)
    legs = [(a["account"], leg) for a in data["accounts"] for leg in a["legs"]]
    if legs:
        t = Table(title="Open legs", title_justify="left")
        for col in ("account", "symbol", "strategy", "side", "state", "qty", "entry", "stop", "take profit", "opened"):
            t.add_column(col)
        for acct, leg in legs:
            t.add_row(acct, leg["symbol"], leg["strategy"], leg["direction"], leg["state"], leg["qty"],
                      leg["entry_price"] or "-", leg["stop_price"] or "[red]none[/]", leg["take_profit"] or "-",
                      leg["opened"])
        c.print(t)
    marks = [(a["account"], m) for a in data["accounts"] for m in a["last_candles"]]
    if marks:
        t = Table(title="Last candle evaluated", title_justify="left")
        for col in ("account", "strategy", "symbol", "timeframe", "candle open"):
            t.add_column(col)
        for acct, m in marks:
            t.add_row(acct, m["strategy"], m["symbol"], m["timeframe"], m["last"])
        c.print(t)
    if data["open_incidents"]:
        t = Table(title="Open incidents", title_justify="left")
        for col in ("id", "kind", "title", "opened"):
            t.add_column(col)
        for i in data["open_incidents"]:
            t.add_row(i["id"], i["kind"], i["title"], i["opened"])
        c.print(t)
    else:
        c.print("open incidents: none")


def render_live(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    render_offline(data)
    c = Console(highlight=False)
    t = Table(title="Exchange (live)", title_justify="left")
    for col in ("account", "equity", "uPnL", "drawdown", "daily loss", "positions", "note"):
        t.add_column(col)
    legs = []
    for a in data["accounts"]:
        ex = a["exchange"]
        if not ex["ok"]:
            what = "config error" if ex.get("config_error") else "unreachable"
            t.add_row(a["account"], "-", "-", "-", "-", "-", f"[red]{what}[/]: {ex['reason']}")
            continue
        if ex.get("paper"):
            t.add_row(a["account"], "-", "-", "-", "-", "-", "paper (see its runner)")
            continue
        dd = "-" if ex["drawdown_pct"] is None else f"{ex['drawdown_pct']:.2f}%"
        dl = "-" if ex["daily_loss_pct"] is None else f"{ex['daily_loss_pct']:.2f}%"
        t.add_row(a["account"], ex["equity"], ex["unrealized"], dd, dl, str(len(ex["positions"])), "")
        legs += [(a["account"], g) for g in ex["legs"]]
    c.print(t)
    for a in data["accounts"]:
        for m in a["exchange"].get("mismatches") or []:
            c.print(f"[bold red]mismatch[/] {a['account']} {m['symbol']} {m['position_side']}: ledger "
                    f"{m['ledger_qty']} vs exchange {m['exchange_qty']} — {escape(m['cause'])} "
                    f"(`albra reconcile` explains and repairs it)", soft_wrap=True)
    if legs:
        t = Table(title="Positions by strategy (mark from the exchange)", title_justify="left")
        for col in ("account", "symbol", "strategy", "side", "qty", "entry", "mark", "uPnL"):
            t.add_column(col)
        for acct, g in legs:
            t.add_row(acct, g["symbol"], g["strategy"], g["direction"], g["qty"], g["entry_price"] or "-",
                      g["mark"] or "-", g["unrealized"] or "-")
        c.print(t)


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status_cmd(
        offline: bool = typer.Option(False, "--offline", help="Store only: never contact the exchange."),
        account: Optional[str] = typer.Option(None, "--account", "-a", help="Only this account."),
        config: Optional[str] = ConfigOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Runners, positions by strategy, equity, drawdown, daily loss, flags and open incidents."""
        from albra.runbook.status_offline import offline_status
        from albra.commands._common import fail

        settings = load(config)
        if account and account not in settings.accounts:
            fail(f"unknown account {account!r}; configured: {', '.join(sorted(settings.accounts))}")
        import sqlite3

        store = open_store(settings)
        try:
            if offline:
                try:
                    data = offline_status(settings, store, account)
                except sqlite3.DatabaseError as e:  # a table gone, a damaged page: a clear error, never a traceback
                    from albra.store.db import recovery_hint

                    fail(f"the store {settings.db_path} cannot be read ({e}): it is damaged or not albra's. "
                         f"{recovery_hint(settings.db_path)}")
            else:
                import asyncio

                from albra.runbook.status_live import live_status

                data = asyncio.run(live_status(settings, store, account))
        finally:
            store.close()
        if as_json:
            emit_json(data)
        elif offline:
            render_offline(data)
        else:
            render_live(data)
        if not offline and data["exit_code"]:
            raise typer.Exit(data["exit_code"])
