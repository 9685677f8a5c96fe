"""``albra report --month YYYY-MM``: the monthly review from the journal and the ledger.

Reads only the store (works with the exchange down). Markdown on stdout, or ``--output DIR`` for the Markdown and
the self-contained HTML page with charts, or ``--json`` for scripts. The month is a KST calendar month.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from albra.commands import EXIT_USAGE
from albra.commands._common import ConfigOption, JsonOption, check_output_path, emit_json, fail, load, open_store


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(
        month: Optional[str] = typer.Option(None, "--month", "-m",
                                            help="KST calendar month YYYY-MM (default: last month)."),
        account: Optional[str] = typer.Option(None, "--account", "-a", help="Only this account."),
        output: Optional[Path] = typer.Option(None, "--output", "-o",
                                              help="Directory for review-YYYY-MM[-ACCOUNT].md and .html."),
        config: Optional[str] = ConfigOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Monthly review: performance per account and strategy, risk events, operations (uptime, restarts, order
        latency, exchange errors, incidents)."""
        from albra.review.month import ReviewError, build, last_month
        from albra.review.render import html, markdown
        from albra.timefmt import now_ms

        if output is not None and output.exists() and not output.is_dir():
            fail(f"--output {output}: not a directory (the review writes two files into it)", EXIT_USAGE)
        settings = load(config)
        store = open_store(settings, create=False)
        try:
            now = now_ms()
            try:
                rep = build(settings, store, month or last_month(now), account, now)
            except ReviewError as e:
                fail(str(e), EXIT_USAGE)
        finally:
            store.close()
        if as_json:
            emit_json(rep)
            return
        md = markdown(rep)
        if output is None:
            typer.echo(md, nl=False)
            return
        stem = f"review-{rep['month']}" + (f"-{account}" if account else "")
        written = []
        for suffix, text in ((".md", md), (".html", html(rep))):
            path = check_output_path(output / (stem + suffix), "--output")
            try:
                output.mkdir(parents=True, exist_ok=True)
                # owner-only, like the store: a review holds balances and losses
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
            except OSError as e:
                fail(f"cannot write {path}: {e}", EXIT_USAGE)
            written.append(str(path))
        typer.echo("wrote " + " and ".join(written))
