"""``albra drill``: a complete fire drill offline — the operator's config against the local Binance server, runners
trading, a staged incident, the runbook walked and timed against its targets.

Exit 0 only when every step did what it claims and every phase met its target; 1 otherwise (the failed step named);
2 usage. The operator's store is never opened (the drill works in its own directory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from albra.commands import EXIT_FINDINGS, EXIT_USAGE
from albra.commands._common import ConfigOption, JsonOption, emit_json, fail, load


def register(app: typer.Typer) -> None:
    @app.command("drill")
    def drill_cmd(
        profile: str = typer.Option("full", "--profile", help="full (60x clock, a few minutes) or short (300x)."),
        directory: Optional[Path] = typer.Option(None, "--dir", help="Drill directory (default: "
                                                 "<state_dir>/drills/<UTC time>); its own store, config and logs."),
        keep_positions: bool = typer.Option(False, "--keep-positions",
                                            help="Rehearse the freeze: emergency-shutdown --keep-positions."),
        break_: Optional[str] = typer.Option(None, "--break",
                                             help="Make a step fail on purpose: reconcile (the repair cannot "
                                                  "read the exchange)."),
        config: Optional[str] = ConfigOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Rehearse the emergency runbook end to end on the local exchange and time each step against its target."""
        import asyncio
        import sys
        import time

        from albra.config.loader import resolve_config_path
        from albra.drill.report import render
        from albra.drill.run import BREAKS, PROFILES, Drill

        if profile not in PROFILES:
            fail(f"--profile {profile!r}: choose {' or '.join(PROFILES)}", EXIT_USAGE)
        if break_ is not None and break_ not in BREAKS:
            fail(f"--break {break_!r}: choose {', '.join(BREAKS)}", EXIT_USAGE)
        settings = load(config)
        cfg = resolve_config_path(config).resolve()
        where = directory or settings.paths.state_dir / "drills" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        if where.exists() and any(where.iterdir()):
            fail(f"--dir {where}: not empty (a drill starts from nothing)", EXIT_USAGE)
        if where.resolve() == settings.paths.state_dir.resolve():
            fail("--dir must not be the operator's state directory", EXIT_USAGE)
        say = (lambda m: None) if as_json else (lambda m: print(m, file=sys.stderr, flush=True))
        res = asyncio.run(Drill(cfg, where.resolve(), PROFILES[profile], break_step=break_,
                                keep_positions=keep_positions, say=say).run())
        data = res.as_dict()
        if as_json:
            emit_json(data)
        else:
            render(data)
        if not res.ok:
            raise typer.Exit(EXIT_FINDINGS)
