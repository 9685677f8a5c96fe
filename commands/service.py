"""``albra service install``: render the systemd units (runner template ``albra@.service``, the bot, and the
``OnFailure=`` alert unit ``albra-alert@.service``); ``albra service notify-failure UNIT`` is what that unit runs.

The units are built from the config they will use: its ``paths.state_dir`` and ``paths.log_dir`` become the only
writable paths of the hardened services (created here, owned by ``--user``). A missing or invalid config is refused
(exit 2) — a unit pointing at a config that does not exist would fail at 3 a.m., not now. Trading as root is refused
unless ``--user`` names the account to run as (``--user root`` is allowed, with a loud warning).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Optional

import typer

from albra.commands._common import fail, load

service_app = typer.Typer(help="systemd units for the runners and the bot.", no_args_is_help=True)


def _owner(user: str | None) -> tuple[int, int] | None:
    """(uid, gid) of ``user`` or None when no user is named; exit 2 when the user does not exist."""
    if not user:
        return None
    import pwd

    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        fail(f"--user {user!r}: no such user on this host (create it first: useradd --system {user})")
    return pw.pw_uid, pw.pw_gid


def _make_dirs(dirs: list[Path], owner: tuple[int, int] | None) -> list[str]:
    """Create the state and log directories (0700) owned by the service user; what was done, for the operator."""
    done = []
    for d in dirs:
        existed = d.is_dir()
        try:
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            if owner is not None and os.geteuid() == 0:
                os.chown(d, *owner)
        except OSError as e:
            fail(f"cannot create {d}: {e}")
        done.append(f"{'exists' if existed else 'created'} {d}" + (f" (owner uid {owner[0]})" if owner else ""))
    return done


@service_app.command("install")
def install_cmd(
    target_dir: Path = typer.Option(Path("/etc/systemd/system"), "--dir", help="Where to write the unit files."),
    config: Path = typer.Option(Path("config/albra.toml"), "--config", "-c", help="Config the units will use."),
    user: Optional[str] = typer.Option(None, "--user", help="Run the services as this user (required as root)."),
    watchdog_sec: int = typer.Option(60, "--watchdog-sec", min=10, help="systemd WatchdogSec for runners."),
    stop_timeout_sec: int = typer.Option(45, "--stop-timeout-sec", min=35, help="TimeoutStopSec (≥ 35 s)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the units, write nothing."),
) -> None:
    """Render albra@.service (one runner per account), albra-bot.service and the OnFailure alert unit."""
    from albra.systemd import UnitOptions, install_units, render_units
    from albra.upgrade.layout import stable_albra_bin

    project = Path.cwd().resolve()
    cfg = (config if config.is_absolute() else (project / config)).resolve()
    if not cfg.is_file():
        fail(f"--config {cfg}: no such file; the units would start runners against a config that does not exist "
             f"(copy config/albra.example.toml to {cfg} and edit it first)")
    settings = load(str(cfg))
    if os.geteuid() == 0 and not user:
        fail("refusing to install units that trade as root: pass --user NAME (a system user that owns "
             f"{settings.paths.state_dir}), or --user root if you really mean it")
    if user == "root":
        typer.secho("WARNING: the runners and the bot will run as ROOT: a bug or a compromised dependency then owns "
                    "the whole host. Prefer a dedicated user (--user albra).", fg="red", bold=True, err=True)
    owner = _owner(user)
    # a release installed by `albra upgrade` is run through ROOT/current, so the units follow each upgrade
    albra_bin = stable_albra_bin(Path(shutil.which("albra") or Path(sys.executable).with_name("albra")))
    opts = UnitOptions(project, albra_bin, cfg, user, watchdog_sec, stop_timeout_sec,
                       state_dir=settings.paths.state_dir.resolve(), log_dir=settings.paths.log_dir.resolve())
    if dry_run:
        for name, text in render_units(opts).items():
            typer.echo(f"# ---- {name}\n{text}")
        return
    for line in _make_dirs(opts.writable, owner):
        typer.echo(line)
    try:
        written = install_units(opts, target_dir)
    except OSError as e:
        fail(f"cannot write units to {target_dir}: {e} (try --dir or run with the rights to write there)")
    for p in written:
        typer.echo(f"wrote {p}")
    names = " ".join(f"albra@{a}" for a in sorted(settings.accounts)) or "albra@ACCOUNT"
    typer.echo(f"next: systemctl daemon-reload && systemctl enable --now {names} albra-bot")


@service_app.command("notify-failure")
def notify_failure_cmd(
    unit: str = typer.Argument(..., help="The unit that failed (systemd passes it: albra-alert@%n)."),
    config: Optional[str] = typer.Option(None, "--config", "-c", envvar="ALBRA_CONFIG", help="Config file."),
    timeout: float = typer.Option(20.0, "--timeout", min=0.0, max=120.0, help="Seconds to try Telegram."),
) -> None:
    """Journal and alert (CRITICAL, sent now) that a runner or bot unit failed — run by the OnFailure= unit."""
    import asyncio

    from albra.runbook.unit_failure import UNIT_RE, notify_failure
    from albra.commands._common import open_store

    if not UNIT_RE.match(unit):
        fail(f"{unit!r} is not a systemd unit name")
    settings = load(config)
    store = open_store(settings)
    try:
        rep = asyncio.run(notify_failure(settings, store, unit, timeout_s=timeout))
    finally:
        store.close()
    typer.echo(f"{rep.unit} failed{f' ({rep.detail})' if rep.detail else ''}: journaled; alert {rep.event_id}: "
               f"{rep.delivery}")


def register(app: typer.Typer) -> None:
    app.add_typer(service_app, name="service")
