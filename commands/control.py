"""``albra pause`` / ``albra resume``: persistent entry blocks (all, one account, or one account's strategy).

A pause never touches exits or protective orders. The flag lives in the store, so it holds across runner
restarts and is seen by every process within a second.
"""

from __future__ import annotations

from typing import Optional

import typer

from albra.commands._common import (ConfigOption, JsonOption, checked_reason, cli_actor, disk_full_note, emit_json,
                                   fail, load, open_store)


def _scope_check(settings, account: str | None, strategy: str | None) -> tuple[str, str]:
    """Validate names against the config so a typo never pauses nothing."""
    if strategy and not account:
        fail("--strategy needs --account (a strategy is paused on one account)")
    if account is None:
        return "", ""
    accounts = settings.accounts
    if account not in accounts:
        fail(f"unknown account {account!r}; configured: {', '.join(sorted(accounts)) or 'none'}")
    if strategy is None:
        return account, ""
    names = {s.name.upper(): s.name for s in accounts[account].strategies}
    if strategy.upper() not in names:
        fail(f"account {account!r} runs no strategy {strategy!r}; it runs: {', '.join(sorted(names.values())) or 'none'}")
    return account, names[strategy.upper()]


def _apply(pause: bool, config: str | None, account: str | None, strategy: str | None, reason: str,
           as_json: bool) -> None:
    from albra.store import flags

    settings = load(config)
    acct, strat = _scope_check(settings, account, strategy)
    reason = checked_reason(reason)
    import sqlite3

    store = open_store(settings)
    try:
        fn = flags.pause if pause else flags.resume
        flag = fn(store, acct, strat, reason=reason, actor=cli_actor())
        still = flags.entry_block(store, acct, strat) if acct else flags.kill_switch(store)
    except sqlite3.OperationalError as e:  # full disk, locked past the busy timeout: the flag was NOT set
        fail(f"{'pause' if pause else 'resume'} NOT recorded: the store {settings.db_path} cannot be written: {e}"
             f"{disk_full_note(settings.paths.state_dir)}")
    finally:
        store.close()
    if as_json:
        emit_json({"action": "pause" if pause else "resume", "scope": flag.scope, "reason": reason,
                   "entries_blocked_by": still.scope if (still and not pause) else None,
                   "blocked_by_kind": still.kind if (still and not pause) else None,
                   "trading_blocked": flags.block_text(still) if (still and not pause) else None})
        return
    from rich.console import Console

    c = Console(highlight=False)
    word = "[bold yellow]paused[/]" if pause else "[bold green]resumed[/]"
    if not pause and still is not None and still.kind == flags.KILL_SWITCH:
        c.print(f"pause cleared for {flag.scope}, but [bold red]new entries are still BLOCKED[/]: "
                f"{flags.block_text(still)}", soft_wrap=True)
        return
    c.print(f"{word} new entries: {flag.scope}" + (f" — {reason}" if reason else ""))
    if pause:
        c.print("exits and protective orders keep working.")
    elif still is not None:
        c.print(f"[yellow]note:[/] entries for {flag.scope} are still blocked: {flags.block_text(still)}",
                soft_wrap=True)


def register(app: typer.Typer) -> None:
    @app.command("pause")
    def pause_cmd(
        account: Optional[str] = typer.Option(None, "--account", "-a", help="Only this account."),
        strategy: Optional[str] = typer.Option(None, "--strategy", "-s", help="Only this strategy (needs --account)."),
        reason: str = typer.Option("", "--reason", "-r", help="Why (journaled)."),
        config: Optional[str] = ConfigOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Block new entries (all accounts, one account, or one strategy). Exits and stops keep working."""
        _apply(True, config, account, strategy, reason, as_json)

    @app.command("resume")
    def resume_cmd(
        account: Optional[str] = typer.Option(None, "--account", "-a", help="Only this account."),
        strategy: Optional[str] = typer.Option(None, "--strategy", "-s", help="Only this strategy (needs --account)."),
        reason: str = typer.Option("", "--reason", "-r", help="Why (journaled)."),
        config: Optional[str] = ConfigOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Allow new entries again at exactly this scope (a broader pause or the kill switch still applies)."""
        _apply(False, config, account, strategy, reason, as_json)
