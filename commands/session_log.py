"""``albra session-log``: append the commits since the last logged one to SESSION_LOG.md (KST, idempotent)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from albra.commands._common import JsonOption, emit_json, fail


def register(app: typer.Typer) -> None:
    @app.command("session-log")
    def session_log_cmd(
        repo: Path = typer.Option(Path("."), "--repo", help="Git repository (default: current directory)."),
        file: Optional[Path] = typer.Option(None, "--file", help="Log file (default: SESSION_LOG.md at the repo root)."),
        install_hook: bool = typer.Option(False, "--install-hook",
                                          help="Install a git post-commit hook that runs this (never amends or pushes)."),
        as_json: bool = JsonOption,
    ) -> None:
        """Append new commits to the session log under a dated KST section, with changed files by folder."""
        from albra.runbook.session_log import SessionLogError, append_new, install_hook as do_install
        from albra.timefmt import fmt_kst

        try:
            hook = do_install(repo) if install_hook else None
            added = append_new(repo, file)
        except SessionLogError as e:
            fail(str(e))
        if as_json:
            emit_json({"added": [{"hash": c.short, "time": fmt_kst(c.ts_ms), "message": c.subject} for c in added],
                       "hook": str(hook) if hook else None})
            return
        if hook:
            typer.echo(f"installed post-commit hook: {hook}")
        typer.echo(f"added {len(added)} commit(s)" + (": " + ", ".join(c.short for c in added) if added else ""))
