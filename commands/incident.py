"""``albra incident-report``: the Markdown write-up of an incident (``--incident-id``) or the list (``--list``).

Reads only the store, so it works while the exchange is down.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from albra.commands import EXIT_USAGE
from albra.commands._common import ConfigOption, JsonOption, check_output_path, emit_json, fail, load, open_store


def register(app: typer.Typer) -> None:
    @app.command("incident-report")
    def incident_report_cmd(
        incident_id: Optional[str] = typer.Option(None, "--incident-id", "-i", help="Incident id, e.g. INC-20261124-001."),
        list_: bool = typer.Option(False, "--list", help="List incidents (newest first) instead of one report."),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the Markdown to this file."),
        limit: int = typer.Option(50, "--limit", min=1, max=1000, help="With --list: how many."),
        config: Optional[str] = ConfigOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Timeline in KST, positions and equity before/after, orders sent, loss, actions, open questions."""
        from albra.runbook.incident_report import IncidentNotFound, build_report, list_rows, render_markdown

        if list_ == bool(incident_id):
            fail("give exactly one of --incident-id ID or --list", EXIT_USAGE)
        settings = load(config)
        if output is not None:
            check_output_path(output, "--output")
            if output.resolve() == settings.db_path.resolve():
                fail(f"--output {output} is the live store {settings.db_path}; refusing to overwrite it")
        store = open_store(settings, create=False)
        try:
            if list_:
                rows = list_rows(store, limit)
                if as_json:
                    emit_json({"incidents": rows})
                    return
                _render_list(rows)
                return
            try:
                rep = build_report(store, incident_id or "")
            except IncidentNotFound as e:
                fail(str(e.args[0]), EXIT_USAGE)
        finally:
            store.close()
        if as_json:
            emit_json(rep)
            return
        md = render_markdown(rep)
        if output is not None:
            try:
                output.parent.mkdir(parents=True, exist_ok=True)
                # owner-only, like the store and logs: a report holds positions, balances and losses
                fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(md)
            except OSError as e:
                fail(f"cannot write {output}: {e}", EXIT_USAGE)
            typer.echo(f"wrote {output} ({len(md.splitlines())} lines)")
        else:
            typer.echo(md, nl=False)


def _render_list(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console(highlight=False)
    if not rows:
        c.print("no incidents in the store")
        return
    t = Table(title="Incidents", title_justify="left")
    for col in ("id", "status", "severity", "kind", "account", "opened", "closed", "title"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["id"], r["status"], r["severity"], r["kind"], r["account"], r["opened"], r["closed"] or "-",
                  r["title"])
    c.print(t)
