"""``albra safe-restart --validate-state``: store integrity, no unresolved intents, audit clean — then restart the
runner unit(s) and wait until they report ready; otherwise the exact list of what blocks.

Exit codes: 0 restarted and ready (or, with --dry-run, nothing blocks); 1 blocked, not restarted, or not ready;
2 usage.
"""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from albra.commands._common import ConfigOption, JsonOption, emit_json, fail, load, open_store


def register(app: typer.Typer) -> None:
    @app.command("safe-restart")
    def safe_restart_cmd(
        validate_state: bool = typer.Option(False, "--validate-state",
                                            help="Validate store and exchange before restarting (required)."),
        account: Optional[str] = typer.Option(None, "--account", "-a", help="Only this account's runner."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be done; change nothing."),
        force: bool = typer.Option(False, "--force", help="Restart even when the state cannot be vouched for."),
        accept_kill_switch: bool = typer.Option(False, "--accept-kill-switch",
                                                help="Restart even though the kill switch is on (it stays on)."),
        accept_incident: Optional[List[str]] = typer.Option(
            None, "--accept-incident", help="An open incident reviewed and accepted (repeat for more)."),
        ready_timeout: float = typer.Option(90.0, "--ready-timeout", min=1.0, help="Seconds to wait for ready."),
        config: Optional[str] = ConfigOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Validate, then restart albra@ACCOUNT and wait until it reports ready (or list what blocks)."""
        from albra.runbook.restart import safe_restart

        if not validate_state:
            fail("safe-restart always validates: pass --validate-state (with --force to override blockers)")
        settings = load(config)
        if account and account not in settings.accounts:
            fail(f"unknown account {account!r}; configured: {', '.join(sorted(settings.accounts))}")
        accounts = [account] if account else sorted(settings.accounts)
        store = open_store(settings, create=False)
        try:
            plan = safe_restart(settings, store, accounts, dry_run=dry_run, force=force,
                                ready_timeout_s=ready_timeout, accept_kill_switch=accept_kill_switch,
                                accept_incidents=tuple(accept_incident or ()))
        finally:
            store.close()
        data = plan.as_dict()
        if as_json:
            emit_json(data)
        else:
            render(data)
        raise typer.Exit(plan.exit_code)


def render(d: dict[str, Any]) -> None:
    from rich.console import Console

    c = Console(highlight=False)
    for ch in d["checks"]:
        c.print(f"[green]✓[/] {ch}")
    for b in d["blockers"]:
        c.print(f"[red]✗[/] {b}")
    for r in d["restarted"]:
        if "would" in r:
            c.print(f"would: {r['would']}")
        else:
            c.print(f"{r['account']}: {'[green]ready[/]' if r['ready'] else '[red]not ready[/]'} — {r['detail']}")
    if d["blockers"] and not d["forced"] and not d["dry_run"]:
        c.print("[bold red]not restarted[/]: fix the blockers above (or --force)")
