"""``albra reconcile``: each difference between ledger and exchange with its likely cause and proposed repair;
``--apply`` carries the repairs out (journaled) and audits again.

Exit codes: 0 nothing to do (or, with --apply, everything repaired); 1 differences found (without --apply) or
left (with --apply); 2 an account's API key variables are not set (named; configuration error); 3 an account's
exchange could not be read.
"""

from __future__ import annotations

from typing import Any, Optional

import typer

from albra.commands._common import ConfigOption, JsonOption, emit_json, fail, load, open_store


def register(app: typer.Typer) -> None:
    @app.command("reconcile")
    def reconcile_cmd(
        apply: bool = typer.Option(False, "--apply", help="Carry the repairs out (default: only explain)."),
        cancel_unknown: bool = typer.Option(False, "--cancel-unknown",
                                            help="With --apply: also cancel open orders albra did not place."),
        account: Optional[str] = typer.Option(None, "--account", "-a", help="Only this account."),
        config: Optional[str] = ConfigOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Explain every ledger/exchange difference (cause, repair); --apply repairs and re-audits."""
        import asyncio

        from albra.runbook.reconcile import deliver_raised, exit_code, outbox_mark, reconcile_accounts

        if cancel_unknown and not apply:
            fail("--cancel-unknown only makes sense with --apply")
        settings = load(config)
        if account and account not in settings.accounts:
            fail(f"unknown account {account!r}; configured: {', '.join(sorted(settings.accounts))}")
        accounts = [account] if account else sorted(settings.accounts)
        store = open_store(settings, create=False)
        try:
            mark = outbox_mark(store)

            async def work() -> tuple[list, str]:
                got = await reconcile_accounts(settings, store, accounts, apply=apply, cancel_unknown=cancel_unknown)
                return got, await deliver_raised(settings, store, mark)

            results, alerts = asyncio.run(work())
        finally:
            store.close()
        code = exit_code(results)
        data = {"applied": apply, "accounts": [r.as_dict() for r, _ in results], "exit_code": code,
                "alerts": alerts}
        if as_json:
            emit_json(data)
        else:
            render(data)
        raise typer.Exit(code)


def render(d: dict[str, Any]) -> None:
    from rich.console import Console

    c = Console(highlight=False)
    for a in d["accounts"]:
        if not a["reachable"]:
            what = "CONFIG ERROR" if a.get("config_error") else "UNREACHABLE"
            c.print(f"[bold]{a['account']}[/]: [red]{what}[/] — {a['reason']}")
            continue
        if not a["proposals"]:
            c.print(f"[bold]{a['account']}[/]: [green]ledger and exchange agree[/]")
            continue
        c.print(f"[bold]{a['account']}[/]: {len(a['proposals'])} difference(s)")
        for p in a["proposals"]:
            c.print(f"  • {p['kind']} {p['symbol']}: {p['detail']}\n    cause: {p['cause']}\n    repair: {p['repair']}")
        if a.get("blocked"):
            c.print(f"  [red]{a['blocked']}[/]")
        if a["applied"]:
            for act in a["actions"]:
                c.print(f"  [green]done[/] {act}")
            for r in a["remaining"] + [{"symbol": f["symbol"], "issue": f["kind"] + ": " + f["detail"]}
                                       for f in a["still_found"]]:
                c.print(f"  [red]left[/] {r['symbol']}: {r['issue']}")
    if d.get("alerts"):
        c.print(f"alerts: {d['alerts']}")
    if not d["applied"] and any(a["proposals"] for a in d["accounts"]):
        c.print("run again with --apply to carry the repairs out")
