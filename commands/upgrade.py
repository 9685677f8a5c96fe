"""``albra upgrade --to REF``: install a git ref beside the running version and switch to it, or roll back.

Steps and rollback: albra/upgrade/procedure.py and docs/adr/0020-upgrade.md. Exit 0 upgraded (or already there),
1 failed — rolled back, the failed step named — 2 usage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from albra.commands import EXIT_FINDINGS, EXIT_USAGE
from albra.commands._common import ConfigOption, JsonOption, emit_json, fail, load


def register(app: typer.Typer) -> None:
    @app.command("upgrade")
    def upgrade_cmd(
        to: str = typer.Option(..., "--to", help="Git ref to install: a tag, branch or commit."),
        root: Path = typer.Option(..., "--root", envvar="ALBRA_HOME", show_envvar=True,
                                  help="Install root holding releases/ and the current symlink."),
        repo: Path = typer.Option(Path("."), "--repo", help="Git repository the ref is taken from."),
        offline: bool = typer.Option(False, "--offline",
                                     help="Install without the network, sharing this environment's packages."),
        ready_timeout: float = typer.Option(90.0, "--ready-timeout", min=1.0,
                                            help="Seconds a restarted runner has to report ready."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask (runners are stopped and restarted)."),
        config: Optional[str] = ConfigOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Back up the store, stop entries and runners, install REF into a fresh venv beside the old one, migrate
        (a copy first), validate, switch the current symlink and restart — rolling back on any failure."""
        from albra.config.loader import resolve_config_path
        from albra.upgrade.layout import Layout
        from albra.upgrade.procedure import Upgrade

        settings = load(config)
        cfg = resolve_config_path(config)
        if not repo.is_dir():
            fail(f"--repo {repo}: not a directory", EXIT_USAGE)
        if root.exists() and not root.is_dir():
            fail(f"--root {root}: exists and is not a directory", EXIT_USAGE)
        if not yes and not typer.confirm(f"upgrade to {to}: runners of {', '.join(sorted(settings.accounts))} are "
                                         f"stopped and restarted. Go on?", default=False):
            fail("not confirmed (use --yes in scripts)", EXIT_USAGE)
        up = Upgrade(settings, cfg.resolve(), Layout(root.resolve()), repo.resolve(), offline=offline,
                     ready_timeout_s=ready_timeout)
        res = up.run(to)
        data = res.as_dict()
        if as_json:
            emit_json(data)
        else:
            _render(data)
        if not res.ok:
            raise typer.Exit(EXIT_FINDINGS)


def _render(d: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console(highlight=False)
    t = Table(title=f"upgrade {d['from_release'] or '(none)'} → {d['to_release'] or '?'} ({d['ref']})",
              title_justify="left")
    for col in ("step", "", "s", "detail"):
        t.add_column(col, overflow="fold")
    for s in d["steps"]:
        t.add_row(s["step"], "[green]✓[/]" if s["ok"] else "[red]✗[/]", f"{s['seconds']:.1f}", s["detail"])
    c.print(t)
    if d["rolled_back"]:
        r = Table(title="rollback", title_justify="left")
        for col in ("step", "", "s", "detail"):
            r.add_column(col, overflow="fold")
        for s in d["rollback"]:
            r.add_row(s["step"], "[green]✓[/]" if s["ok"] else "[red]✗[/]", f"{s['seconds']:.1f}", s["detail"])
        c.print(r)
    if d["ok"]:
        c.print(f"[green]upgraded[/] to {d['to_release']}" + (f"; backup {d['backup']}" if d["backup"] else ""))
    else:
        c.print(f"[bold red]upgrade failed at {d['failed_step']}[/]"
                + ("; rolled back" if d["rolled_back"] else "; nothing was changed"))
