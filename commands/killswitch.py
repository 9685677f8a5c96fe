"""``albra kill-switch [status|on|off]``: the kill switch as a first-class control.

``on`` blocks every new entry (every account, or ``--account`` ones only); exits and protective orders keep working.
``off`` clears it only with confirmation: a terminal prompt, or ``--yes`` for scripts (the drill passes it). Who
(``cli:<login user>``) and why (``--reason``) are journaled with each change. ``status`` says what is on, since when,
by whom and why, and lists the open incidents an operator should look at before clearing it.

Exit codes: 0 done (``status``: whether on or off); 2 usage (unknown account, off without confirmation in a script).
"""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from albra.commands import EXIT_USAGE
from albra.commands._common import (ConfigOption, JsonOption, checked_reason, cli_actor, emit_json, fail, load,
                                   open_store)

ACTIONS = ("status", "on", "off")


def _flag_dict(f: Any) -> dict[str, Any]:
    from albra.store import flags
    from albra.timefmt import fmt_kst

    return {"scope": f.account or "all", "reason": f.reason, "actor": f.actor, "since": fmt_kst(f.updated_ms),
            "text": flags.block_text(f)}


def _status(store: Any) -> dict[str, Any]:
    from albra.store import flags, incidents

    on = flags.kill_switches(store)
    return {"on": bool(on), "switches": [_flag_dict(f) for f in on],
            "open_incidents": [{"id": i.incident_id, "title": i.title}
                               for i in incidents.list_incidents(store, status="open")]}


def register(app: typer.Typer) -> None:
    @app.command("kill-switch")
    def kill_switch_cmd(
        action: str = typer.Argument("status", help="status (default), on or off."),
        account: Optional[List[str]] = typer.Option(None, "--account", "-a",
                                                    help="Only this account (repeat for more). Default: all."),
        reason: str = typer.Option("", "--reason", "-r", help="Why (journaled with who)."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Clear without asking (scripts, drills)."),
        config: Optional[str] = ConfigOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Show, set or clear the kill switch (no new entries; exits and stops keep working)."""
        import sqlite3
        import sys

        from albra.store import flags

        action = action.lower()
        if action not in ACTIONS:
            fail(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
        settings = load(config)
        for a in account or []:
            if a not in settings.accounts:
                fail(f"unknown account {a!r}; configured: {', '.join(sorted(settings.accounts)) or 'none'}")
        reason = checked_reason(reason)
        store = open_store(settings)
        try:
            before = _status(store)
            if action == "status":
                out = before
            elif action == "on":
                made = [flags.set_kill_switch(store, True, reason=reason, actor=cli_actor(), account=a)
                        for a in (account or [""])]
                out = {"action": "on", "set": [_flag_dict(f) for f in made]} | _status(store)
            else:
                targets = [f for f in flags.kill_switches(store)
                           if account is None or (f.account and f.account in account)]
                if not targets:
                    out = {"action": "off", "cleared": []} | before
                else:
                    if not yes:
                        _confirm_off(targets, before["open_incidents"], sys.stdin.isatty())
                    cleared = flags.clear_kill_switches(store, account, reason or "cleared by operator",
                                                        cli_actor())
                    out = {"action": "off", "cleared": [{"scope": f.account or "all"} for f in cleared]} \
                        | _status(store)
                if account:
                    still = [flags.kill_switch(store, a) for a in account]
                    out["still_blocked"] = {a: flags.block_text(f) for a, f in zip(account, still) if f}
        except sqlite3.OperationalError as e:
            fail(f"kill-switch {action} NOT recorded: the store {settings.db_path} cannot be written: {e}")
        finally:
            store.close()
        if as_json:
            emit_json(out)
        else:
            _render(action, out)


def _confirm_off(targets: list[Any], open_incidents: list[dict[str, Any]], tty: bool) -> None:
    from albra.store import flags

    if not tty:
        fail("kill-switch off asks for confirmation; pass --yes when running without a terminal", EXIT_USAGE)
    for f in targets:
        typer.echo(flags.block_text(f))
    if open_incidents:
        typer.echo(f"open incidents: {', '.join(i['id'] for i in open_incidents)}")
    if not typer.confirm("Clear the kill switch and allow new entries again?", default=False):
        typer.echo("aborted; the kill switch stays on")
        raise typer.Exit(EXIT_USAGE)


def _render(action: str, d: dict[str, Any]) -> None:
    from rich.console import Console

    c = Console(highlight=False, soft_wrap=True)
    if action == "on":
        c.print("[bold red]kill switch ON[/] for " + ", ".join(f["scope"] for f in d["set"])
                + ": no new entries; exits and protective orders keep working.")
    elif action == "off":
        if d["cleared"]:
            c.print("[bold green]kill switch cleared[/]: " + ", ".join(f["scope"] for f in d["cleared"]))
        else:
            c.print("the kill switch was not on at that scope; nothing changed")
    if d["switches"]:
        for f in d["switches"]:
            c.print(f"[bold red]{f['text']}[/]")
    else:
        c.print("kill switch: [green]off[/] everywhere")
    for a, text in d.get("still_blocked", {}).items():
        c.print(f"[yellow]{a} is still blocked:[/] {text}")
    if d["open_incidents"]:
        c.print("open incidents: " + ", ".join(f"{i['id']} ({i['title']})" for i in d["open_incidents"]))
