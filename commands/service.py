"""``albra service install``: render the systemd units (runner template ``albra@.service`` and the bot)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Optional

import typer

from albra.commands._common import fail

service_app = typer.Typer(help="systemd units for the runners and the bot.", no_args_is_help=True)


@service_app.command("install")
def install_cmd(
    target_dir: Path = typer.Option(Path("/etc/systemd/system"), "--dir", help="Where to write the unit files."),
    config: Path = typer.Option(Path("config/albra.toml"), "--config", "-c", help="Config the units will use."),
    user: Optional[str] = typer.Option(None, "--user", help="Run the services as this user."),
    watchdog_sec: int = typer.Option(60, "--watchdog-sec", min=10, help="systemd WatchdogSec for runners."),
    stop_timeout_sec: int = typer.Option(45, "--stop-timeout-sec", min=35, help="TimeoutStopSec (≥ 35 s)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the units, write nothing."),
) -> None:
    """Render albra@.service (one runner per account) and albra-bot.service, and print what was written."""
    from albra.systemd import UnitOptions, install_units, render_units

    project = Path.cwd().resolve()
    albra_bin = Path(shutil.which("albra") or Path(sys.executable).with_name("albra")).resolve()
    cfg = config if config.is_absolute() else (project / config)
    opts = UnitOptions(project, albra_bin, cfg, user, watchdog_sec, stop_timeout_sec)
    if dry_run:
        for name, text in render_units(opts).items():
            typer.echo(f"# ---- {name}\n{text}")
        return
    try:
        written = install_units(opts, target_dir)
    except OSError as e:
        fail(f"cannot write units to {target_dir}: {e} (try --dir or run with the rights to write there)")
    for p in written:
        typer.echo(f"wrote {p}")
    typer.echo("next: systemctl daemon-reload && systemctl enable --now albra@master albra@sub1 albra-bot")


def register(app: typer.Typer) -> None:
    app.add_typer(service_app, name="service")
