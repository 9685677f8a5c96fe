"""``albra emergency-shutdown``: kill switch, runners stopped, all orders cancelled, all positions closed
reduce-only, verified flat on every account (or ``--account``), incident opened, Telegram told.

Exit codes: 0 verified flat (or, with --keep-positions, order-free) everywhere; 1 something could not be verified
(or a runner would not stop); 2 an account not handled because its API key variables are not set (named; the others
are still handled); 3 an account's exchange is unreachable (the others are still handled).
"""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from albra.commands import EXIT_USAGE
from albra.commands._common import ConfigOption, JsonOption, cli_actor, emit_json, fail, load


def register(app: typer.Typer) -> None:
    @app.command("emergency-shutdown")
    def emergency_cmd(
        account: Optional[List[str]] = typer.Option(
            None, "--account", "-a", help="Only this account (repeat for more); its kill switch only."),
        all_: bool = typer.Option(False, "--all", help="Every account and the global kill switch (the default "
                                                       "when no --account is named)."),
        keep_positions: bool = typer.Option(False, "--keep-positions",
                                            help="Freeze only: cancel orders and stop runners, keep positions open."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
        rounds: int = typer.Option(6, "--rounds", min=1, max=50,
                                   help="Read→cancel/close→verify rounds per account before giving up."),
        stop_timeout: float = typer.Option(10.0, "--stop-timeout", min=0.0,
                                           help="Seconds to wait after SIGTERM before SIGKILL."),
        telegram_timeout: float = typer.Option(10.0, "--telegram-timeout", min=0.0, max=120.0,
                                               help="Seconds to try delivering the alert to Telegram from here "
                                                    "(it stays queued otherwise)."),
        config: Optional[str] = ConfigOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Stop everything now: kill switch, runners, orders, positions — then verify on the exchange."""
        import asyncio
        import sys

        from albra.runbook.emergency import emergency_shutdown

        settings = load(config)
        if account and all_:
            fail("--all and --account exclude each other: --all acts on every account")
        for a in account or []:
            if a not in settings.accounts:
                fail(f"unknown account {a!r}; configured: {', '.join(sorted(settings.accounts))}")
        accounts = sorted(set(account)) if account else sorted(settings.accounts)
        if not accounts:
            fail("no accounts configured")
        what = ("cancel every order and stop the runners (positions stay open)" if keep_positions
                else "CLOSE EVERY POSITION at market, cancel every order and stop the runners")
        if not yes:
            if not sys.stdin.isatty():
                fail("emergency-shutdown asks for confirmation; pass --yes when running without a terminal",
                     EXIT_USAGE)
            if not typer.confirm(f"Emergency shutdown on {', '.join(accounts)}: {what}. Continue?", default=False):
                typer.echo("aborted; nothing was done")
                raise typer.Exit(EXIT_USAGE)
        rep = asyncio.run(emergency_shutdown(settings, accounts, keep_positions=keep_positions, rounds=rounds,
                                             stop_timeout_s=stop_timeout, telegram_timeout_s=telegram_timeout,
                                             all_accounts=not account, actor=cli_actor()))
        data = rep.as_dict()
        if as_json:
            emit_json(data)
        else:
            render(data)
        raise typer.Exit(rep.exit_code)


def render(d: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console(highlight=False)
    c.print(f"[bold]emergency-shutdown[/] started {d['started']} — {d['seconds']:.2f}s in total")
    c.print(f"kill switch: {d['kill_switch']}")
    if d["store_error"]:
        c.print(f"[yellow]store:[/] {d['store_error']}")
    t = Table(title="Runners", title_justify="left")
    for col in ("account", "how", "ok", "detail", "s"):
        t.add_column(col)
    for r in d["runners"]:
        t.add_row(r["account"], r["method"], "[green]yes[/]" if r["ok"] else "[red]NO[/]", r["detail"],
                  f"{r['seconds']:.2f}")
    c.print(t)
    t = Table(title="Accounts", title_justify="left")
    for col in ("account", "result", "positions before", "orders before", "close orders", "rounds", "s", "notes"):
        t.add_column(col)
    colour = {"flat": "green", "frozen": "green", "skipped": "dim"}
    for a in d["accounts"]:
        st = a["status"]
        notes = "; ".join([a["reason"]] * bool(a["reason"]) + a["errors"][:3] + a["ledger"][:3])
        t.add_row(a["account"], f"[{colour.get(st, 'red')}]{st}[/]", str(len(a["positions_before"])),
                  f"{a['orders_before']['regular']} + {a['orders_before']['algo']} algo",
                  str(len(a["close_orders"])), str(a["rounds"]), f"{a['seconds']:.2f}", notes or "-")
    c.print(t)
    c.print(f"incident: {d['incident_id'] or 'not opened (store unavailable)'}; alert: {d['notified']}")
    for a in d.get("telegram", []):
        colour = {"delivered": "green", "queued": "yellow"}.get(a["status"], "red")
        extra = " — stays queued" if a["status"] == "queued" else ""
        c.print(f"  telegram {a['kind']} ({a['level']}): [{colour}]{a['status']}[/]{extra}"
                + (f" ({a['detail']})" if a["detail"] else ""))
    code = d["exit_code"]
    c.print("[bold green]verified[/]" if code == 0 else
            "[bold red]NOT verified[/] — check the accounts above on the exchange by hand")
