"""``albra audit --compare-exchange``: ledger vs exchange per account (positions, stops, other orders,
balances, today's PnL, loss since a time or an incident). Read-only.

Exit codes: 0 everything agrees, 1 any discrepancy, 2 an account's API key variables are not set (the output names
them: a configuration error, not an exchange problem), 3 an account's exchange could not be read (a failed read is
never taken for an empty account).
"""

from __future__ import annotations

from typing import Any, Optional

import typer

from albra.commands import EXIT_USAGE
from albra.commands._common import ConfigOption, JsonOption, emit_json, fail, load, open_store


def resolve_since(store: Any, since: Optional[str], incident: Optional[str]) -> tuple[Optional[int], str]:
    """(epoch ms, label) for --since TIME / --incident ID, or exit 2 naming what is wrong."""
    if since and incident:
        fail("give --since or --incident, not both", EXIT_USAGE)
    if since:
        from albra.timefmt import fmt_kst, parse_time

        try:
            ms = parse_time(since)
        except ValueError as e:
            fail(f"--since {since!r}: {e}", EXIT_USAGE)
        return ms, fmt_kst(ms)
    if incident:
        from albra.store import incidents
        from albra.timefmt import fmt_kst

        inc = incidents.get(store, incident)
        if inc is None:
            fail(f"--incident: no incident {incident!r} in the store (see `albra incident-report --list`)", EXIT_USAGE)
        return inc.opened_ms, f"{incident} (opened {fmt_kst(inc.opened_ms)})"
    return None, ""


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit_cmd(
        compare_exchange: bool = typer.Option(False, "--compare-exchange",
                                              help="Compare the ledger with the exchange (the only audit there is)."),
        account: Optional[str] = typer.Option(None, "--account", "-a", help="Only this account."),
        since: Optional[str] = typer.Option(None, "--since", help="Loss since this time (YYYY-MM-DD[ HH:MM], ISO, ms)."),
        incident: Optional[str] = typer.Option(None, "--incident", help="Loss since this incident opened."),
        config: Optional[str] = ConfigOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Ledger vs exchange: positions by strategy, protective stops, unknown orders, balances, PnL."""
        import asyncio

        from albra.runbook.audit import audit_accounts, exit_code

        if not compare_exchange:
            fail("say what to audit: --compare-exchange", EXIT_USAGE)
        settings = load(config)
        if account and account not in settings.accounts:
            fail(f"unknown account {account!r}; configured: {', '.join(sorted(settings.accounts))}")
        accounts = [account] if account else sorted(settings.accounts)
        store = open_store(settings, create=False)
        try:
            since_ms, label = resolve_since(store, since, incident)
            audits = asyncio.run(audit_accounts(settings, store, accounts, since_ms=since_ms, since_label=label))
        finally:
            store.close()
        code = exit_code(audits)
        data = {"accounts": [a.as_dict() for a in audits], "exit_code": code}
        if as_json:
            emit_json(data)
        else:
            render(data)
        raise typer.Exit(code)


def render(d: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console(highlight=False)
    for a in d["accounts"]:
        if not a["reachable"]:
            what = "CONFIG ERROR" if a.get("config_error") else "UNREACHABLE"
            c.print(f"[bold]{a['account']}[/]: [red]{what}[/] — {a['reason']}")
            continue
        verdict = "[green]agrees[/]" if a["agrees"] else f"[red]{len(a['findings'])} discrepancy(ies)[/]"
        c.print(f"[bold]{a['account']}[/] ({a['position_mode'] or '-'}): {verdict}")
        if a["balance"]:
            b = a["balance"]
            c.print(f"  equity {b['equity']} (wallet {b['wallet']}, unrealised {b['unrealized']}, available "
                    f"{b['available']})")
        if a["pnl_today"]:
            p = a["pnl_today"]
            c.print(f"  today ({p['kst_day']} KST): realised net {p['realized_net']} (PnL {p['realized']}, fees "
                    f"{p['commission']}, funding {p['funding']}), unrealised {p['unrealized']}")
        if a["loss_since"]:
            l = a["loss_since"]
            c.print(f"  since {l['since']}: equity change {l['equity_change'] or 'unknown'}, realised net "
                    f"{l['realized_net_since']}, transfers {l['transfers_since']}")
        if a["positions"]:
            t = Table(show_header=True, title_justify="left")
            for col in ("symbol", "side", "exchange", "entry", "mark", "uPnL", "legs (strategy qty)"):
                t.add_column(col)
            for p in a["positions"]:
                legs = ", ".join(f"{g['strategy']} {g['direction']} {g['qty']}" for g in p["legs"]) or "-"
                t.add_row(p["symbol"], p["position_side"], p["exchange_qty"], p["entry_price"] or "-",
                          p["mark_price"] or "-", p["unrealized"] or "-", legs)
            c.print(t)
        for f in a["findings"]:
            c.print(f"  [red]✗[/] {f['kind']} {f['symbol']}: {f['detail']}")
        for n in a["notes"]:
            c.print(f"  [yellow]note[/] {n}")
